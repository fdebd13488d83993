//! r1-rollout: producing completions (rollouts) for RL and evaluation.
//!
//! The trainer only sees the [`RolloutEngine`] trait, so rollouts can come from the
//! in-process [`LocalEngine`] today and from an external OpenAI-compatible server
//! (vLLM, SGLang) later without touching the training code.

pub mod engine;
pub mod sampling;

pub use engine::LocalEngine;
pub use sampling::SamplingParams;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end-of-sequence token was sampled (it is included in `token_ids`).
    Eos,
    /// A stop string appeared (the text is cut before it).
    Stop,
    /// `max_new_tokens` was reached: the completion is truncated.
    Length,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Completion {
    pub prompt_index: usize,
    pub sample_index: usize,
    pub token_ids: Vec<u32>,
    /// Log-probability of each sampled token under `softmax(logits / T)`.
    pub logprobs: Vec<f32>,
    pub text: String,
    pub finish_reason: FinishReason,
}

/// Anything that turns tokenized prompts into `n` completions each.
pub trait RolloutEngine {
    /// Returns, for every prompt, its `n` completions in sample order.
    fn generate(
        &mut self,
        prompts: &[Vec<u32>],
        n: usize,
        params: &SamplingParams,
    ) -> anyhow::Result<Vec<Vec<Completion>>>;
}
