//! Examples to token ids: the prompt the model conditions on and the completion the
//! loss is computed on.
//!
//! With the chat template, the prompt is the conversation rendered up to the
//! assistant turn with the generation prompt (exactly what generation sees later),
//! and the completion is what rendering the whole conversation adds after that
//! prefix: the assistant content plus the template's own end-of-turn text (e.g.
//! `<|im_end|>`), so the model learns to stop. Deriving it by rendering twice works
//! for any template without knowing its end-of-turn token.

use super::config::SftTemplate;
use super::data::SftExample;
use anyhow::{bail, Result};
use r1_model::{Message, Tokenizer};

/// One tokenized example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    pub prompt: Vec<u32>,
    pub completion: Vec<u32>,
}

impl Tokenized {
    pub fn len(&self) -> usize {
        self.prompt.len() + self.completion.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn messages(turns: &[(String, String)]) -> Vec<Message> {
    turns.iter().map(|(r, c)| Message::new(r, c)).collect()
}

/// The prompt and completion texts of `ex` under the chat template.
pub fn render_chat(
    tok: &Tokenizer,
    ex: &SftExample,
    system: Option<&str>,
) -> Result<(String, String)> {
    let mut context = messages(&ex.context);
    if let Some(s) = system {
        if !context.iter().any(|m| m.role == "system") {
            context.insert(0, Message::new("system", s));
        }
    }
    let prompt = tok.apply_chat_template(&context, true)?;
    let mut all = context.clone();
    all.extend(messages(&ex.target));
    let full = tok.apply_chat_template(&all, false)?;
    let completion = match full.strip_prefix(&prompt) {
        Some(rest) => rest.to_string(),
        // Templates that render earlier turns differently once an answer follows
        // (e.g. ones that strip reasoning): content plus the end-of-turn text.
        None => {
            let eot = end_of_turn(tok)?;
            ex.target
                .iter()
                .map(|(_, c)| format!("{c}{eot}"))
                .collect::<String>()
        }
    };
    // What follows the end-of-turn token is layout (a newline) the model never
    // generates: generation stops at the end-of-turn token.
    Ok((prompt, completion.trim_end().to_string()))
}

/// The text the template writes after an assistant message's content.
pub fn end_of_turn(tok: &Tokenizer) -> Result<String> {
    const MARK: &str = "\u{1}R1MARK\u{1}";
    let msgs = [Message::new("user", "q"), Message::new("assistant", MARK)];
    let full = tok.apply_chat_template(&msgs, false)?;
    match full.rfind(MARK) {
        Some(i) => Ok(full[i + MARK.len()..].to_string()),
        None => bail!("the chat template drops the assistant message; use template = \"raw\""),
    }
}

/// Tokenizes one example; `None` when nothing of the completion fits `max_length`.
pub fn tokenize(
    tok: &Tokenizer,
    ex: &SftExample,
    template: SftTemplate,
    system: Option<&str>,
    max_length: usize,
) -> Result<Option<Tokenized>> {
    let (prompt, mut completion) = match template {
        SftTemplate::Chat => {
            let (p, c) = render_chat(tok, ex, system)?;
            // The template wrote the special tokens itself.
            (tok.encode(&p, false)?, tok.encode(&c, false)?)
        }
        SftTemplate::Raw => {
            if !ex.plain {
                bail!("template = \"raw\" needs plain `prompt`/`completion` strings, not chat messages");
            }
            let mut c = tok.encode(&ex.target[0].1, false)?;
            if let Some(&eos) = tok.eos_ids.first() {
                c.push(eos);
            }
            (tok.encode(&ex.context[0].1, true)?, c)
        }
    };
    if prompt.is_empty() || prompt.len() >= max_length {
        return Ok(None);
    }
    completion.truncate(max_length - prompt.len());
    if completion.is_empty() {
        return Ok(None);
    }
    Ok(Some(Tokenized { prompt, completion }))
}

/// Tokenizes every example; returns the kept ones and how many did not fit.
pub fn tokenize_all(
    tok: &Tokenizer,
    examples: &[SftExample],
    template: SftTemplate,
    system: Option<&str>,
    max_length: usize,
) -> Result<(Vec<Tokenized>, usize)> {
    let mut kept = Vec::with_capacity(examples.len());
    let mut dropped = 0;
    for (i, ex) in examples.iter().enumerate() {
        match tokenize(tok, ex, template, system, max_length)
            .map_err(|e| anyhow::anyhow!("example {}: {e:#}", i + 1))?
        {
            Some(t) => kept.push(t),
            None => dropped += 1,
        }
    }
    if kept.is_empty() {
        bail!("no example fits max_length = {max_length} (prompts are longer)");
    }
    Ok((kept, dropped))
}
