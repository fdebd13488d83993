//! Attention softmax fused with its scale and additive mask:
//! `p = softmax(scale · x + mask)` over the last dimension.
//!
//! Backward: `∂x = scale · p ⊙ (g − Σ g⊙p)`, from the saved output alone.
//!
//! Scores are `[b, groups, m, s]`, where `m` stacks the query heads sharing a KV
//! head (`m = rep · t`, see grouped-query attention in `model`); the mask is
//! `[b or 1, 1, t, s]` and row `i` of `m` uses mask row `i mod t`.

use super::cpu::{for_each_chunk, lane_dot, lane_sum, output_vec, slice, wide, with_data, Real};
use super::logprob::flush_subnormal;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `softmax(scale · scores + mask)` over the last dim, differentiable in `scores`.
pub fn scaled_masked_softmax(scores: &Tensor, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let (b, _g, m, s) = scores.dims4()?;
    let mask = match mask {
        Some(mk) => {
            let (mb, one, t, ms) = mk.dims4()?;
            if one != 1 || ms != s || (mb != b && mb != 1) || t == 0 || m % t != 0 {
                bail!(
                    "softmax: mask {:?} does not fit scores {:?}",
                    mk.dims(),
                    scores.dims()
                );
            }
            Some(mk.contiguous()?.to_dtype(scores.dtype())?)
        }
        None => None,
    };
    scores
        .contiguous()?
        .apply_op1(MaskedSoftmax { scale, mask })
}

struct MaskedSoftmax {
    scale: f64,
    mask: Option<Tensor>,
}

fn forward<T: Real>(x: &[T], dims: &[usize], mask: Option<(&[T], &[usize])>, scale: f64) -> Vec<T> {
    let (g, m, s) = (dims[1], dims[2], dims[3]);
    let scale = T::from(scale).unwrap();
    let mut p = output_vec::<T>(x.len());
    let n = x.len();
    for_each_chunk(&mut p, s, 8, n, |row, p| {
        let x = &x[row * s..(row + 1) * s];
        wide(
            #[inline(always)]
            || {
                let mask_row = mask.map(|(mk, md)| {
                    let (mb, t) = (md[0], md[2]);
                    let bi = if mb == 1 { 0 } else { row / (g * m) };
                    let qi = (row % m) % t;
                    &mk[(bi * t + qi) * s..(bi * t + qi + 1) * s]
                });
                match mask_row {
                    Some(mr) => p
                        .iter_mut()
                        .zip(x)
                        .zip(mr)
                        .for_each(|((p, &x), &k)| *p = x * scale + k),
                    None => p.iter_mut().zip(x).for_each(|(p, &x)| *p = x * scale),
                }
                let max = p
                    .iter()
                    .fold(T::neg_infinity(), |a, &v| num_traits::Float::max(a, v));
                p.iter_mut().for_each(|v| *v = (*v - max).fast_exp());
                let inv = lane_sum(p).recip();
                // Subnormal probabilities would slow the P·V GEMMs ~80× (see logprob).
                p.iter_mut().for_each(|v| *v = flush_subnormal(*v * inv));
            },
        )
    });
    p
}

fn backward<T: Real>(p: &[T], g: &[T], s: usize, scale: f64) -> Vec<T> {
    let scale = T::from(scale).unwrap();
    let mut dx = output_vec::<T>(p.len());
    dx.par_chunks_mut(s)
        .zip(p.par_chunks(s).zip(g.par_chunks(s)))
        .with_min_len(8)
        .for_each(|(dx, (p, g))| {
            wide(
                #[inline(always)]
                || {
                    let dot = lane_dot(p, g);
                    for ((d, &p), &g) in dx.iter_mut().zip(p).zip(g) {
                        *d = scale * p * (g - dot);
                    }
                },
            )
        });
    dx
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "r1-scaled-masked-softmax"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(op: &MaskedSoftmax, x: &[T], dims: &[usize]) -> Result<Vec<T>> {
            match &op.mask {
                Some(mk) => {
                    with_data::<T, _>(mk, |m| Ok(forward(x, dims, Some((m, mk.dims())), op.scale)))
                }
                None => Ok(forward(x, dims, None, op.scale)),
            }
        }
        let dims = l.shape().dims();
        let p = match st {
            CpuStorage::F32(_) => CpuStorage::F32(run(self, slice(st, l)?, dims)?),
            CpuStorage::F64(_) => CpuStorage::F64(run(self, slice(st, l)?, dims)?),
            _ => bail!("softmax: fused kernel runs on f32 or f64 only"),
        };
        Ok((p, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let p = super::cuda::softmax_fwd(s, l, self.mask.as_ref(), self.scale)?;
        Ok((p, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, p: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            return Ok(Some(super::cuda::softmax_bwd(p, g, self.scale)?));
        }
        fn run<T: Real>(x: &Tensor, p: &Tensor, g: &Tensor, scale: f64) -> Result<Tensor> {
            let s = x.dim(candle_core::D::Minus1)?;
            let dx = with_data::<T, _>(p, |ps| {
                with_data::<T, _>(g, |gs| Ok(backward(ps, gs, s, scale)))
            })?;
            Tensor::from_vec(dx, x.shape(), x.device())
        }
        Ok(Some(match x.dtype() {
            candle_core::DType::F32 => run::<f32>(x, p, g, self.scale)?,
            candle_core::DType::F64 => run::<f64>(x, p, g, self.scale)?,
            d => bail!("softmax: no fused backward for {d:?}"),
        }))
    }
}
