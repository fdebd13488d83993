//! r1-train: everything that updates weights.

pub mod checkpoint;
pub mod grpo;
pub mod optim;
pub mod trainable;

pub use optim::{AdamW, AdamWConfig, Schedule};
pub use trainable::Trainable;
