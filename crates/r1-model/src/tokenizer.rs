//! The tokenizer with what generation needs beside it: special tokens, end-of-sequence
//! ids and the chat template.

use crate::chat::{ChatTemplate, Message};
use anyhow::Result;
use serde_json::Value;
use std::sync::Arc;

#[derive(Clone)]
pub struct Tokenizer {
    pub inner: Arc<tokenizers::Tokenizer>,
    /// The tokenizer.json text, kept so saving writes exactly what was loaded.
    pub json: Arc<String>,
    pub chat_template: Option<String>,
    compiled: Option<Arc<ChatTemplate>>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    /// Every id that ends a sequence (config, generation_config and tokenizer merged).
    pub eos_ids: Vec<u32>,
}

impl Tokenizer {
    /// Builds from tokenizer.json text; `what` names the source in errors.
    pub fn from_json(
        json: String,
        what: &str,
        chat_template: Option<String>,
        bos_token: Option<String>,
        eos_token: Option<String>,
        pad_token: Option<String>,
    ) -> Result<Self> {
        let inner: tokenizers::Tokenizer = json
            .parse()
            .map_err(|e| anyhow::anyhow!("{what}: not a valid tokenizer: {e}"))?;
        let compiled = match &chat_template {
            Some(src) => Some(Arc::new(
                ChatTemplate::new(
                    src,
                    bos_token.as_deref().unwrap_or(""),
                    eos_token.as_deref().unwrap_or(""),
                )
                .map_err(|e| anyhow::anyhow!("{what}: {e}"))?,
            )),
            None => None,
        };
        let mut tok = Self {
            inner: Arc::new(inner),
            json: Arc::new(json),
            chat_template,
            compiled,
            bos_token,
            eos_token,
            pad_token,
            eos_ids: vec![],
        };
        if let Some(id) = tok.eos_token.as_deref().and_then(|t| tok.token_id(t)) {
            tok.eos_ids.push(id);
        }
        Ok(tok)
    }

    pub fn add_eos_ids(&mut self, ids: &[u32]) {
        for &id in ids {
            if !self.eos_ids.contains(&id) {
                self.eos_ids.push(id);
            }
        }
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes text; `add_special` lets the post-processor add BOS where the model wants it.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special)
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))
    }

    pub fn has_chat_template(&self) -> bool {
        self.compiled.is_some()
    }

    /// Renders `messages` with the chat template (error if the model has none).
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let t = self
            .compiled
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the model has no chat template; use raw prompts"))?;
        t.render(messages, add_generation_prompt)
    }

    /// The `tokenizer_config.json` to save beside tokenizer.json.
    pub fn config_json(&self) -> Value {
        let mut v = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": false,
        });
        if let Some(t) = &self.bos_token {
            v["bos_token"] = t.clone().into();
        }
        if let Some(t) = &self.eos_token {
            v["eos_token"] = t.clone().into();
        }
        if let Some(t) = &self.pad_token {
            v["pad_token"] = t.clone().into();
        }
        if let Some(t) = &self.chat_template {
            v["chat_template"] = t.clone().into();
        }
        v
    }
}

/// A special-token field of tokenizer_config.json: a string or `{"content": ...}`.
pub fn special_token(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

/// `chat_template` of tokenizer_config.json: a string, or a list of named templates
/// of which "default" is used.
pub fn chat_template_field(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list
            .iter()
            .find(|t| t["name"] == "default")
            .or_else(|| list.first())
            .and_then(|t| t["template"].as_str())
            .map(String::from),
        _ => None,
    }
}
