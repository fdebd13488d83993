//! Turning an example into the prompt the model sees.

use anyhow::{bail, Result};
use r1_model::{Message, Tokenizer};
use r1_tasks::{r1_zero_prompt, Example, DEFAULT_SYSTEM_PROMPT};
use serde::Serialize;

/// How a question becomes a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Template {
    /// The paper's R1-Zero template (Table 1) as plain text: for base models.
    R1Zero,
    /// The model's chat template with [`DEFAULT_SYSTEM_PROMPT`] as system message
    /// (unless the example's own messages bring a system message): for instruct models.
    Chat,
    /// The question text as it is.
    Raw,
}

impl std::str::FromStr for Template {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "r1-zero" => Self::R1Zero,
            "chat" => Self::Chat,
            "raw" => Self::Raw,
            other => bail!("unknown template `{other}` (r1-zero, chat, raw)"),
        })
    }
}

impl Template {
    /// Name as given on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::R1Zero => "r1-zero",
            Self::Chat => "chat",
            Self::Raw => "raw",
        }
    }
}

/// The prompt text and its token ids for `ex`.
///
/// A model without a chat template falls back from `chat` to the R1-Zero text, so
/// the answer contract (think/answer tags) is the same either way.
pub fn encode(tok: &Tokenizer, template: Template, ex: &Example) -> Result<(String, Vec<u32>)> {
    let plain = |text: String| -> Result<(String, Vec<u32>)> {
        // Plain text gets the tokenizer's special tokens (BOS) itself.
        let ids = tok.encode(&text, true)?;
        Ok((text, ids))
    };
    match template {
        Template::Raw => plain(ex.question.clone()),
        Template::R1Zero => plain(r1_zero_prompt(&ex.question)),
        Template::Chat if !tok.has_chat_template() => plain(r1_zero_prompt(&ex.question)),
        Template::Chat => {
            let mut msgs: Vec<Message> = match &ex.messages {
                Some(m) => m.iter().map(|(r, c)| Message::new(r, c)).collect(),
                None => vec![Message::new("user", &ex.question)],
            };
            if !msgs.iter().any(|m| m.role == "system") {
                msgs.insert(0, Message::new("system", DEFAULT_SYSTEM_PROMPT));
            }
            let text = tok.apply_chat_template(&msgs, true)?;
            // The template already wrote the special tokens.
            let ids = tok.encode(&text, false)?;
            Ok((text, ids))
        }
    }
}

/// Token ids of every example's prompt; an error names the example.
pub fn encode_all(
    tok: &r1_model::Tokenizer,
    template: Template,
    examples: &[r1_tasks::Example],
) -> anyhow::Result<Vec<Vec<u32>>> {
    use anyhow::Context;
    examples
        .iter()
        .map(|ex| {
            encode(tok, template, ex)
                .map(|(_, ids)| ids)
                .with_context(|| format!("prompt for {}", ex.id))
        })
        .collect()
}
