//! Rejection sampling's record keeping: graded completions become [`Candidate`]s,
//! kept candidates become SFT-ready JSONL records with provenance.

use std::collections::BTreeMap;

use r1_rollout::{Completion, FinishReason};
use r1_tasks::Example;
use serde_json::{json, Value};

use crate::filters::Candidate;
use crate::grade::{is_code_task, Grader};

/// Grades the completions of one example into candidates. The score is recorded as
/// `code` (fraction of tests passed) for code tasks, `accuracy` (0/1) otherwise.
pub fn candidates(ex: &Example, completions: &[Completion], grader: &Grader) -> Vec<Candidate> {
    let code = is_code_task(ex);
    completions
        .iter()
        .map(|c| {
            let truncated = c.finish_reason == FinishReason::Length;
            let g = grader.grade(ex, &c.text, c.token_ids.len(), truncated);
            let mut scores = BTreeMap::new();
            scores.insert(if code { "code" } else { "accuracy" }.to_string(), g.score);
            Candidate {
                prompt_id: ex.id.clone(),
                prompt: ex.question.clone(),
                sample_index: c.sample_index,
                // A truncated completion is never kept as correct: it has no ending.
                correct: g.correct && !truncated,
                completion: c.text.clone(),
                code_task: code,
                scores,
            }
        })
        .collect()
}

/// The SFT record of a kept candidate: chat `messages` (user question, assistant
/// completion), the same as `prompt`/`completion` columns, and provenance.
pub fn sft_record(c: &Candidate, model: &str) -> Value {
    json!({
        "messages": [
            {"role": "user", "content": c.prompt},
            {"role": "assistant", "content": c.completion},
        ],
        "prompt": c.prompt,
        "completion": c.completion,
        "provenance": {
            "model": model,
            "prompt_id": c.prompt_id,
            "sample_index": c.sample_index,
            "scores": c.scores,
        },
    })
}
