//! Rotary position embedding (Hugging Face's rotate-half layout) fused with the
//! head split: a projection's output `[b, t, heads·d]` goes in, `[b, heads, t, d]`
//! comes out, so the transpose costs no separate copy.
//!
//! Per pair `(x₁, x₂) = (x[i], x[i + d/2])` with angle cos `c`, sin `s`:
//! forward `(x₁c − x₂s, x₂c + x₁s)`; the rotation's transpose gives the backward
//! `(g₁c + g₂s, g₂c − g₁s)`.

use super::cpu::{for_each_chunk, output_vec, slice, wide, with_data, Real};
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// RoPE of `x` `[b, t, heads·d]` with per-row angles `cos`/`sin` `[b, t, d/2]`,
/// returning `[b, heads, t, d]`; differentiable in `x`.
pub fn rope_split_heads(x: &Tensor, cos: &Tensor, sin: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, _) = x.dims3()?;
    let (cb, ct, half) = cos.dims3()?;
    if (cb, ct) != (b, t) || sin.dims() != cos.dims() {
        bail!(
            "rope: angles {:?} do not fit input {:?}",
            cos.dims(),
            x.dims()
        );
    }
    if x.dim(2)? != heads * 2 * half {
        bail!(
            "rope: input {:?} is not {heads} heads of {}",
            x.dims(),
            2 * half
        );
    }
    x.contiguous()?.apply_op1(Rope {
        cos: cos.contiguous()?.to_dtype(x.dtype())?,
        sin: sin.contiguous()?.to_dtype(x.dtype())?,
        heads,
    })
}

struct Rope {
    cos: Tensor,
    sin: Tensor,
    heads: usize,
}

/// `[b, t, heads, d]` → `[b, heads, t, d]` rotating each head row by its angles; with
/// `sign = -1` this is the inverse rotation, and `inverse_layout` runs it from
/// `[b, heads, t, d]` back to `[b, t, heads, d]` (the backward pass).
fn rotate<T: Real>(
    x: &[T],
    cos: &[T],
    sin: &[T],
    (_b, t, heads, d): (usize, usize, usize, usize),
    sign: T,
    inverse_layout: bool,
) -> Vec<T> {
    let half = d / 2;
    let mut out = output_vec::<T>(x.len());
    let n = x.len();
    for_each_chunk(&mut out, d, 64, n, |row, out| {
        wide(
            #[inline(always)]
            || {
                // Output rows are ordered [b, heads, t] forward and [b, t, heads] backward.
                let (bi, hi, ti) = if inverse_layout {
                    (row / (t * heads), row % heads, (row / heads) % t)
                } else {
                    (row / (heads * t), (row / t) % heads, row % t)
                };
                let src = if inverse_layout {
                    ((bi * heads + hi) * t + ti) * d
                } else {
                    ((bi * t + ti) * heads + hi) * d
                };
                let x = &x[src..src + d];
                let angle = (bi * t + ti) * half;
                let (c, s) = (&cos[angle..angle + half], &sin[angle..angle + half]);
                for i in 0..half {
                    let (x1, x2) = (x[i], x[i + half]);
                    let si = sign * s[i];
                    out[i] = x1 * c[i] - x2 * si;
                    out[i + half] = x2 * c[i] + x1 * si;
                }
            },
        )
    });
    out
}

impl Rope {
    fn dims(&self, x_dims: &[usize]) -> (usize, usize, usize, usize) {
        let (b, t) = (x_dims[0], x_dims[1]);
        (b, t, self.heads, x_dims[2] / self.heads)
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "r1-rope-split-heads"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = self.dims(l.shape().dims());
        let (b, t, h, d) = dims;
        let out = match s {
            CpuStorage::F32(_) => with_data::<f32, _>(&self.cos, |c| {
                with_data::<f32, _>(&self.sin, |sn| {
                    Ok(CpuStorage::F32(rotate(
                        slice(s, l)?,
                        c,
                        sn,
                        dims,
                        1.0,
                        false,
                    )))
                })
            })?,
            CpuStorage::F64(_) => with_data::<f64, _>(&self.cos, |c| {
                with_data::<f64, _>(&self.sin, |sn| {
                    Ok(CpuStorage::F64(rotate(
                        slice(s, l)?,
                        c,
                        sn,
                        dims,
                        1.0,
                        false,
                    )))
                })
            })?,
            _ => bail!("rope: fused kernel runs on f32 or f64 only"),
        };
        Ok((out, Shape::from((b, h, t, d))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (b, t, h, d) = self.dims(l.shape().dims());
        let out = super::cuda::rope(s, l, &self.cos, &self.sin, (b, t, h, d), false)?;
        Ok((out, Shape::from((b, h, t, d))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            let dims = self.dims(x.dims());
            return Ok(Some(super::cuda::rope_tensor(
                g,
                &self.cos,
                &self.sin,
                dims,
                true,
                x.shape(),
            )?));
        }
        fn run<T: Real>(op: &Rope, x: &Tensor, g: &Tensor) -> Result<Tensor> {
            let dims = op.dims(x.dims());
            let dx = with_data::<T, _>(g, |gs| {
                with_data::<T, _>(&op.cos, |c| {
                    with_data::<T, _>(&op.sin, |s| Ok(rotate(gs, c, s, dims, -T::one(), true)))
                })
            })?;
            Tensor::from_vec(dx, x.shape(), x.device())
        }
        Ok(Some(match x.dtype() {
            candle_core::DType::F32 => run::<f32>(self, x, g)?,
            candle_core::DType::F64 => run::<f64>(self, x, g)?,
            d => bail!("rope: no fused backward for {d:?}"),
        }))
    }
}
