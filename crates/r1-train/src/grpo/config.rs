//! GRPO's knobs, named as in TRL's `GRPOConfig` where the idea is the same. Every field
//! is documented here; `deny_unknown_fields` turns a misspelt key into an error naming it.

use crate::optim::Schedule;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Mean over each sequence's tokens, then over sequences (the paper; length-biased).
    Grpo,
    /// Sum over the micro-batch's tokens / their number.
    Bnpo,
    /// Sum over tokens / (sequences × max_completion_length) (Dr. GRPO).
    DrGrpo,
    /// Sum over tokens / tokens in the whole generation batch (DAPO; TRL's default).
    Dapo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// Divide by the std of the prompt's group (the paper).
    Group,
    /// Divide by the std of the whole batch.
    Batch,
    /// No division (Dr. GRPO).
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// Peak learning rate of AdamW.
    pub learning_rate: f64,
    /// Coefficient of the k3 KL penalty to the reference model; 0 loads no reference.
    pub beta: f64,
    /// Lower clip range: the ratio is clipped at `1 - epsilon`.
    pub epsilon: f64,
    /// Upper clip range (DAPO's clip-higher); defaults to `epsilon`.
    pub epsilon_high: Option<f64>,
    /// Completions sampled per prompt (G).
    pub num_generations: usize,
    /// Completions per forward/backward micro-batch.
    pub per_device_train_batch_size: usize,
    /// Micro-batches per optimizer step. One generation batch holds
    /// `per_device_train_batch_size × gradient_accumulation_steps` completions.
    pub gradient_accumulation_steps: usize,
    /// Optimisation passes over each generation batch (μ); > 1 makes π_old ≠ π_θ.
    pub num_iterations: usize,
    pub temperature: f64,
    pub top_p: f64,
    /// 0 disables top-k.
    pub top_k: usize,
    /// Most tokens generated per completion.
    pub max_completion_length: usize,
    /// Prompts longer than this many tokens are cut from the left (0 = no limit).
    pub max_prompt_length: usize,
    pub loss_type: LossType,
    /// How advantages are scaled; unset means `group`, or `none` for `dr_grpo`.
    pub scale_rewards: Option<ScaleRewards>,
    /// Exclude completions cut by the length limit from the loss.
    pub mask_truncated_completions: bool,
    /// Overrides the rewards' weights, by reward name.
    pub reward_weights: Option<std::collections::BTreeMap<String, f64>>,
    /// DAPO's dynamic sampling: drop groups whose rewards all agree (no signal) and
    /// refill the batch from further prompts.
    pub dynamic_sampling: bool,
    /// Extra generation rounds dynamic sampling may spend refilling one batch.
    pub max_resample_rounds: usize,
    /// Gradients are scaled so their global L2 norm is at most this (0 = off).
    pub max_grad_norm: f64,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    pub lr_scheduler_type: Schedule,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Training steps to run. Each samples one generation batch and makes
    /// `num_iterations` optimizer updates on it.
    pub max_steps: usize,
    /// Write a checkpoint every this many steps (0 = only at the end).
    pub save_steps: usize,
    /// Evaluate on held-out prompts every this many steps (0 = only at start and end).
    pub eval_steps: usize,
    /// Seed for data order and sampling.
    pub seed: u64,
    /// Recompute each decoder block's activations in the backward pass instead of
    /// keeping them: much less memory for about one extra forward pass. On by default,
    /// as in TRL: a SmolLM2-135M training step at 8 x 256 tokens peaks at 2.9 GB with
    /// it and 11.8 GB without.
    pub gradient_checkpointing: bool,
    /// Log-prob rows materialised at a time in the loss pass.
    pub logprob_chunk_rows: usize,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-6,
            beta: 0.0,
            epsilon: 0.2,
            epsilon_high: None,
            num_generations: 8,
            per_device_train_batch_size: 8,
            gradient_accumulation_steps: 1,
            num_iterations: 1,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_completion_length: 256,
            max_prompt_length: 512,
            loss_type: LossType::Dapo,
            scale_rewards: None,
            mask_truncated_completions: false,
            reward_weights: None,
            dynamic_sampling: false,
            max_resample_rounds: 2,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            lr_scheduler_type: Schedule::Constant,
            warmup_steps: 0,
            max_steps: 100,
            save_steps: 10,
            eval_steps: 10,
            seed: 0,
            logprob_chunk_rows: 256,
            gradient_checkpointing: true,
        }
    }
}

impl GrpoConfig {
    pub fn epsilon_high(&self) -> f64 {
        self.epsilon_high.unwrap_or(self.epsilon)
    }

    pub fn scale_rewards(&self) -> ScaleRewards {
        self.scale_rewards.unwrap_or(match self.loss_type {
            LossType::DrGrpo => ScaleRewards::None,
            _ => ScaleRewards::Group,
        })
    }

    /// Completions per generation batch.
    pub fn generation_batch_size(&self) -> usize {
        self.per_device_train_batch_size * self.gradient_accumulation_steps
    }

    /// Checks values that would make training meaningless; errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let bad = |k: &str, why: &str| Err(anyhow::anyhow!("config key `{k}`: {why}"));
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("learning_rate", "must be > 0");
        }
        if self.beta < 0.0 {
            return bad("beta", "must be >= 0");
        }
        if !(0.0..1.0).contains(&self.epsilon) {
            return bad("epsilon", "must be in [0, 1)");
        }
        if self.epsilon_high() < 0.0 {
            return bad("epsilon_high", "must be >= 0");
        }
        if self.num_generations < 2 {
            return bad(
                "num_generations",
                "must be at least 2 (advantages compare samples of a group)",
            );
        }
        if self.per_device_train_batch_size == 0 || self.gradient_accumulation_steps == 0 {
            return bad(
                "per_device_train_batch_size",
                "and gradient_accumulation_steps must be >= 1",
            );
        }
        if !self
            .generation_batch_size()
            .is_multiple_of(self.num_generations)
        {
            return bad(
                "num_generations",
                &format!(
                    "must divide per_device_train_batch_size × gradient_accumulation_steps = {}",
                    self.generation_batch_size()
                ),
            );
        }
        if self.num_iterations == 0 {
            return bad("num_iterations", "must be >= 1");
        }
        if self.temperature <= 0.0 {
            return bad(
                "temperature",
                "must be > 0 for GRPO (samples of a group must differ)",
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", "must be in (0, 1]");
        }
        if self.max_completion_length == 0 {
            return bad("max_completion_length", "must be >= 1");
        }
        if self.logprob_chunk_rows == 0 {
            return bad("logprob_chunk_rows", "must be >= 1");
        }
        Ok(())
    }
}
