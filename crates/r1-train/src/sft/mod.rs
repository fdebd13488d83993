//! Supervised fine-tuning (R1's cold start and stage-3 SFT, and distillation):
//! next-token loss on the completion tokens only, over JSONL data rendered with the
//! model's chat template.
//!
//! - [`config`]: [`SftConfig`], TRL `SFTConfig` names where they mean the same;
//! - [`data`]: JSONL rows (`prompt`/`completion` or chat `messages`) to examples;
//! - [`tokenize`]: examples to prompt/completion token ids through the chat template;
//! - [`batching`]: length-bucketed micro-batches, deterministic per (seed, epoch);
//! - [`trainer`]: one optimizer step (gradient accumulation, clipping, schedule).
//!
//! Full fine-tuning (every weight) or LoRA (`SftConfig::lora`: only the adapters
//! train, the base stays frozen, the saved model has the adapters merged).

pub mod batching;
pub mod config;
pub mod data;
pub mod tokenize;
pub mod trainer;

pub use config::{SftConfig, SftTemplate};
pub use data::{load_sft_jsonl, SftExample};
pub use tokenize::{tokenize_all, Tokenized};
pub use trainer::{sft_policy, SftStep, SftTrainer};
