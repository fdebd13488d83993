//! Group Relative Policy Optimization.

pub mod advantages;
pub mod config;
pub mod loss;
pub mod micro_batches;

pub use config::{GrpoConfig, LossType, ScaleRewards};
pub mod trainer;

pub use trainer::{GrpoItem, GrpoTrainer, SampleRecord, StepOutput};
