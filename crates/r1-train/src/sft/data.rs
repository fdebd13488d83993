//! SFT datasets: one JSON object per line, in one of the shapes TRL accepts.
//!
//! - `{"messages": [{"role", "content"}, ...]}`: the trailing assistant turn(s) are
//!   the target, everything before is the prompt;
//! - `{"prompt": "...", "completion": "..."}`: plain text; either side may also be
//!   a list of chat messages (TRL's conversational prompt-completion shape).
//!
//! Other columns (ids, provenance) are ignored. Blank lines are skipped. Errors name
//! the file and 1-based line; an empty file is an error naming the file.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::path::Path;

/// A chat turn `(role, content)`.
pub type Turn = (String, String);

/// One training example before templating.
#[derive(Debug, Clone, PartialEq)]
pub struct SftExample {
    /// The prompt turns (a plain `prompt` string becomes one user turn).
    pub context: Vec<Turn>,
    /// The assistant turn(s) the loss is computed on.
    pub target: Vec<Turn>,
    /// Representable as plain text (what the `raw` template needs): both sides were
    /// plain strings, or the conversation is one user turn and one assistant turn
    /// (e.g. the records `r1 sample` and `r1 distill` write).
    pub plain: bool,
}

/// Loads every example of `path`.
pub fn load_sft_jsonl(path: &Path) -> Result<Vec<SftExample>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read SFT dataset {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_line(line).map_err(|e| anyhow!("{}:{}: {e}", path.display(), i + 1))?);
    }
    if out.is_empty() {
        bail!("{}: SFT dataset has no examples", path.display());
    }
    Ok(out)
}

/// Parses one JSONL line.
pub fn parse_line(line: &str) -> Result<SftExample> {
    let v: Value = serde_json::from_str(line).map_err(|e| anyhow!("invalid JSON: {e}"))?;
    let Value::Object(obj) = v else {
        bail!("expected a JSON object");
    };
    if let Some(m) = obj.get("messages") {
        let turns = turns(m, "messages")?;
        let split = turns
            .iter()
            .rposition(|(r, _)| r != "assistant")
            .map_or(0, |i| i + 1);
        if split == turns.len() {
            bail!("`messages` must end with an assistant turn (the training target)");
        }
        if split == 0 {
            bail!("`messages` has no prompt turn before the assistant turn");
        }
        let (context, target) = turns.split_at(split);
        return Ok(SftExample {
            plain: single_exchange(context, target),
            context: context.to_vec(),
            target: target.to_vec(),
        });
    }
    let prompt = obj
        .get("prompt")
        .ok_or_else(|| anyhow!("missing column `messages` (or `prompt` and `completion`)"))?;
    let completion = obj
        .get("completion")
        .ok_or_else(|| anyhow!("missing column `completion`"))?;
    let (context, p_plain) = match prompt {
        Value::String(s) if !s.is_empty() => (vec![("user".to_string(), s.clone())], true),
        Value::String(_) => bail!("`prompt` is empty"),
        other => (turns(other, "prompt")?, false),
    };
    let (target, c_plain) = match completion {
        Value::String(s) if !s.is_empty() => (vec![("assistant".to_string(), s.clone())], true),
        Value::String(_) => bail!("`completion` is empty"),
        other => (turns(other, "completion")?, false),
    };
    if context.is_empty() || target.is_empty() {
        bail!("`prompt` and `completion` must not be empty lists");
    }
    if let Some((r, _)) = target.iter().find(|(r, _)| r != "assistant") {
        bail!("`completion` turns must be assistant turns, found role `{r}`");
    }
    Ok(SftExample {
        plain: (p_plain && c_plain) || single_exchange(&context, &target),
        context,
        target,
    })
}

/// One user turn answered by one assistant turn: the same as a plain
/// prompt/completion pair, nothing (no system message, no history) lost.
fn single_exchange(context: &[Turn], target: &[Turn]) -> bool {
    matches!(context, [(r, _)] if r == "user") && target.len() == 1
}

fn turns(v: &Value, key: &str) -> Result<Vec<Turn>> {
    let Value::Array(items) = v else {
        bail!("`{key}` must be a string or a list of chat messages");
    };
    r1_tasks::parse_messages(items, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let e = parse_line(r#"{"prompt":"2+2?","completion":"4"}"#).unwrap();
        assert!(e.plain);
        assert_eq!(e.target, vec![("assistant".into(), "4".into())]);
        let e = parse_line(
            r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#,
        )
        .unwrap();
        assert_eq!(e.context.len(), 2);
        assert_eq!(e.target[0].1, "a");
        // The system message would be lost as plain text.
        assert!(!e.plain);
        let e = parse_line(
            r#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#,
        )
        .unwrap();
        assert!(e.plain, "one user and one assistant turn are plain text");
    }

    #[test]
    fn errors_name_the_column() {
        let err = parse_line(r#"{"prompt":"x"}"#).unwrap_err().to_string();
        assert!(err.contains("`completion`"), "{err}");
        let err = parse_line(r#"{"text":"x"}"#).unwrap_err().to_string();
        assert!(err.contains("`messages`"), "{err}");
        let err = parse_line(r#"{"messages":[{"role":"user","content":"q"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("assistant"), "{err}");
    }

    #[test]
    fn file_errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("r1-sft-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("d.jsonl");
        std::fs::write(
            &p,
            "{\"prompt\":\"a\",\"completion\":\"b\"}\n\n{\"prompt\":\"a\"}\n",
        )
        .unwrap();
        let err = load_sft_jsonl(&p).unwrap_err().to_string();
        assert!(
            err.contains("d.jsonl:3:") && err.contains("`completion`"),
            "{err}"
        );
        std::fs::write(&p, "\n").unwrap();
        let err = load_sft_jsonl(&p).unwrap_err().to_string();
        assert!(
            err.contains("d.jsonl") && err.contains("no examples"),
            "{err}"
        );
    }
}
