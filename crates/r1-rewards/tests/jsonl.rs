//! The line-oriented drivers behind `r1 verify` and `r1 reward`.

use r1_rewards::{
    reward_jsonl, verify_jsonl, CompositeReward, RewardJsonlOptions, RewardsConfig, VerifyOptions,
};
use serde_json::Value;

fn lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn verify_lines_in_order_with_errors() {
    let input = concat!(
        "{\"gold\": \"42\", \"pred\": \"The answer is \\\\boxed{42}\"}\n",
        "{\"gold\": 7, \"pred\": 7}\n",
        "not json\n",
        "\n",
        "{\"gold\": \"1\"}\n",
        "{\"gold\": \"\\\\boxed{1\", \"pred\": \"1\"}\n",
        "{\"gold\": \"#### 1,200\", \"pred\": \"so 1200 dollars\"}\n",
        "{\"gold\": \"3\", \"pred\": \"\\\\boxed{4}\"}\n",
    );
    let mut out = Vec::new();
    let sum = verify_jsonl(input.as_bytes(), &mut out, &VerifyOptions::default()).unwrap();
    let v = lines(&out);
    assert_eq!(v.len(), 7);
    assert_eq!(v[0]["correct"], true);
    assert_eq!(v[0]["pred_rule"], "boxed");
    assert_eq!(v[0]["pred"], "42");
    assert_eq!(v[1]["correct"], true);
    assert_eq!(v[2]["line"], 3);
    assert!(v[2]["error"].as_str().unwrap().contains("JSON"));
    assert_eq!(v[3]["line"], 5);
    assert!(v[3]["error"].as_str().unwrap().contains("pred"));
    assert_eq!(v[4]["line"], 6);
    assert!(v[4]["error"].as_str().unwrap().contains("reference"));
    assert_eq!(v[5]["correct"], true);
    assert_eq!(v[5]["gold_rule"], "gsm8k");
    assert_eq!(v[6]["correct"], false);
    assert_eq!((sum.lines, sum.correct, sum.errors), (7, 3, 3));
    assert!(!sum.ok());
}

#[test]
fn reward_lines() {
    let comp = CompositeReward::from_config(&RewardsConfig::r1_zero()).unwrap();
    let input = concat!(
        "{\"prompt\": \"What is 2+2?\", \"completion\": \"<think>2+2=4</think><answer>4</answer>\", \"answer\": \"4\"}\n",
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"2+2?\"}], \"completion\": [{\"role\": \"assistant\", \"content\": \"<think>hmm</think><answer>5</answer>\"}], \"solution\": 4}\n",
        "{\"prompt\": \"x\"}\n",
        "[1,2]\n",
    );
    let mut out = Vec::new();
    let sum = reward_jsonl(
        input.as_bytes(),
        &mut out,
        &comp,
        &RewardJsonlOptions::default(),
    )
    .unwrap();
    let v = lines(&out);
    assert_eq!(v[0]["total"], 2.0);
    assert_eq!(v[0]["scores"]["accuracy"], 1.0);
    assert_eq!(v[0]["scores"]["format"], 1.0);
    assert_eq!(v[1]["scores"]["accuracy"], 0.0);
    assert_eq!(v[1]["scores"]["format"], 1.0);
    assert!(v[1]["reasons"]["accuracy"]
        .as_str()
        .unwrap()
        .contains("wrong"));
    assert!(v[2]["error"].as_str().unwrap().contains("completion"));
    assert_eq!(v[3]["line"], 4);
    assert_eq!((sum.lines, sum.errors), (4, 2));
}

#[test]
fn reward_lines_with_tasks() {
    let cfg: RewardsConfig = serde_json::from_value(serde_json::json!({
        "rewards": [{"name": "countdown"}, {"name": "soft_overlong", "cache_len": 10, "max_len": 20}]
    }))
    .unwrap();
    let comp = CompositeReward::from_config(&cfg).unwrap();
    let input = "{\"prompt\": \"q\", \"completion\": \"<answer>1+2</answer>\", \"nums\": [1, 2], \"target\": 3, \"completion_tokens\": 15}\n";
    let mut out = Vec::new();
    reward_jsonl(
        input.as_bytes(),
        &mut out,
        &comp,
        &RewardJsonlOptions::default(),
    )
    .unwrap();
    let v = lines(&out);
    assert_eq!(v[0]["scores"]["countdown"], 1.0);
    assert_eq!(v[0]["scores"]["soft_overlong"], -0.5);
}
