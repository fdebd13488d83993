//! Evaluation and rejection sampling end to end with a scripted engine (no model):
//! batching and ordering, grading, majority vote, summary figures, SFT records.

use r1_eval::{
    candidates, generate_all, score_question, select, sft_record, summarize, FilterOptions, Grader,
};
use r1_rollout::{Completion, FinishReason, RolloutEngine, SamplingParams};
use r1_tasks::Example;

/// Replies with scripted texts: prompt `p` (by its single token id) gets
/// `script[p][sample]`.
struct Scripted {
    script: Vec<Vec<&'static str>>,
    calls: Vec<usize>,
}

impl RolloutEngine for Scripted {
    fn generate(
        &mut self,
        prompts: &[Vec<u32>],
        n: usize,
        _p: &SamplingParams,
    ) -> anyhow::Result<Vec<Vec<Completion>>> {
        self.calls.push(prompts.len());
        Ok(prompts
            .iter()
            .enumerate()
            .map(|(i, ids)| {
                // Samples come back out of order: the runner must sort them.
                (0..n)
                    .rev()
                    .map(|s| Completion {
                        prompt_index: i,
                        sample_index: s,
                        token_ids: vec![1, 2, 3],
                        logprobs: vec![0.0; 3],
                        text: self.script[ids[0] as usize][s].to_string(),
                        finish_reason: FinishReason::Eos,
                    })
                    .collect()
            })
            .collect())
    }
}

fn examples() -> Vec<Example> {
    vec![
        Example::new(
            "q0",
            "What is 1 divided by 2?",
            "The answer is 1/2.\n#### 1/2",
        ),
        Example::new("q1", "What is 3 + 4?", "#### 7"),
        Example::new("q2", "What is 2 + 2?", "\\boxed{4}"),
    ]
}

fn script() -> Vec<Vec<&'static str>> {
    vec![
        // q0: 0.5 and 1/2 vote together and are right; pass@1 = 3/4.
        vec![
            "<think>half</think> <answer>0.5</answer>",
            "<think>hmm</think> <answer>3</answer>",
            "<think>a half</think> <answer>1/2</answer>",
            "<think>again</think> <answer>\\frac{1}{2}</answer>",
        ],
        // q1: a tie 8 vs 7 (8 seen first) -> majority 8, wrong; pass@1 = 1/2.
        vec![
            "<think>x</think> <answer>8</answer>",
            "<think>y</think> <answer>7</answer>",
            "<think>z</think> <answer>7</answer>",
            "<think>w</think> <answer>8</answer>",
        ],
        // q2: no answers at all but one; that one is right and wins alone.
        vec!["", "", "<think>four</think> <answer>4</answer>", ""],
    ]
}

