//! r1-train: everything that updates weights.

pub mod checkpoint;
pub mod grpo;
pub mod lora;
pub mod optim;
pub mod reward_model;
pub mod route_reward;
pub mod sft;
pub mod trainable;

pub use lora::LoraConfig;
pub use optim::{AdamW, AdamWConfig, Schedule};
pub use trainable::Trainable;
