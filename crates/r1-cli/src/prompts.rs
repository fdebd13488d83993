//! Reading prompts from the command line or JSONL, and turning them into token ids with
//! or without the chat template.

use anyhow::{bail, Context, Result};
use r1_model::{Message, Tokenizer};
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;

/// A prompt as given: plain text, or a chat conversation.
#[derive(Debug, Clone)]
pub enum Prompt {
    Text(String),
    Chat(Vec<Message>),
}

impl Prompt {
    /// The text the model sees: the chat template applied unless `raw`.
    pub fn render(&self, tok: &Tokenizer, raw: bool, system: Option<&str>) -> Result<String> {
        match (self, raw) {
            (Prompt::Text(t), true) => Ok(t.clone()),
            (Prompt::Chat(m), true) => Ok(m
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n")),
            (p, false) => {
                let mut msgs = Vec::new();
                if let Some(s) = system {
                    msgs.push(Message::new("system", s));
                }
                match p {
                    Prompt::Text(t) => msgs.push(Message::new("user", t)),
                    Prompt::Chat(m) => msgs.extend(m.iter().cloned()),
                }
                tok.apply_chat_template(&msgs, true)
            }
        }
    }

    /// The user's words, for display.
    pub fn display(&self) -> String {
        match self {
            Prompt::Text(t) => t.clone(),
            Prompt::Chat(m) => m.last().map(|m| m.content.clone()).unwrap_or_default(),
        }
    }
}

/// Parses a chat `messages` array.
pub fn messages(v: &Value) -> Result<Vec<Message>> {
    let arr = v
        .as_array()
        .context("expected a list of {role, content} messages")?;
    Ok(r1_tasks::parse_messages(arr, "messages")?
        .iter()
        .map(|(r, c)| Message::new(r, c))
        .collect())
}

/// A prompt from a JSON object: `prompt` (text or messages), `messages`, `question` or
/// `problem`.
pub fn prompt_of(v: &Value) -> Result<Prompt> {
    for key in ["prompt", "messages", "question", "problem"] {
        match v.get(key) {
            Some(Value::String(s)) => return Ok(Prompt::Text(s.clone())),
            Some(m @ Value::Array(_)) => {
                return Ok(Prompt::Chat(
                    messages(m).with_context(|| format!("field `{key}`"))?,
                ))
            }
            _ => {}
        }
    }
    bail!("no `prompt`, `messages`, `question` or `problem` field")
}

/// Reads every line of a JSONL file; an error names the file and line.
pub fn read_jsonl(path: &Path) -> Result<Vec<Value>> {
    let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: invalid JSON", path.display(), i + 1))?;
        out.push(v);
    }
    Ok(out)
}

pub fn prompts_from_jsonl(path: &Path) -> Result<Vec<Prompt>> {
    let rows = read_jsonl(path)?;
    if rows.is_empty() {
        bail!("{}: no prompts", path.display());
    }
    rows.iter()
        .enumerate()
        .map(|(i, v)| prompt_of(v).with_context(|| format!("{}:{}", path.display(), i + 1)))
        .collect()
}
