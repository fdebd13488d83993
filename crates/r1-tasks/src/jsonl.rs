//! JSONL datasets: one JSON object per line.
//!
//! Columns, first match wins:
//! - question: `prompt` (a string, or a chat list of `{"role", "content"}` whose
//!   last user message becomes the question), `question`, `problem`;
//! - answer: `answer`, `solution`, `reference` (numbers are accepted and written
//!   as text; a GSM8K `... #### 42` solution is kept whole, the verifier extracts);
//! - id: `id` (string or number), else `<file stem>-<line>`;
//! - every other column goes to [`Example::extra`] (e.g. `tests` for code, or
//!   `nums`/`target` for Countdown), which is `Null` when nothing is left.
//!
//! Blank lines are skipped. Errors name the file and 1-based line.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

use crate::Example;

const QUESTION_KEYS: [&str; 3] = ["prompt", "question", "problem"];
const ANSWER_KEYS: [&str; 3] = ["answer", "solution", "reference"];

/// Loads every example of a JSONL file; an empty file is an error.
pub fn load_jsonl(path: &Path) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read dataset {}", path.display()))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "example".into());
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex = parse_line(line, &stem, i + 1)
            .map_err(|e| anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        out.push(ex);
    }
    if out.is_empty() {
        bail!("{}: dataset has no examples", path.display());
    }
    Ok(out)
}

/// Parses one line (`line_no` is 1-based, used for the default id).
pub fn parse_line(line: &str, stem: &str, line_no: usize) -> Result<Example> {
    let value: Value = serde_json::from_str(line).map_err(|e| anyhow!("invalid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        bail!("expected a JSON object");
    };
    let (question, messages) = take_question(&mut obj)?;
    let answer = take_answer(&mut obj)?;
    let id = match obj.remove("id") {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => bail!("`id` must be a string or number, got {other}"),
        None => format!("{stem}-{line_no}"),
    };
    let extra = if obj.is_empty() {
        Value::Null
    } else {
        Value::Object(obj)
    };
    Ok(Example {
        id,
        question,
        answer,
        extra,
        messages,
    })
}

type Messages = Option<Vec<(String, String)>>;

fn take_question(obj: &mut Map<String, Value>) -> Result<(String, Messages)> {
    let Some((key, value)) = QUESTION_KEYS
        .iter()
        .find_map(|k| obj.remove(*k).map(|v| (*k, v)))
    else {
        bail!("no `prompt`/`question`/`problem` column");
    };
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok((s, None)),
        Value::String(_) => bail!("`{key}` is empty"),
        Value::Array(items) if key == "prompt" => {
            let messages = parse_messages(&items, "prompt")?;
            let question = messages
                .iter()
                .rev()
                .find(|(role, _)| role == "user")
                .map(|(_, content)| content.clone())
                .ok_or_else(|| anyhow!("`prompt` messages have no user message"))?;
            Ok((question, Some(messages)))
        }
        other => bail!(
            "`{key}` must be a string{}, got {}",
            if key == "prompt" {
                " or a list of chat messages"
            } else {
                ""
            },
            kind(&other)
        ),
    }
}

/// A chat `messages` list as (role, content) pairs; `key` names the field in errors.
pub fn parse_messages(items: &[Value], key: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let field = |name: &str| {
                m.get(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("`{key}` message {} has no string `{name}`", i + 1))
            };
            Ok((field("role")?, field("content")?))
        })
        .collect()
}

fn take_answer(obj: &mut Map<String, Value>) -> Result<String> {
    let Some((key, value)) = ANSWER_KEYS
        .iter()
        .find_map(|k| obj.remove(*k).map(|v| (*k, v)))
    else {
        bail!("no `answer`/`solution`/`reference` column");
    };
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => bail!("`{key}` must be a string or number, got {}", kind(&other)),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
