//! RMSNorm, `y = x · rsqrt(mean(x²) + eps) · w`, over the last dimension.
//!
//! Backward, with `r = rsqrt(mean(x²) + eps)` and `x̂ = x·r` recomputed per row:
//! `∂x = r · (g⊙w − x̂ · mean(g⊙w⊙x̂))` and `∂w = Σ_rows g⊙x̂`.

use super::cpu::{
    for_each_chunk, lane_dot, output_vec, rows_per_task, slice, wide, with_data, Real,
};
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Fused RMSNorm of `x` `[.., h]` with weight `w` `[h]`, differentiable in both.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, RmsNorm { eps })
}

struct RmsNorm {
    eps: f64,
}

fn inv_rms<T: Real>(x: &[T], eps: T) -> T {
    let ss = lane_dot(x, x);
    let n = T::from(x.len()).unwrap();
    (ss / n + eps).sqrt().recip()
}

fn forward<T: Real>(x: &[T], w: &[T], eps: f64) -> Vec<T> {
    let h = w.len();
    let eps = T::from(eps).unwrap();
    let mut y = output_vec::<T>(x.len());
    let n = x.len();
    for_each_chunk(&mut y, h, 16, n, |i, y| {
        let x = &x[i * h..(i + 1) * h];
        wide(
            #[inline(always)]
            || {
                let r = inv_rms(x, eps);
                for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * r * w;
                }
            },
        )
    });
    y
}

fn backward<T: Real>(x: &[T], w: &[T], g: &[T], eps: f64) -> (Vec<T>, Vec<T>) {
    let h = w.len();
    let eps = T::from(eps).unwrap();
    let inv_h = T::from(h).unwrap().recip();
    let block = rows_per_task(x.len() / h) * h;
    let mut dx = output_vec::<T>(x.len());
    let dw = dx
        .par_chunks_mut(block)
        .zip(x.par_chunks(block))
        .zip(g.par_chunks(block))
        .map(|((dx, x), g)| {
            wide(
                #[inline(always)]
                || {
                    // Each task sums ∂w over its rows; the partial sums are added below.
                    let mut dw = vec![T::zero(); h];
                    for ((dx, x), g) in dx.chunks_mut(h).zip(x.chunks(h)).zip(g.chunks(h)) {
                        let r = inv_rms(x, eps);
                        let mut acc = [T::zero(); 16];
                        for i in 0..h {
                            acc[i % 16] += g[i] * w[i] * x[i];
                        }
                        let dot: T = acc.into_iter().sum();
                        let mean = dot * r * inv_h;
                        for i in 0..h {
                            let xh = x[i] * r;
                            dx[i] = r * (g[i] * w[i] - xh * mean);
                            dw[i] += g[i] * xh;
                        }
                    }
                    dw
                },
            )
        })
        .reduce(
            || vec![T::zero(); h],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, &b)| *a += b);
                a
            },
        );
    (dx, dw)
}

fn check_weight(x: &Layout, w: &Layout) -> Result<()> {
    let h = w.shape().elem_count();
    if x.shape().dims().last() != Some(&h) {
        bail!(
            "rms_norm: weight {:?} does not fit input {:?}",
            w.shape(),
            x.shape()
        );
    }
    Ok(())
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "r1-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_weight(l1, l2)?;
        let y = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(forward(slice(s1, l1)?, slice(s2, l2)?, self.eps))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(forward(slice(s1, l1)?, slice(s2, l2)?, self.eps))
            }
            _ => bail!("rms_norm: fused kernel runs on f32 or f64 only"),
        };
        Ok((y, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        check_weight(l1, l2)?;
        let y = super::cuda::rms_norm_fwd(s1, l1, s2, l2, self.eps)?;
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            let (dx, dw) = super::cuda::rms_norm_bwd(x, w, g, self.eps)?;
            return Ok((Some(dx), w.track_op().then_some(dw)));
        }
        let (dx, dw) = cpu_grads(x, w, g, self.eps)?;
        // A frozen weight (LoRA training) gets no gradient, as with candle's ops.
        Ok((Some(dx), w.track_op().then_some(dw)))
    }
}

/// The CPU backward pass as plain tensors: `(∂x, ∂w)` for RMSNorm of `x` with weight
/// `w` given the output's gradient `g` (f32/f64).
pub(crate) fn cpu_grads(x: &Tensor, w: &Tensor, g: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    fn run<T: Real>(x: &Tensor, w: &Tensor, g: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
        let (dx, dw) = with_data::<T, _>(x, |xs| {
            with_data::<T, _>(w, |ws| {
                with_data::<T, _>(g, |gs| Ok(backward(xs, ws, gs, eps)))
            })
        })?;
        Ok((
            Tensor::from_vec(dx, x.shape(), x.device())?,
            Tensor::from_vec(dw, w.shape(), w.device())?,
        ))
    }
    match x.dtype() {
        candle_core::DType::F32 => run::<f32>(x, w, g, eps),
        candle_core::DType::F64 => run::<f64>(x, w, g, eps),
        d => bail!("rms_norm: no fused backward for {d:?}"),
    }
}
