//! Throughput figures (plain `main`, `harness = false`): math verifications per
//! second on a realistic mix, composite rewards per second, and sandboxed code
//! runs per second. Run with `cargo bench -p r1-rewards`.

use std::time::Instant;

use r1_rewards::rewards::code::{run_code_tests, CodeOptions};
use r1_rewards::sandbox::find_python;
use r1_rewards::{verify, CompositeReward, RewardInput, RewardsConfig, VerifyOptions};
use serde_json::json;

/// (prediction, reference) pairs in the proportions a math RL run sees them:
/// long chains of thought ending in a boxed answer, GSM8K references, fractions,
/// radicals, symbolic answers, tuples, intervals, misses.
fn mix() -> Vec<(String, String)> {
    let cot = "Let me think step by step. First we compute the sum, then check it. Wait, let me re-check. ".repeat(40);
    let cases = [
        (
            "\\boxed{72}",
            "Natalia sold 48/2 = 24 clips in May.\n#### 72",
        ),
        ("The answer is $\\boxed{\\frac{3}{4}}$.", "0.75"),
        ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}"),
        ("\\boxed{(x+1)^2}", "x^2+2x+1"),
        ("\\boxed{(1, -2)}", "(1,-2)"),
        ("\\boxed{[0, \\infty)}", "x \\ge 0"),
        ("\\boxed{1,234}", "#### 1234"),
        ("\\boxed{16\\pi}", "16\\pi"),
        ("\\boxed{17}", "18"),
        ("<answer>5</answer>", "\\boxed{\\frac{10}{2}}"),
    ];
    cases
        .iter()
        .map(|(p, g)| (format!("<think>{cot}</think>{p}"), g.to_string()))
        .collect()
}

fn main() {
    let data = mix();
    let opts = VerifyOptions::default();
    let n = 20_000;
    let t = Instant::now();
    let mut correct = 0;
    for i in 0..n {
        let (p, g) = &data[i % data.len()];
        correct += verify(p, g, &opts).correct as usize;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "math verify: {:.0} verifications/s ({} in {:.2}s, {} correct, completions ~{} chars)",
        n as f64 / secs,
        n,
        secs,
        correct,
        data[0].0.len()
    );

    let cfg: RewardsConfig = serde_json::from_value(json!({"rewards": [
        {"name": "accuracy"}, {"name": "format"}, {"name": "tag_count"},
        {"name": "language_consistency"}, {"name": "cosine"}, {"name": "repetition"},
        {"name": "soft_overlong", "cache_len": 256}
    ]}))
    .expect("config");
    let comp = CompositeReward::from_config(&cfg).expect("rewards");
    let null = serde_json::Value::Null;
    let n = 5_000;
    let t = Instant::now();
    let mut total = 0.0;
    for i in 0..n {
        let (p, g) = &data[i % data.len()];
        let input = RewardInput {
            prompt: "What is the value? Put the answer in \\boxed{}.",
            completion: p,
            answer: Some(g),
            completion_tokens: p.len() / 4,
            max_completion_tokens: 2048,
            truncated: false,
            extra: &null,
        };
        total += comp.score(&input).total;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "composite (7 rewards): {:.0} completions/s (mean total {:.3})",
        n as f64 / secs,
        total / n as f64
    );

    if find_python().is_none() {
        println!("code: python3 not found, skipped");
        return;
    }
    let code = "def add(a, b):\n    return a + b\n";
    let asserts = json!({"tests": ["assert add(1, 2) == 3"]});
    let io = json!({"tests": [{"input": "1 2\n", "output": "3\n"}]});
    let io_code = "a, b = map(int, input().split())\nprint(a + b)\n";
    let o = CodeOptions::default();
    for (label, code, extra) in [
        ("assert-style", code, &asserts),
        ("stdin/stdout", io_code, &io),
    ] {
        let n = 40;
        let t = Instant::now();
        for _ in 0..n {
            let r = run_code_tests(code, extra, &o).expect("runs");
            assert_eq!(r, (1, 1));
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "code ({label}, 1 test, python3): {:.1} runs/s sequential ({:.1} ms each)",
            n as f64 / secs,
            secs * 1000.0 / n as f64
        );
    }
}
