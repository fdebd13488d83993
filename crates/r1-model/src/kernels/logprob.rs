//! Row statistics of `softmax(z)` for logits `z = logits / T` and the gradient of a
//! chosen token's log-probability, each in one multithreaded pass over a block of
//! logits — no `[rows, vocab]` temporaries beyond the logits block itself.

use super::cpu::{lane_max, wide, with_data, Real};
use candle_core::{bail, CpuStorage, InplaceOp1, Layout, Result, Tensor};
use rayon::prelude::*;

/// Per-row results for a block of logits.
pub struct RowStats<T> {
    /// `log softmax(z)[target]`.
    pub logprob: Vec<T>,
    /// `logsumexp(z)`, which the backward pass reuses instead of recomputing it.
    pub lse: Vec<T>,
    /// `−Σ p log p`, when asked for.
    pub entropy: Option<Vec<T>>,
}

/// Statistics of each row of `logits` `[rows, vocab]` (contiguous) for `targets`.
pub fn row_stats<T: Real>(
    logits: &Tensor,
    targets: &[u32],
    inv_t: f64,
    with_entropy: bool,
) -> Result<RowStats<T>> {
    let (rows, vocab) = logits.dims2()?;
    if targets.len() != rows {
        bail!("logprob: {} targets for {rows} rows", targets.len());
    }
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        bail!("logprob: target token {bad} is outside the vocabulary of {vocab}");
    }
    let inv_t = T::from(inv_t).unwrap();
    let out: Vec<(T, T, T)> = with_data::<T, _>(logits, |z| {
        Ok(z.par_chunks(vocab)
            .zip(targets.par_iter())
            .map(|(row, &tgt)| {
                wide(
                    #[inline(always)]
                    || {
                        let max = lane_max(row) * inv_t;
                        // Σ e and Σ e·(z − max) in one pass, e = exp(z − max), in 16 lanes.
                        let (mut sum, mut sum_ez) = ([T::zero(); 16], [T::zero(); 16]);
                        let whole = row.len() / 16 * 16;
                        for c in row[..whole].chunks_exact(16) {
                            for l in 0..16 {
                                let s = c[l] * inv_t - max;
                                let e = s.fast_exp();
                                sum[l] += e;
                                sum_ez[l] += e * s;
                            }
                        }
                        let (mut sum, mut sum_ez) =
                            (sum.into_iter().sum::<T>(), sum_ez.into_iter().sum::<T>());
                        for &v in &row[whole..] {
                            let s = v * inv_t - max;
                            let e = s.fast_exp();
                            sum += e;
                            sum_ez += e * s;
                        }
                        let log_sum = sum.ln();
                        let logprob = row[tgt as usize] * inv_t - max - log_sum;
                        // H = log Σe − Σ e·s / Σ e, with s the shifted logits.
                        let entropy = log_sum - sum_ez / sum;
                        (logprob, max + log_sum, entropy)
                    },
                )
            })
            .collect())
    })?;
    Ok(RowStats {
        logprob: out.iter().map(|o| o.0).collect(),
        lse: out.iter().map(|o| o.1).collect(),
        entropy: with_entropy.then(|| out.iter().map(|o| o.2).collect()),
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
