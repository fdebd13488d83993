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
                conversation: ex.messages.clone(),
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

/// The SFT record of a kept candidate: chat `messages` (the example's conversation, or
/// its question as one user turn, then the assistant completion), the last user turn
/// and the completion as `prompt`/`completion` columns, and provenance.
pub fn sft_record(c: &Candidate, model: &str) -> Value {
    let mut messages: Vec<Value> = match &c.conversation {
        Some(turns) => turns
            .iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect(),
        None => vec![json!({"role": "user", "content": c.prompt})],
    };
    messages.push(json!({"role": "assistant", "content": c.completion}));
    json!({
        "messages": messages,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sft_records_keep_every_turn_of_a_conversation() {
        let turn = |r: &str, c: &str| (r.to_string(), c.to_string());
        let c = Candidate {
            prompt_id: "c1".into(),
            prompt: "And times 3?".into(),
            conversation: Some(vec![
                turn("system", "Be brief."),
                turn("user", "What is 2 + 2?"),
                turn("assistant", "4"),
                turn("user", "And times 3?"),
            ]),
            sample_index: 0,
            completion: "<answer>12</answer>".into(),
            correct: true,
            code_task: false,
            scores: BTreeMap::new(),
        };
        let rec = sft_record(&c, "m");
        let roles: Vec<&str> = rec["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
        assert_eq!(rec["messages"][1]["content"], "What is 2 + 2?");
        assert_eq!(rec["messages"][4]["content"], "<answer>12</answer>");
        assert_eq!(rec["prompt"], "And times 3?");
        // Without a conversation: the question as the one user turn.
        let plain = sft_record(
            &Candidate {
                conversation: None,
                ..c
            },
            "m",
        );
        assert_eq!(plain["messages"].as_array().unwrap().len(), 2);
        assert_eq!(plain["messages"][0]["content"], "And times 3?");
    }
}