#[test]
fn eval_pipeline_figures() {
    let ex = examples();
    let mut engine = Scripted {
        script: script(),
        calls: vec![],
    };
    let prompts: Vec<Vec<u32>> = (0..3).map(|i| vec![i]).collect();
    let mut progress = vec![];
    let groups = generate_all(
        &mut engine,
        &prompts,
        4,
        &SamplingParams::default(),
        8,
        &mut |d| progress.push(d),
    )
    .unwrap();
    // 8 sequences per batch / 4 samples = 2 prompts per batch.
    assert_eq!(engine.calls, vec![2, 1]);
    assert_eq!(progress, vec![2, 3]);
    assert_eq!(groups[2][0].prompt_index, 2);
    assert_eq!(
        groups[1].iter().map(|c| c.sample_index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );

    let grader = Grader::default();
    let r: Vec<_> = ex
        .iter()
        .zip(&groups)
        .map(|(e, g)| score_question(e, g, &grader))
        .collect();
    assert_eq!(
        (r[0].num_correct, r[0].majority_votes, r[0].majority_correct),
        (3, 3, true)
    );
    assert_eq!(r[0].majority_answer.as_deref(), Some("0.5"));
    assert_eq!(
        (r[1].num_correct, r[1].majority_votes, r[1].majority_correct),
        (2, 2, false)
    );
    assert_eq!(r[1].majority_answer.as_deref(), Some("8"));
    assert_eq!(
        (r[2].num_correct, r[2].majority_votes, r[2].majority_correct),
        (1, 1, true)
    );

    let m = summarize(&r, 4);
    // pass@1 = mean(3/4, 1/2, 1/4) = 0.5; cons@4 = 2/3.
    assert!((m.pass_at_1 - 0.5).abs() < 1e-12);
    assert!((m.cons_at_k - 2.0 / 3.0).abs() < 1e-12);
    // pass@4 with n = 4: 1 for every question with a correct sample -> 1.
    assert_eq!(m.pass_at["pass@4"], 1.0);
    // pass@2: q0 1 - C(1,2)/C(4,2) = 1; q1 1 - C(2,2)/C(4,2) = 5/6;
    // q2 1 - C(3,2)/C(4,2) = 1/2 -> mean (1 + 5/6 + 1/2) / 3 = 7/9.
    assert!((m.pass_at["pass@2"] - 7.0 / 9.0).abs() < 1e-12);
    // Three samples of q2 were empty: no answer, no vote.
    assert_eq!(m.no_answer, 3);
    // sd of (0.75, 0.5, 0.25) = 0.25; half = 1.959964 * 0.25 / sqrt(3) = 0.282896.
    assert!(
        (m.pass_at_1_ci95 - 0.282896).abs() < 1e-6,
        "{}",
        m.pass_at_1_ci95
    );
    assert!(m.line(1.0).starts_with(
        "pass@1 0.5000 ± 0.2829 (95% CI)  cons@4 0.6667  pass@4 1.0000  (n=3, k=4, 1.0 s)"
    ));
}

#[test]
fn rejection_sampling_records() {
    let ex = examples();
    let mut engine = Scripted {
        script: script(),
        calls: vec![],
    };
    let prompts: Vec<Vec<u32>> = (0..3).map(|i| vec![i]).collect();
    let groups = generate_all(
        &mut engine,
        &prompts,
        4,
        &SamplingParams::default(),
        64,
        &mut |_| {},
    )
    .unwrap();
    let grader = Grader::default();
    let all: Vec<_> = ex
        .iter()
        .zip(&groups)
        .flat_map(|(e, g)| candidates(e, g, &grader))
        .collect();
    let (kept, counts) = select(
        all,
        &FilterOptions {
            keep: 2,
            ..Default::default()
        },
    );
    // Correct: q0 samples 0, 2, 3; q1 samples 1, 2; q2 sample 2 -> 6; keep 2 per
    // prompt drops q0's third.
    assert_eq!(
        (
            counts.generated,
            counts.correct,
            counts.over_keep,
            counts.kept
        ),
        (12, 6, 1, 5)
    );
    let rec = sft_record(&kept[0], "m");
    assert_eq!(rec["messages"][0]["content"], "What is 1 divided by 2?");
    assert_eq!(rec["messages"][1]["role"], "assistant");
    assert_eq!(
        rec["completion"],
        "<think>half</think> <answer>0.5</answer>"
    );
    assert_eq!(rec["provenance"]["prompt_id"], "q0");
    assert_eq!(rec["provenance"]["sample_index"], 0);
    assert_eq!(rec["provenance"]["scores"]["accuracy"], 1.0);
}

#[test]
fn code_problems_are_scored_by_their_tests() {
    if r1_rewards::sandbox::find_python().is_none() {
        eprintln!("no python3; skipped");
        return;
    }
    let mut ex = Example::new("c0", "Write add(a, b).", "");
    ex.extra = serde_json::json!({"tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]});
    let grader = Grader::default();
    let good = grader.grade(
        &ex,
        "<think>easy</think>\n```python\ndef add(a, b):\n    return a + b\n```",
        20,
        false,
    );
    assert!(good.correct && good.score == 1.0, "{good:?}");
    assert!(good.answer.unwrap().starts_with("def add"));
    let bad = grader.grade(
        &ex,
        "```python\ndef add(a, b):\n    return a * b\n```",
        20,
        false,
    );
    // add(0, 0) == 0 passes, add(1, 2) == 3 fails: half the tests.
    assert!(!bad.correct && (bad.score - 0.5).abs() < 1e-12, "{bad:?}");
}
