//! Line-oriented drivers behind `r1 verify` and `r1 reward`: JSONL in, one JSON line
//! out per input line, in order. A bad line (invalid JSON, missing field, unusable
//! reference) gets `{"line": N, "error": "..."}` and the run goes on; the returned
//! [`Summary`] lets the CLI set its exit status. Blank lines are skipped.

use std::io::{BufRead, Write};

use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Value};

use crate::compose::CompositeReward;
use crate::verify::{verify, VerifyOptions};
use crate::RewardInput;

/// Counts for a whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Non-blank input lines.
    pub lines: usize,
    /// Lines verified correct (`verify`) — 0 for `reward`.
    pub correct: usize,
    /// Lines that could not be processed.
    pub errors: usize,
    /// Sum of totals (`reward`), for a mean.
    pub total_sum: f64,
}

impl Summary {
    /// True when no line failed.
    pub fn ok(&self) -> bool {
        self.errors == 0
    }
}

/// Reads lines with their 1-based numbers, handing invalid UTF-8 on as an error.
fn for_each_line(
    mut input: impl BufRead,
    mut f: impl FnMut(usize, Result<&str, String>) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        n += 1;
        match std::str::from_utf8(&buf) {
            Ok(s) if s.trim().is_empty() => {}
            Ok(s) => f(n, Ok(s.trim_end_matches(['\n', '\r'])))?,
            Err(e) => f(n, Err(format!("invalid UTF-8: {e}")))?,
        }
    }
}

/// A JSON string or number as text (gold answers are often numbers in data sets).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Text of a prompt/completion: a string, or chat messages (their contents joined;
/// for completions only the assistant's).
fn message_text(v: &Value, assistant_only: bool) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(msgs) => {
            let parts: Vec<&str> = msgs
                .iter()
                .filter(|m| {
                    !assistant_only || m.get("role").and_then(Value::as_str) == Some("assistant")
                })
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .collect();
            Some(parts.join("\n"))
        }
        _ => None,
    }
}

fn write_line(out: &mut impl Write, v: &Value) -> Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// `r1 verify`: each line `{"gold": ..., "pred": ...}` → `{"line", "correct", "gold",
/// "gold_rule", "pred", "pred_rule"}`.
pub fn verify_jsonl(
    input: impl BufRead,
    mut output: impl Write,
    opts: &VerifyOptions,
) -> Result<Summary> {
    let mut sum = Summary::default();
    for_each_line(input, |n, line| {
        sum.lines += 1;
        let result = line.and_then(|l| {
            let v: Value = serde_json::from_str(l).map_err(|e| format!("invalid JSON: {e}"))?;
            let gold = v.get("gold").ok_or("missing field 'gold'")?;
            let gold = text_of(gold).ok_or("'gold' must be a string or number")?;
            let pred = v.get("pred").ok_or("missing field 'pred'")?;
            let pred = text_of(pred).ok_or("'pred' must be a string or number")?;
            let verdict = verify(&pred, &gold, opts);
            if let Some(e) = verdict.error {
                return Err(e);
            }
            Ok(verdict)
        });
        match result {
            Ok(v) => {
                sum.correct += v.correct as usize;
                write_line(
                    &mut output,
                    &json!({
                        "line": n,
                        "correct": v.correct,
                        "gold": v.gold,
                        "gold_rule": v.gold_rule.map(|r| r.as_str()),
                        "pred": v.pred,
                        "pred_rule": v.pred_rule.map(|r| r.as_str()),
                    }),
                )
            }
            Err(e) => {
                sum.errors += 1;
                write_line(&mut output, &json!({"line": n, "error": e}))
            }
        }
    })?;
    output.flush()?;
    Ok(sum)
}

/// Options for [`reward_jsonl`].
#[derive(Debug, Clone, Default)]
pub struct RewardJsonlOptions {
    /// Generation limit for length-aware rewards, when a line has no
    /// `max_completion_tokens`.
    pub max_completion_tokens: usize,
}

/// Keys of a line copied into `extra` (task data) when there is no `extra` object.
const TASK_KEYS: &[&str] = &[
    "tests",
    "test",
    "entry_point",
    "test_setup",
    "inputs",
    "outputs",
    "nums",
    "numbers",
    "target",
];

/// `r1 reward`: each line `{"prompt", "completion", "answer"|"solution"?, "tests"?,
/// "completion_tokens"?, "max_completion_tokens"?, "truncated"?, "extra"?}` →
/// `{"line", "total", "scores": {name: value}, "reasons": {name: reason}}`.
/// Without `completion_tokens`, the length is estimated as characters / 4.
pub fn reward_jsonl(
    input: impl BufRead,
    mut output: impl Write,
    reward: &CompositeReward,
    opts: &RewardJsonlOptions,
) -> Result<Summary> {
    let mut sum = Summary::default();
    for_each_line(input, |n, line| {
        sum.lines += 1;
        let result = line.and_then(|l| {
            let v: Value = serde_json::from_str(l).map_err(|e| format!("invalid JSON: {e}"))?;
            let prompt = match v.get("prompt") {
                Some(p) => message_text(p, false).ok_or("'prompt' must be a string or messages")?,
                None => String::new(),
            };
            let completion = v.get("completion").ok_or("missing field 'completion'")?;
            let completion = message_text(completion, true)
                .ok_or("'completion' must be a string or messages")?;
            let answer = match v.get("answer").or_else(|| v.get("solution")) {
                None | Some(Value::Null) => None,
                Some(a) => Some(text_of(a).ok_or("'answer' must be a string or number")?),
            };
            let extra = match v.get("extra") {
                Some(e) => e.clone(),
                None => {
                    let m: serde_json::Map<String, Value> = TASK_KEYS
                        .iter()
                        .filter_map(|k| v.get(*k).map(|x| (k.to_string(), x.clone())))
                        .collect();
                    if m.is_empty() {
                        Value::Null
                    } else {
                        Value::Object(m)
                    }
                }
            };
            let tokens = v
                .get("completion_tokens")
                .and_then(Value::as_u64)
                .map(|t| t as usize)
                .unwrap_or_else(|| completion.chars().count().div_ceil(4));
            let max = v
                .get("max_completion_tokens")
                .and_then(Value::as_u64)
                .map(|t| t as usize)
                .unwrap_or(opts.max_completion_tokens);
            let truncated = v
                .get("truncated")
                .and_then(Value::as_bool)
                .unwrap_or(max > 0 && tokens >= max);
            let input = RewardInput {
                prompt: &prompt,
                completion: &completion,
                answer: answer.as_deref(),
                completion_tokens: tokens,
                max_completion_tokens: max,
                truncated,
                extra: &extra,
            };
            Ok(reward.score(&input))
        });
        match result {
            Ok(s) => {
                sum.total_sum += s.total;
                let scores: serde_json::Map<String, Value> = s
                    .components
                    .iter()
                    .map(|c| (c.name.clone(), json!(c.score.value)))
                    .collect();
                let reasons: serde_json::Map<String, Value> = s
                    .components
                    .iter()
                    .map(|c| (c.name.clone(), json!(c.score.reason)))
                    .collect();
                write_line(
                    &mut output,
                    &json!({"line": n, "total": s.total, "scores": scores, "reasons": reasons}),
                )
            }
            Err(e) => {
                sum.errors += 1;
                write_line(&mut output, &json!({"line": n, "error": e}))
            }
        }
    })?;
    output.flush()?;
    Ok(sum)
}
