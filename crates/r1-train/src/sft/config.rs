//! [`SftConfig`]: everything `r1 sft` reads from its TOML file.
//!
//! Trainer keys use TRL's `SFTConfig` names where the meaning is the same, so a TRL
//! recipe's numbers carry over: `learning_rate`, `num_train_epochs`, `max_steps`,
//! `per_device_train_batch_size`, `gradient_accumulation_steps`, `max_length`,
//! `warmup_steps`, `lr_scheduler_type`, `max_grad_norm`, `weight_decay`,
//! `adam_beta1`, `adam_beta2`, `adam_epsilon`, `save_steps`, `seed`. LoRA is the
//! `[lora]` table with PEFT's names, as in `r1 zero`.

use crate::lora::LoraConfig;
use crate::optim::{AdamWConfig, Schedule};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How an example becomes text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SftTemplate {
    /// The model's chat template (prompt up to the assistant turn, completion = the
    /// assistant turn including the template's end-of-turn text).
    #[default]
    Chat,
    /// `prompt` and `completion` as plain text; the completion ends with EOS.
    Raw,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// A model folder, a .gguf file or a cache name (default: SmolLM2-135M-Instruct).
    pub model: Option<String>,
    /// Training data (JSONL: `prompt`/`completion` or chat `messages`).
    pub data: Option<PathBuf>,
    pub template: SftTemplate,
    /// System message inserted (chat template only) when an example has none.
    pub system_prompt: Option<String>,
    pub learning_rate: f64,
    /// Passes over the data (fractions allowed); used when `max_steps <= 0`.
    pub num_train_epochs: f64,
    /// Optimizer steps; `-1` or `0`: from `num_train_epochs`.
    pub max_steps: i64,
    /// Sequences per micro-batch.
    pub per_device_train_batch_size: usize,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Prompt + completion tokens; longer examples lose the end of their completion.
    pub max_length: usize,
    pub warmup_steps: usize,
    /// `linear`, `cosine` or `constant` (after warm-up).
    pub lr_scheduler_type: Schedule,
    /// Global gradient-norm clip (0: none).
    pub max_grad_norm: f64,
    /// Recompute activations in the backward pass (less memory, ~1 extra forward).
    pub gradient_checkpointing: bool,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Checkpoint every this many steps (and always at the end; 0: only at the end).
    pub save_steps: usize,
    pub seed: u64,
    /// Length bucketing (r1's own key): micro-batches per sorting window. Examples
    /// are shuffled, then sorted by length within windows of this many micro-batches,
    /// so a micro-batch pads little while the order stays random. 0: no bucketing.
    pub bucket_window: usize,
    /// Train LoRA adapters instead of all weights (`[lora]`: r, lora_alpha,
    /// lora_dropout, target_modules). Checkpoints keep the adapters for resuming; the
    /// saved model has them merged.
    pub lora: Option<LoraConfig>,
    /// `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// `f32`, `bf16`, `f16`.
    pub dtype: String,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            model: None,
            data: None,
            template: SftTemplate::Chat,
            system_prompt: None,
            learning_rate: 2e-5,
            num_train_epochs: 3.0,
            max_steps: -1,
            per_device_train_batch_size: 8,
            gradient_accumulation_steps: 1,
            max_length: 1024,
            warmup_steps: 0,
            lr_scheduler_type: Schedule::Linear,
            max_grad_norm: 1.0,
            gradient_checkpointing: false,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            save_steps: 500,
            seed: 42,
            bucket_window: 32,
            lora: None,
            device: "cpu".into(),
            dtype: "f32".into(),
        }
    }
}

impl SftConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            bail!("learning_rate must be > 0, got {}", self.learning_rate);
        }
        if self.per_device_train_batch_size == 0 {
            bail!("per_device_train_batch_size must be at least 1");
        }
        if self.gradient_accumulation_steps == 0 {
            bail!("gradient_accumulation_steps must be at least 1");
        }
        if self.max_length < 2 {
            bail!("max_length must be at least 2, got {}", self.max_length);
        }
        if self.max_steps <= 0
            && !(self.num_train_epochs.is_finite() && self.num_train_epochs > 0.0)
        {
            bail!(
                "num_train_epochs must be > 0 when max_steps is not set, got {}",
                self.num_train_epochs
            );
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            bail!("max_grad_norm must be >= 0, got {}", self.max_grad_norm);
        }
        if let Some(l) = &self.lora {
            l.validate()?;
        }
        Ok(())
    }

    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.adam_beta1,
            beta2: self.adam_beta2,
            eps: self.adam_epsilon,
            weight_decay: self.weight_decay,
        }
    }

    /// Optimizer steps of the run, given the micro-batches in one epoch.
    pub fn total_steps(&self, micro_batches_per_epoch: usize) -> usize {
        if self.max_steps > 0 {
            return self.max_steps as usize;
        }
        let micro = (self.num_train_epochs * micro_batches_per_epoch as f64).ceil() as usize;
        micro.div_ceil(self.gradient_accumulation_steps).max(1)
    }
}
