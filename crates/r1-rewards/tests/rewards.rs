//! Reward functions, composition and config handling.

use r1_rewards::rewards::cosine::{cosine_scaled, CosineOptions};
use r1_rewards::rewards::countdown::eval_equation;
use r1_rewards::rewards::overlong::soft_overlong;
use r1_rewards::rewards::repetition::{repeated_fraction, NgramUnit};
use r1_rewards::{build_reward, CompositeReward, RewardInput, RewardSpec, RewardsConfig};
use serde_json::{json, Value};

const NULL: Value = Value::Null;

fn input<'a>(
    prompt: &'a str,
    completion: &'a str,
    answer: Option<&'a str>,
    extra: &'a Value,
) -> RewardInput<'a> {
    RewardInput {
        prompt,
        completion,
        answer,
        completion_tokens: completion.len() / 4,
        max_completion_tokens: 1000,
        truncated: false,
        extra,
    }
}

fn reward(name: &str, options: Value) -> Box<dyn r1_rewards::RewardFn> {
    let spec = RewardSpec {
        name: name.into(),
        weight: 1.0,
        label: None,
        options: options.as_object().cloned().unwrap_or_default(),
    };
    build_reward(&spec).unwrap()
}

fn score(name: &str, options: Value, i: &RewardInput) -> f64 {
    reward(name, options).score(i).value
}

#[test]
fn accuracy() {
    let good = input(
        "q",
        "<think>2+2</think><answer>\\boxed{4}</answer>",
        Some("4"),
        &NULL,
    );
    assert_eq!(score("accuracy", json!({}), &good), 1.0);
    let bad = input("q", "<think>..</think><answer>5</answer>", Some("4"), &NULL);
    assert_eq!(score("accuracy", json!({}), &bad), 0.0);
    // An unparseable reference is an error, never a pass.
    let broken = input("q", "\\boxed{4", Some("\\boxed{4"), &NULL);
    let s = reward("accuracy", json!({})).score(&broken);
    assert_eq!(s.value, 0.0);
    assert!(s.reason.starts_with("error"), "{}", s.reason);
    let no_gold = input("q", "4", None, &NULL);
    assert_eq!(score("accuracy", json!({}), &no_gold), 0.0);
    // Strict extraction: no last-number fallback.
    let loose = input("q", "I think it is 4 or so", Some("4"), &NULL);
    assert_eq!(score("accuracy", json!({}), &loose), 1.0);
    assert_eq!(
        score(
            "accuracy",
            json!({"extract": {"fallback_last_number": false}}),
            &loose
        ),
        0.0
    );
}

#[test]
fn format_reward() {
    let f = |c: &str, p: &str| score("format", json!({}), &input(p, c, None, &NULL));
    assert_eq!(f("<think>reason</think>\n<answer>4</answer>", "q"), 1.0);
    assert_eq!(f("<think>reason</think><answer>4</answer>\n", "q"), 1.0);
    assert_eq!(
        f("reason</think>\n<answer>4</answer>", "q Assistant: <think>"),
        1.0,
        "prefilled"
    );
    assert_eq!(
        f("reason</think>\n<answer>4</answer>", "q"),
        1.0,
        "auto-detected prefill"
    );
    assert_eq!(f("<answer>4</answer>", "q"), 0.0);
    assert_eq!(
        f("<think>a</think><think>b</think><answer>4</answer>", "q"),
        0.0
    );
    assert_eq!(f("<think>a</think><answer>4</answer> extra", "q"), 0.0);
    assert_eq!(f("<think> </think><answer>4</answer>", "q"), 0.0);
    assert_eq!(f("<think>a</think>", "q"), 0.0);
    let loose = json!({"require_answer_tags": false});
    assert_eq!(
        score(
            "format",
            loose.clone(),
            &input("q", "<think>a</think> \\boxed{4}", None, &NULL)
        ),
        1.0
    );
    let never = json!({"prefilled": "never"});
    assert_eq!(
        score(
            "format",
            never,
            &input("q <think>", "a</think><answer>4</answer>", None, &NULL)
        ),
        0.0
    );
    let tags = json!({"think_open": "<reasoning>", "think_close": "</reasoning>"});
    assert_eq!(
        score(
            "format",
            tags,
            &input(
                "q",
                "<reasoning>a</reasoning><answer>4</answer>",
                None,
                &NULL
            )
        ),
        1.0
    );
}

