//! SwiGLU's gate, `h = silu(g) ⊙ u` with `silu(g) = g·σ(g)`.
//!
//! Backward, with `σ = σ(g)` recomputed: `∂g = ∂h ⊙ u ⊙ σ(1 + g(1 − σ))` and
//! `∂u = ∂h ⊙ g σ`.

use super::cpu::{for_each_chunk, output_vec, slice, wide, with_data, Real, ELEMS_PER_TASK};
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `silu(gate) ⊙ up`, differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        bail!(
            "swiglu: gate {:?} and up {:?} differ",
            gate.dims(),
            up.dims()
        );
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

struct SwiGlu;

fn sigmoid<T: Real>(v: T) -> T {
    (T::one() + (-v).fast_exp()).recip()
}

fn forward<T: Real>(g: &[T], u: &[T]) -> Vec<T> {
    let mut h = output_vec::<T>(g.len());
    let n = g.len();
    for_each_chunk(&mut h, ELEMS_PER_TASK, 1, n, |i, h| {
        let (g, u) = (
            &g[i * ELEMS_PER_TASK..][..h.len()],
            &u[i * ELEMS_PER_TASK..][..h.len()],
        );
        wide(
            #[inline(always)]
            || {
                for ((h, &g), &u) in h.iter_mut().zip(g).zip(u) {
                    // Same expression as candle's silu, so the fused and composite paths agree.
                    *h = g / (T::one() + (-g).fast_exp()) * u;
                }
            },
        )
    });
    h
}

fn backward<T: Real>(g: &[T], u: &[T], dh: &[T]) -> (Vec<T>, Vec<T>) {
    let mut dg = output_vec::<T>(g.len());
    let mut du = output_vec::<T>(g.len());
    dg.par_chunks_mut(ELEMS_PER_TASK)
        .zip(du.par_chunks_mut(ELEMS_PER_TASK))
        .zip(g.par_chunks(ELEMS_PER_TASK))
        .zip(
            u.par_chunks(ELEMS_PER_TASK)
                .zip(dh.par_chunks(ELEMS_PER_TASK)),
        )
        .for_each(|(((dg, du), g), (u, dh))| {
            wide(
                #[inline(always)]
                || {
                    for i in 0..g.len() {
                        let s = sigmoid(g[i]);
                        dg[i] = dh[i] * u[i] * s * (T::one() + g[i] * (T::one() - s));
                        du[i] = dh[i] * g[i] * s;
                    }
                },
            )
        });
    (dg, du)
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "r1-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let h = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(forward(slice(s1, l1)?, slice(s2, l2)?))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(forward(slice(s1, l1)?, slice(s2, l2)?))
            }
            _ => bail!("swiglu: fused kernel runs on f32 or f64 only"),
        };
        Ok((h, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        Ok((super::cuda::swiglu_fwd(s1, l1, s2, l2)?, l1.shape().clone()))
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _h: &Tensor,
        dh: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if g.device().is_cuda() {
            let (dg, du) = super::cuda::swiglu_bwd(g, u, dh)?;
            return Ok((Some(dg), Some(du)));
        }
        let (dg, du) = cpu_grads(g, u, dh)?;
        Ok((Some(dg), Some(du)))
    }
}

/// The CPU backward pass as plain tensors: `(∂gate, ∂up)` given the output's gradient
/// `dh` (f32/f64).
pub(crate) fn cpu_grads(g: &Tensor, u: &Tensor, dh: &Tensor) -> Result<(Tensor, Tensor)> {
    fn run<T: Real>(g: &Tensor, u: &Tensor, dh: &Tensor) -> Result<(Tensor, Tensor)> {
        let (dg, du) = with_data::<T, _>(g, |gs| {
            with_data::<T, _>(u, |us| with_data::<T, _>(dh, |ds| Ok(backward(gs, us, ds))))
        })?;
        Ok((
            Tensor::from_vec(dg, g.shape(), g.device())?,
            Tensor::from_vec(du, u.shape(), u.device())?,
        ))
    }
    match g.dtype() {
        candle_core::DType::F32 => run::<f32>(g, u, dh),
        candle_core::DType::F64 => run::<f64>(g, u, dh),
        d => bail!("swiglu: no fused backward for {d:?}"),
    }
}
