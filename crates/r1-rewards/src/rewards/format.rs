//! `format`: R1's format reward. 1 when the completion is `<think>…</think>` followed
//! by the answer (`<answer>…</answer>` by default), else 0.
//!
//! Chat templates of R1-style models often pre-fill `<think>` in the prompt, so the
//! completion starts inside the thinking block; a format check that insists on the
//! opening tag would then always score 0. `prefilled = "auto"` accepts that case
//! when the prompt ends with the opening tag, or the completion has a closing tag
//! and no opening one.

use serde::{Deserialize, Serialize};

use crate::{RewardFn, RewardInput, Score};

/// Whether the opening think tag may be in the prompt instead of the completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Prefill {
    #[default]
    Auto,
    Always,
    Never,
}

/// Tags and strictness for [`Format`] and [`crate::rewards::tag_count::TagCount`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FormatOptions {
    pub think_open: String,
    pub think_close: String,
    pub answer_open: String,
    pub answer_close: String,
    /// Require the answer in answer tags; otherwise any non-empty text after the
    /// thinking block is accepted (e.g. a `\boxed{}` summary).
    pub require_answer_tags: bool,
    pub prefilled: Prefill,
}

impl Default for FormatOptions {
    fn default() -> Self {
        Self {
            think_open: "<think>".into(),
            think_close: "</think>".into(),
            answer_open: "<answer>".into(),
            answer_close: "</answer>".into(),
            require_answer_tags: true,
            prefilled: Prefill::Auto,
        }
    }
}

impl FormatOptions {
    /// Is the thinking block opened by the prompt rather than the completion?
    pub fn is_prefilled(&self, prompt: &str, completion: &str) -> bool {
        let starts_open = completion.trim_start().starts_with(&self.think_open);
        match self.prefilled {
            Prefill::Never => false,
            Prefill::Always => !starts_open,
            Prefill::Auto => {
                !starts_open
                    && (prompt.trim_end().ends_with(&self.think_open)
                        || (!completion.contains(&self.think_open)
                            && completion.contains(&self.think_close)))
            }
        }
    }
}

/// The format reward.
pub struct Format {
    pub opts: FormatOptions,
}

impl Format {
    fn check(&self, input: &RewardInput) -> Result<(), &'static str> {
        let o = &self.opts;
        let c = input.completion;
        let body = if o.is_prefilled(input.prompt, c) {
            c
        } else {
            c.trim_start()
                .strip_prefix(o.think_open.as_str())
                .ok_or("does not start with the think tag")?
        };
        if body.contains(&o.think_open) {
            return Err("more than one think tag");
        }
        let mut parts = body.split(o.think_close.as_str());
        let thinking = parts.next().unwrap_or("");
        let after = parts.next().ok_or("think block not closed")?;
        if parts.next().is_some() {
            return Err("more than one closing think tag");
        }
        if thinking.trim().is_empty() {
            return Err("empty think block");
        }
        let after = after.trim();
        if !o.require_answer_tags {
            return if after.is_empty() {
                Err("nothing after the think block")
            } else {
                Ok(())
            };
        }
        let inner = after
            .strip_prefix(o.answer_open.as_str())
            .and_then(|t| t.strip_suffix(o.answer_close.as_str()))
            .ok_or("answer not wrapped in answer tags right after thinking")?;
        if inner.contains(&o.answer_open) || inner.contains(&o.answer_close) {
            return Err("more than one answer tag");
        }
        if inner.trim().is_empty() {
            return Err("empty answer");
        }
        Ok(())
    }
}

impl RewardFn for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn score(&self, input: &RewardInput) -> Score {
        match self.check(input) {
            Ok(()) => Score::new(1.0, "well formatted"),
            Err(why) => Score::new(0.0, why),
        }
    }
}
