//! Group Relative Policy Optimization.

pub mod advantages;
pub mod config;
pub mod loss;

pub use config::{GrpoConfig, LossType, ScaleRewards};
