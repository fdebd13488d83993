//! Fused CPU kernels with hand-written backward passes for the decoder's hot
//! element-wise ops. Each replaces a chain of 4–10 candle ops — every one a fresh
//! allocation, most single-threaded — by one multithreaded pass forward and one
//! backward, and keeps only its inputs for the backward pass instead of every
//! intermediate.
//!
//! They run for f32 and f64 on the CPU ([`supported`]). With the `cuda` feature,
//! RMSNorm, RoPE, the attention softmax, SwiGLU and AdamW also have CUDA kernels
//! (`cuda`, f32 and bf16; see [`fused_supported`]), and so does the whole attention,
//! opt-in (`cuda::attention_supported`). Other dtypes and devices use the composite
//! ops in `layers`, which candle differentiates itself. Each kernel is checked against
//! its composite, values and gradients: the CPU ones in `tests/kernels.rs`, the CUDA
//! ones in `tests/cuda_kernels.rs` (on a GPU) and the CUDA attention's source also in
//! `tests/cuda_emulated.rs` (on the CPU, under emulation).

pub mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_avx512;
pub mod attention_decode;
mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod exp;
pub mod logprob;
pub mod matmul_small;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod swiglu;

use candle_core::{DType, Tensor};

/// Setting `R1_COMPOSITE_OPS=1` turns the fused kernels off, for A/B benchmarks and
/// bisecting.
fn turned_off() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| std::env::var("R1_COMPOSITE_OPS").is_ok_and(|v| v == "1"))
}

/// Whether the CPU kernels handle this tensor's device and dtype.
pub fn supported(t: &Tensor) -> bool {
    !turned_off() && t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// Whether the fused element-wise ops (RMSNorm, RoPE, attention softmax, SwiGLU) take
/// this tensor: on the CPU in f32/f64, and on a GPU in f32/bf16 when built with the
/// `cuda` feature (their CUDA kernels are in `cuda`).
pub fn fused_supported(t: &Tensor) -> bool {
    #[cfg(feature = "cuda")]
    if !turned_off() && cuda::supported(t) {
        return true;
    }
    supported(t)
}
