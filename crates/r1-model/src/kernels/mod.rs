//! Fused CPU kernels with hand-written backward passes for the decoder's hot
//! element-wise ops. Each replaces a chain of 4–10 candle ops — every one a fresh
//! allocation, most single-threaded — by one multithreaded pass forward and one
//! backward, and keeps only its inputs for the backward pass instead of every
//! intermediate.
//!
//! They run for f32 and f64 on the CPU ([`supported`]); other dtypes and devices use
//! the composite ops in `layers`, which candle differentiates itself. Each kernel is
//! checked against its composite in `tests/kernels.rs`, values and gradients.

pub mod attention_decode;
mod cpu;
pub mod exp;
pub mod logprob;
pub mod matmul_small;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod swiglu;

use candle_core::{DType, Tensor};

/// Whether the fused kernels handle this tensor's device and dtype. Setting
/// `R1_COMPOSITE_OPS=1` turns them off, for A/B benchmarks and bisecting.
pub fn supported(t: &Tensor) -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let off = *OFF.get_or_init(|| std::env::var("R1_COMPOSITE_OPS").is_ok_and(|v| v == "1"));
    !off && t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}