#[test]
fn tag_count() {
    let t = |c: &str, p: &str| score("tag_count", json!({}), &input(p, c, None, &NULL));
    assert_eq!(t("<think>\na\n</think>\n<answer>\n4\n</answer>", "q"), 1.0);
    assert_eq!(t("<think>a</think> 4", "q"), 0.5);
    assert_eq!(t("a</think><answer>4</answer>", "q <think>"), 1.0);
    assert_eq!(t("nothing", "q"), 0.0);
    assert_eq!(
        t("<think>a</think><answer>4</answer><answer>5</answer>", "q"),
        0.5
    );
}

#[test]
fn language_consistency() {
    let l = |p: &str, c: &str| score("language_consistency", json!({}), &input(p, c, None, &NULL));
    assert_eq!(
        l(
            "What is 2+2?",
            "<think>We add the two numbers</think><answer>4</answer>"
        ),
        1.0
    );
    let mixed = l(
        "What is 2+2?",
        "<think>We add 两个 数字 together</think><answer>4</answer>",
    );
    assert!(mixed > 0.3 && mixed < 0.8, "{mixed}");
    assert_eq!(l("2加2等于多少？", "<think>两个数相加</think>4"), 1.0);
    assert!(l("2加2等于多少？", "<think>we add them</think>4") < 0.01);
    let fixed = score(
        "language_consistency",
        json!({"target": "fr"}),
        &input("q", "<think>on additionne les nombres</think>", None, &NULL),
    );
    assert_eq!(fixed, 1.0);
}

#[test]
fn cosine_schedule() {
    let o = CosineOptions::default();
    assert!((cosine_scaled(true, 0, 100, &o) - 1.0).abs() < 1e-12);
    assert!((cosine_scaled(true, 100, 100, &o) - 0.5).abs() < 1e-12);
    assert!(
        (cosine_scaled(true, 500, 100, &o) - 0.5).abs() < 1e-12,
        "clipped"
    );
    assert!((cosine_scaled(false, 0, 100, &o) + 1.0).abs() < 1e-12);
    assert!((cosine_scaled(false, 100, 100, &o) + 0.5).abs() < 1e-12);
    assert!(cosine_scaled(true, 10, 100, &o) > cosine_scaled(true, 90, 100, &o));
    assert!(cosine_scaled(false, 10, 100, &o) < cosine_scaled(false, 90, 100, &o));
    let mut i = input("q", "\\boxed{4}", Some("4"), &NULL);
    i.completion_tokens = 0;
    assert!((score("cosine", json!({"max_len": 100}), &i) - 1.0).abs() < 1e-12);
}

#[test]
fn repetition_penalty() {
    assert_eq!(repeated_fraction("a b c d e f", 3, NgramUnit::Words), 0.0);
    let r = repeated_fraction(&"la la la ".repeat(50), 3, NgramUnit::Words);
    assert!(r > 0.95, "{r}");
    assert_eq!(repeated_fraction("a b", 3, NgramUnit::Words), 0.0);
    let i = input("q", "the cat sat the cat sat the cat sat", None, &NULL);
    let v = score("repetition", json!({"max_penalty": -0.5}), &i);
    assert!((-0.5..0.0).contains(&v));
    let spec = RewardSpec {
        name: "repetition".into(),
        weight: 1.0,
        label: None,
        options: json!({"max_penalty": 1.0}).as_object().cloned().unwrap(),
    };
    assert!(build_reward(&spec).is_err(), "positive penalty rejected");
}

