//! Row statistics of `softmax(z)` for logits `z = logits / T` and the gradient of a
//! chosen token's log-probability, each in one multithreaded pass over a block of
//! vocabulary columns — no `[rows, vocab]` temporaries beyond the block itself.

use super::cpu::{lane_max, wide, with_data, Real};
use candle_core::{bail, CpuStorage, InplaceOp1, Layout, Result, Tensor};
use rayon::prelude::*;

/// Running softmax statistics of one row over the vocabulary blocks seen so far, for
/// scaled logits `s = z / T`: `max`, `sum = Σ e^(s − max)`, `sum_es = Σ e^(s − max)·s`,
/// and the target's `s` once its block has passed.
#[derive(Debug, Clone, Copy)]
pub struct RowState {
    max: f64,
    sum: f64,
    sum_es: f64,
    target: f64,
}

impl Default for RowState {
    fn default() -> Self {
        Self {
            max: f64::NEG_INFINITY,
            sum: 0.0,
            sum_es: 0.0,
            target: f64::NAN,
        }
    }
}

impl RowState {
    /// `logsumexp(s)`.
    pub fn lse(&self) -> f64 {
        self.max + self.sum.ln()
    }

    /// `log softmax(s)[target]`.
    pub fn logprob(&self) -> f64 {
        self.target - self.lse()
    }

    /// `−Σ p log p = lse − Σ p·s`.
    pub fn entropy(&self) -> f64 {
        self.lse() - self.sum_es / self.sum
    }

    /// Merges a block's statistics taken relative to its own maximum `max`.
    fn merge(&mut self, max: f64, sum: f64, sum_es: f64) {
        let m = self.max.max(max);
        let (a, b) = ((self.max - m).exp(), (max - m).exp());
        // A row not seen yet has max −∞: its (zero) sums get weight e^−∞ = 0.
        let a = if self.sum == 0.0 { 0.0 } else { a };
        self.sum = self.sum * a + sum * b;
        self.sum_es = self.sum_es * a + sum_es * b;
        self.max = m;
    }
}

/// Folds a block of logits `[rows, cols]` (contiguous), holding vocabulary columns
/// `col_offset..col_offset + cols`, into each row's running statistics. Walking the
/// vocabulary in blocks keeps every GEMM at the full row count (an efficient shape)
/// while only `rows × cols` logits exist at a time.
pub fn accumulate_block<T: Real>(
    logits: &Tensor,
    col_offset: usize,
    targets: &[u32],
    inv_t: f64,
    state: &mut [RowState],
) -> Result<()> {
    let (rows, cols) = logits.dims2()?;
    if targets.len() != rows || state.len() != rows {
        bail!(
            "logprob: {} targets and {} states for {rows} rows",
            targets.len(),
            state.len()
        );
    }
    let inv = T::from(inv_t).unwrap();
    with_data::<T, _>(logits, |z| {
        state
            .par_iter_mut()
            .zip(z.par_chunks(cols))
            .zip(targets.par_iter())
            .with_min_len(8)
            .for_each(|((st, row), &tgt)| {
                wide(
                    #[inline(always)]
                    || {
                        let max = lane_max(row) * inv;
                        // Σ e and Σ e·s in one pass, e = exp(s − max), in 16 lanes.
                        let (mut sum, mut sum_es) = ([T::zero(); 16], [T::zero(); 16]);
                        let whole = row.len() / 16 * 16;
                        for c in row[..whole].chunks_exact(16) {
                            for l in 0..16 {
                                let s = c[l] * inv;
                                let e = (s - max).fast_exp();
                                sum[l] += e;
                                sum_es[l] += e * s;
                            }
                        }
                        let (mut sum, mut sum_es) =
                            (sum.into_iter().sum::<T>(), sum_es.into_iter().sum::<T>());
                        for &v in &row[whole..] {
                            let s = v * inv;
                            let e = (s - max).fast_exp();
                            sum += e;
                            sum_es += e * s;
                        }
                        let f = |v: T| <T as candle_core::WithDType>::to_f64(v);
                        st.merge(f(max), f(sum), f(sum_es));
                        let t = tgt as usize;
                        if (col_offset..col_offset + cols).contains(&t) {
                            st.target = f(row[t - col_offset]) * inv_t;
                        }
                    },
                )
            });
        Ok(())
    })
}

/// Zero instead of a subnormal. Far-off tokens' probabilities underflow into the
/// subnormal range, and a GEMM over subnormal operands runs ~80× slower on x86 (a
/// 12 s instead of 0.15 s lm_head block was measured); they are below 1e-38 and
/// contribute nothing.
#[inline]
pub fn flush_subnormal<T: Real>(v: T) -> T {
    if v < T::min_positive_value() {
        T::zero()
    } else {
        v
    }
}

/// Turns a block of logits `[rows, cols]`, holding vocabulary columns
/// `col_offset..col_offset + cols`, in place into `∂L/∂logits` for
/// `L = Σ_r g_r · logprob_r`: `(onehot(target) − softmax(z)) · g / T`, with each
/// row's softmax normaliser `lse` known from the forward pass.
pub struct LogitsToGrad<'a> {
    pub targets: &'a [u32],
    /// `g_r`, per row.
    pub grad: &'a [f64],
    /// `logsumexp(z)` per row, from [`row_stats`].
    pub lse: &'a [f64],
    pub inv_t: f64,
    pub col_offset: usize,
}

impl LogitsToGrad<'_> {
    fn apply<T: Real>(&self, z: &mut [T], cols: usize) {
        let inv_t = T::from(self.inv_t).unwrap();
        z.par_chunks_mut(cols)
            .enumerate()
            .with_min_len(8)
            .for_each(|(r, row)| {
                wide(
                    #[inline(always)]
                    || {
                        let scale = T::from(self.grad[r] * self.inv_t).unwrap();
                        let lse = T::from(self.lse[r]).unwrap();
                        for v in row.iter_mut() {
                            *v = -flush_subnormal((*v * inv_t - lse).fast_exp()) * scale;
                        }
                        let t = self.targets[r] as usize;
                        if (self.col_offset..self.col_offset + cols).contains(&t) {
                            row[t - self.col_offset] += scale;
                        }
                    },
                )
            });
    }
}

impl InplaceOp1 for LogitsToGrad<'_> {
    fn name(&self) -> &'static str {
        "r1-logits-to-logprob-grad"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let cols = *l.shape().dims().last().unwrap_or(&1);
        let Some((a, b)) = l.contiguous_offsets() else {
            bail!("logprob grad: logits are not contiguous")
        };
        if (b - a) / cols.max(1) != self.targets.len() {
            bail!(
                "logprob grad: {} rows for {} targets",
                (b - a) / cols.max(1),
                self.targets.len()
            );
        }
        match s {
            CpuStorage::F32(v) => self.apply(&mut v[a..b], cols),
            CpuStorage::F64(v) => self.apply(&mut v[a..b], cols),
            _ => bail!("logprob grad: fused kernel runs on f32 or f64 only"),
        }
        Ok(())
    }
}