#[test]
fn soft_overlong_formula() {
    assert_eq!(soft_overlong(100, 1000, 200), 0.0);
    assert_eq!(soft_overlong(800, 1000, 200), 0.0);
    assert!((soft_overlong(900, 1000, 200) + 0.5).abs() < 1e-12);
    assert_eq!(soft_overlong(1000, 1000, 200), -1.0);
    assert_eq!(soft_overlong(5000, 1000, 200), -1.0);
    let mut i = input("q", "x", None, &NULL);
    i.completion_tokens = 950;
    assert!((score("soft_overlong", json!({"cache_len": 100}), &i) + 0.5).abs() < 1e-12);
}

#[test]
fn countdown() {
    let extra = json!({"nums": [3, 5, 7], "target": 22});
    let c = |s: &str, o: Value| score("countdown", o, &input("q", s, None, &extra));
    assert_eq!(c("<think>..</think><answer>3*5+7</answer>", json!({})), 1.0);
    assert_eq!(c("<answer>(3 * 5) + 7 = 22</answer>", json!({})), 1.0);
    assert_eq!(c("<answer>7 + 5 × 3</answer>", json!({})), 1.0);
    assert_eq!(c("<answer>3*5+7+0</answer>", json!({})), 0.0, "0 not given");
    assert_eq!(c("<answer>3*5*7</answer>", json!({})), 0.0);
    assert_eq!(
        c("<answer>3*5*7</answer>", json!({"format_score": 0.1})),
        0.1
    );
    assert_eq!(c("<answer>__import__('os')</answer>", json!({})), 0.0);
    assert_eq!(c("<answer>22</answer>", json!({})), 0.0);
    let some = json!({"nums": [3, 5, 7, 100], "target": 22});
    let i = input("q", "<answer>3*5+7</answer>", None, &some);
    assert_eq!(
        score("countdown", json!({}), &i),
        0.0,
        "must use all by default"
    );
    assert_eq!(score("countdown", json!({"use_all": false}), &i), 1.0);
    assert!(eval_equation("1/0").is_err());
    assert!(eval_equation(&"(".repeat(10_000)).is_err());
    assert_eq!(
        eval_equation("6/4*2").unwrap().0,
        num_rational::BigRational::from_integer(3.into())
    );
}

#[test]
fn composition_and_config() {
    let toml_cfg = r#"
        [[rewards]]
        name = "accuracy"
        weight = 2.0
        [rewards.extract]
        fallback_last_number = false

        [[rewards]]
        name = "format"
        weight = 0.5

        [[rewards]]
        name = "tag_count"
        label = "tags"
        weight = 0.25
    "#;
    let cfg: RewardsConfig = toml::from_str(toml_cfg).unwrap();
    let comp = CompositeReward::from_config(&cfg).unwrap();
    assert_eq!(comp.names(), vec!["accuracy", "format", "tags"]);
    let i = input("q", "<think>a</think><answer>4</answer>", Some("4"), &NULL);
    let s = comp.score(&i);
    assert!((s.total - (2.0 + 0.5 + 0.25)).abs() < 1e-12, "{s:?}");
    assert_eq!(s.components.len(), 3);

    let bad: RewardsConfig =
        serde_json::from_value(json!({"rewards": [{"name": "acuracy"}, {"name": "formatt"}]}))
            .unwrap();
    let err = CompositeReward::from_config(&bad)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("acuracy") && err.contains("formatt"), "{err}");
    let bad_opt: RewardsConfig =
        serde_json::from_value(json!({"rewards": [{"name": "format", "thinkopen": "x"}]})).unwrap();
    assert!(CompositeReward::from_config(&bad_opt).is_err());
    assert!(CompositeReward::from_config(&RewardsConfig::r1_zero()).is_ok());
}

#[test]
fn rewards_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<CompositeReward>();
    let comp =
        std::sync::Arc::new(CompositeReward::from_config(&RewardsConfig::r1_zero()).unwrap());
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let c = comp.clone();
            std::thread::spawn(move || {
                let i = input("q", "<think>a</think><answer>4</answer>", Some("4"), &NULL);
                c.score(&i).total
            })
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), 2.0);
    }
}
