//! Fused attention for training and scoring, `o = softmax(scale · q·kᵀ + mask) · v`,
//! with its backward pass, in the manner of FlashAttention: the probabilities are
//! never kept between the passes. The forward saves each query row's max logit and
//! normaliser, and the backward recomputes the row's probabilities from them, bit for
//! bit as the forward had them. (A single log-sum-exp would do in exact arithmetic,
//! but `logit − lse` cancels badly in a row the mask hides entirely, where both sit
//! near the mask's −1e9.)
//!
//! Why: candle's batched GEMMs ran the attention products at 50–130 GFLOP/s (a
//! 64-deep inner dimension leaves their packing little to amortise), computed the
//! masked half of every causal score matrix, and the probabilities they left behind
//! for the backward pass took 19 MB per layer of an 8 × 256 batch. Here each (batch,
//! KV head) is one task that keeps its keys and values in cache, tiles the products
//! in registers, and stops every query row at its last visible key.
//!
//! Layout as in `softmax`: `q` `[b, g, m, d]` where `m = rep · t` stacks the `rep`
//! query heads sharing KV head `g` (row `i` of `m` is position `i mod t`); `k`, `v`
//! `[b, g, s, d]`; an additive `mask` `[b or 1, 1, t, s]`. A row skips the keys after
//! the last one its mask shows (the causal tail); a row the mask hides entirely keeps
//! all keys, so the result equals the composite's uniform softmax exactly.
//!
//! Backward, with `P` the probabilities, `dO` the output's gradient and
//! `Dᵢ = Σ dOᵢ ⊙ Oᵢ`: `dV = Pᵀ·dO`, `dS = scale · P ⊙ (dO·Vᵀ − D)`, `dQ = dS·K`,
//! `dK = dSᵀ·Q`.

use super::cpu::{has_avx512, lane_dot, lane_max, lane_sum, slice, wide, with_data, Real};
use super::logprob::flush_subnormal;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex, OnceLock};

/// Query rows per register tile.
const ROWS: usize = 6;
/// Keys per score tile (two AVX-512 vectors of f32).
const KEYS: usize = 32;
/// Keys per tile of the key-side gradients (`dK`, `dV`).
const KEY_ROWS: usize = 4;

/// Whether the fused kernel takes these operands: f32/f64 on the CPU, head dims a
/// multiple of 16; with the `cuda` feature, f32/bf16 on a GPU with head dims 64 or 128
/// when `R1_CUDA_FLASH_ATTENTION=1` (see `cuda::attention_supported`).
pub fn supported(q: &Tensor) -> bool {
    #[cfg(feature = "cuda")]
    if !super::turned_off() && super::cuda::attention_supported(q) {
        return true;
    }
    super::supported(q) && q.dim(candle_core::D::Minus1).is_ok_and(|d| d % 16 == 0)
}

/// An additive attention mask `[b or 1, 1, t, s]` with, found on first use and shared
/// by its clones, one past the last key each of its rows can see. Every layer of a
/// forward pass gets the same mask, so built once per pass (where the mask is made),
/// the scan (~1–3 ms at 8 × 256) runs once per pass rather than once per layer.
#[derive(Debug, Clone)]
pub struct Mask {
    tensor: Tensor,
    ends: Arc<OnceLock<Arc<Vec<usize>>>>,
    /// The ends as a u32 tensor on the mask's device, for the GPU kernels.
    device_ends: Arc<OnceLock<Tensor>>,
}

impl Mask {
    pub fn new(tensor: Tensor) -> Self {
        Self {
            tensor,
            ends: Arc::new(OnceLock::new()),
            device_ends: Arc::new(OnceLock::new()),
        }
    }

    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// The same mask with no ties to a graph.
    pub fn detach(&self) -> Self {
        Self {
            tensor: self.tensor.detach(),
            ends: self.ends.clone(),
            device_ends: self.device_ends.clone(),
        }
    }

    /// The same mask in `dtype`, detached from any graph; its ends carry over (casting
    /// keeps which keys are hidden).
    pub fn cast(&self, dtype: candle_core::DType) -> Result<Self> {
        Ok(Self {
            tensor: self.tensor.detach().to_dtype(dtype)?,
            ends: self.ends.clone(),
            device_ends: self.device_ends.clone(),
        })
    }

    /// For each mask row: one past the last key it can see (all keys if it sees none).
    fn visible_ends(&self) -> Result<Arc<Vec<usize>>> {
        if let Some(e) = self.ends.get() {
            return Ok(e.clone());
        }
        let ends = Arc::new(scan_visible_ends(&self.tensor)?);
        // Two threads racing here computed the same ends; either copy will do.
        Ok(self.ends.get_or_init(|| ends).clone())
    }

    /// [`Self::visible_ends`] as a u32 tensor `[rows]` on the mask's device.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn device_ends(&self) -> Result<Tensor> {
        if let Some(e) = self.device_ends.get() {
            return Ok(e.clone());
        }
        let ends: Vec<u32> = self.visible_ends()?.iter().map(|&e| e as u32).collect();
        let n = ends.len();
        let ends = Tensor::from_vec(ends, n, self.tensor.device())?;
        Ok(self.device_ends.get_or_init(|| ends).clone())
    }
}

/// `softmax(scale · q·kᵀ + mask) · v`, differentiable in `q`, `k` and `v`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Mask>,
    scale: f64,
) -> Result<Tensor> {
    let (b, g, m, d) = q.dims4()?;
    let (kb, kg, s, kd) = k.dims4()?;
    if (kb, kg, kd) != (b, g, d) || v.dims() != k.dims() || d % 16 != 0 || s == 0 {
        bail!(
            "attention: q {:?}, k {:?}, v {:?} do not fit",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let (t, kend) = match mask {
        Some(mask) => {
            let mk = mask.tensor();
            let (mb, one, t, ms) = mk.dims4()?;
            if one != 1 || ms != s || (mb != b && mb != 1) || t == 0 || m % t != 0 {
                bail!(
                    "attention: mask {:?} does not fit scores [{b}, {g}, {m}, {s}]",
                    mk.dims()
                );
            }
            let ends = mask.visible_ends()?;
            let device_ends = if q.device().is_cpu() {
                None
            } else {
                Some(mask.device_ends()?)
            };
            let mk = mk.contiguous()?.to_dtype(q.dtype())?;
            let tensor = mk;
            (
                t,
                Some(CallMask {
                    ends,
                    tensor,
                    mb,
                    device_ends,
                }),
            )
        }
        None => (m, None),
    };
    let op = FusedAttention {
        scale,
        t,
        mask: kend,
        stats: Mutex::new(None),
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

fn scan_visible_ends(mask: &Tensor) -> Result<Vec<usize>> {
    let s = mask.dim(3)?;
    let hidden = crate::model::mask_value(candle_core::DType::F32) as f64 / 2.0;
    // On the host: a GPU mask comes over once per pass, and casting there would need
    // a bf16 → f64 kernel.
    let rows: Vec<f64> = mask
        .to_device(&candle_core::Device::Cpu)?
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    Ok(rows
        .chunks(s)
        .map(|r| r.iter().rposition(|&x| x > hidden).map_or(s, |j| j + 1))
        .collect())
}

struct FusedAttention {
    scale: f64,
    /// Positions per query head (`m / rep`).
    t: usize,
    mask: Option<CallMask>,
    /// Each query row's max logit and reciprocal normaliser, `[rows, 2]`, from the
    /// forward pass for the backward one.
    stats: Mutex<Option<Stats>>,
}

/// The mask of one call, as the kernels read it.
struct CallMask {
    /// Per mask row, one past the last key it can see.
    ends: Arc<Vec<usize>>,
    /// `[mb, 1, t, s]`, contiguous, in the queries' dtype.
    tensor: Tensor,
    /// The mask's batch size (1 or `b`).
    mb: usize,
    /// On a GPU, `ends` as a u32 tensor there.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    device_ends: Option<Tensor>,
}

/// Where the forward pass left its per-row statistics.
enum Stats {
    Host(Vec<f64>),
    /// f32 `[rows, 2]` on the GPU.
    #[cfg(feature = "cuda")]
    Device(Tensor),
}

/// The shapes and mask of one (batch, KV head) task.
struct Task<'a, T> {
    m: usize,
    s: usize,
    d: usize,
    t: usize,
    scale: T,
    /// `[t, s]` mask rows and their visible ends, for this batch element.
    mask: Option<(&'a [T], &'a [usize])>,
}

impl<T: Real> Task<'_, T> {
    /// One past the last key each query row attends to.
    fn ends(&self) -> Vec<usize> {
        (0..self.m)
            .map(|r| self.mask.map_or(self.s, |(_, ends)| ends[r % self.t]))
            .collect()
    }

    #[inline(always)]
    fn mask_row(&self, r: usize) -> Option<&[T]> {
        self.mask
            .map(|(mk, _)| &mk[(r % self.t) * self.s..(r % self.t + 1) * self.s])
    }

    /// Raw scores `a·bᵀ` of rows `r0..r0+ROWS` of `a` `[m, d]` for keys `0..end`, into
    /// `out` `[ROWS, sp]`; `bt` is `bᵀ` `[d, sp]`. Rows past `m` read `pad`'s zeros.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn scores(
        &self,
        a: &[T],
        bt: &[T],
        sp: usize,
        r0: usize,
        end: usize,
        pad: &mut [T],
        out: &mut [T],
    ) {
        let d = self.d;
        let a = if r0 + ROWS <= self.m {
            &a[r0 * d..(r0 + ROWS) * d]
        } else {
            let n = (self.m - r0) * d;
            pad[..n].copy_from_slice(&a[r0 * d..]);
            pad[n..].fill(T::zero());
            &pad[..]
        };
        for j0 in (0..end).step_by(KEYS) {
            dot_tile(a, d, &bt[j0..], sp, &mut out[j0..], sp);
        }
    }
}

/// `out[i·ldo + c] = Σ_dd a[i·d + dd] · bt[dd·ld + c]`, `i < ROWS`, `c < KEYS`: a tile
/// of `a·bᵀ` with `bᵀ` stored row-major. Each step broadcasts one element per row
/// against a row of `bt`, so the tile stays in registers.
#[inline(always)]
fn dot_tile<T: Real>(a: &[T], d: usize, bt: &[T], ld: usize, out: &mut [T], ldo: usize) {
    assert!(a.len() >= ROWS * d && bt.len() >= (d - 1) * ld + KEYS);
    assert!(out.len() >= (ROWS - 1) * ldo + KEYS);
    #[cfg(target_arch = "x86_64")]
    if let (Some(a), Some(bt), true) = (T::as_f32(a), T::as_f32(bt), has_avx512()) {
        // SAFETY: AVX-512 checked, bounds asserted above; `out` is f32 as `a` is.
        unsafe {
            avx::dot_tile::<ROWS>(
                a.as_ptr(),
                d,
                d,
                bt.as_ptr(),
                ld,
                out.as_mut_ptr().cast(),
                ldo,
            )
        };
        return;
    }
    let mut acc = [[T::zero(); KEYS]; ROWS];
    for dd in 0..d {
        let b = &bt[dd * ld..dd * ld + KEYS];
        for i in 0..ROWS {
            let x = a[i * d + dd];
            for c in 0..KEYS {
                acc[i][c] = x.mul_add(b[c], acc[i][c]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        out[i * ldo..i * ldo + KEYS].copy_from_slice(row);
    }
}

/// `out[i·d + c] = Σ_{j<n} p[i·ldp + j] · v[j·d + c0 + c]`, `c < W`: a tile of `p·v`
/// (`v` `[n, d]`) for `ROWS` rows of `p`, the first `rows` written to `out` (`[.., d]`,
/// columns from `c0`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn weighted_tile<T: Real, const W: usize>(
    p: &[T],
    ldp: usize,
    v: &[T],
    d: usize,
    c0: usize,
    n: usize,
    out: &mut [T],
    rows: usize,
) {
    assert!(p.len() >= (ROWS - 1) * ldp + n && n * d <= v.len() && c0 + W <= d);
    assert!(rows <= ROWS && out.len() >= rows.max(1) * d - d + c0 + W);
    #[cfg(target_arch = "x86_64")]
    if let (Some(p), Some(v), true) = (T::as_f32(p), T::as_f32(v), has_avx512()) {
        let out = out.as_mut_ptr().cast::<f32>();
        // SAFETY (here and in both arms): AVX-512 checked, bounds asserted above.
        let (p, v) = (p.as_ptr(), unsafe { v.as_ptr().add(c0) });
        let out = unsafe { out.add(c0) };
        match W {
            64 => return unsafe { avx::weighted_tile::<ROWS, 4>(p, ldp, v, d, n, out, d, rows) },
            16 => return unsafe { avx::weighted_tile::<ROWS, 1>(p, ldp, v, d, n, out, d, rows) },
            _ => {}
        }
    }
    let mut acc = [[T::zero(); W]; ROWS];
    for j in 0..n {
        let x = &v[j * d + c0..j * d + c0 + W];
        for i in 0..ROWS {
            let w = p[i * ldp + j];
            for c in 0..W {
                acc[i][c] = w.mul_add(x[c], acc[i][c]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(rows) {
        out[i * d + c0..i * d + c0 + W].copy_from_slice(row);
    }
}

/// `out[j·d + c] = Σ_r p[r·sp + j0 + j] · x[r·d + c0 + c]` over the rows that see key
/// `j0` (`ends[r] > j0`; `p` is zero past a row's end): a `KEY_ROWS × W` tile of
/// `pᵀ·x`, the first `keys` rows written to `out` (`[.., d]`, columns from `c0`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn transposed_tile<T: Real, const W: usize>(
    p: &[T],
    sp: usize,
    x: &[T],
    d: usize,
    ends: &[usize],
    j0: usize,
    c0: usize,
    out: &mut [T],
    keys: usize,
) {
    let m = ends.len();
    assert!(p.len() >= m * sp && j0 + KEY_ROWS <= sp && x.len() >= m * d && c0 + W <= d);
    assert!(keys <= KEY_ROWS && out.len() >= keys.max(1) * d - d + c0 + W);
    #[cfg(target_arch = "x86_64")]
    if let (Some(p), Some(x), true) = (T::as_f32(p), T::as_f32(x), has_avx512()) {
        let out = out.as_mut_ptr().cast::<f32>();
        // SAFETY (here and in both arms): AVX-512 checked, bounds asserted above.
        let (p, x) = unsafe { (p.as_ptr().add(j0), x.as_ptr().add(c0)) };
        let out = unsafe { out.add(c0) };
        match W {
            64 => {
                return unsafe {
                    avx::transposed_tile::<KEY_ROWS, 4>(p, sp, x, d, ends, j0, out, d, keys)
                }
            }
            16 => {
                return unsafe {
                    avx::transposed_tile::<KEY_ROWS, 1>(p, sp, x, d, ends, j0, out, d, keys)
                }
            }
            _ => {}
        }
    }
    let mut acc = [[T::zero(); W]; KEY_ROWS];
    for (r, &end) in ends.iter().enumerate() {
        if end <= j0 {
            continue;
        }
        let pr = &p[r * sp + j0..r * sp + j0 + KEY_ROWS];
        let xr = &x[r * d + c0..r * d + c0 + W];
        for j in 0..KEY_ROWS {
            for c in 0..W {
                acc[j][c] = pr[j].mul_add(xr[c], acc[j][c]);
            }
        }
    }
    for (j, row) in acc.iter().enumerate().take(keys) {
        out[j * d + c0..j * d + c0 + W].copy_from_slice(row);
    }
}

/// `x` `[n, d]` transposed into `[d, sp]`, zero beyond column `n`.
#[inline(always)]
fn transposed<T: Real>(x: &[T], n: usize, d: usize, sp: usize) -> Vec<T> {
    let mut out = vec![T::zero(); d * sp];
    for j in 0..n {
        for c in 0..d {
            out[c * sp + j] = x[j * d + c];
        }
    }
    out
}

/// Padded key count: the score tiles are `KEYS` wide (a multiple of `KEY_ROWS`).
fn padded(s: usize) -> usize {
    s.div_ceil(KEYS) * KEYS
}

/// One task's forward: `o` `[m, d]` and each row's max and reciprocal normaliser.
#[inline(always)]
fn forward_task<T: Real, const W: usize>(
    task: &Task<'_, T>,
    q: &[T],
    k: &[T],
    v: &[T],
    o: &mut [T],
    stats: &mut [f64],
) {
    let (m, s, d) = (task.m, task.s, task.d);
    let sp = padded(s);
    let kt = transposed(k, s, d, sp);
    let ends = task.ends();
    let mut sc = vec![T::zero(); ROWS * sp];
    let mut pad = vec![T::zero(); ROWS * d];
    for r0 in (0..m).step_by(ROWS) {
        let rows = ROWS.min(m - r0);
        let end = ends[r0..r0 + rows].iter().copied().max().unwrap_or(s);
        task.scores(q, &kt, sp, r0, end, &mut pad, &mut sc);
        for i in 0..rows {
            let r = r0 + i;
            let row = &mut sc[i * sp..(i + 1) * sp];
            let e = ends[r];
            let max = softmax_logits(task, row, r, e);
            row[..e].iter_mut().for_each(|x| *x = (*x - max).fast_exp());
            let inv = lane_sum(&row[..e]).recip();
            row[..e]
                .iter_mut()
                .for_each(|x| *x = flush_subnormal(*x * inv));
            row[e..end].fill(T::zero());
            stats[2 * r] = <T as candle_core::WithDType>::to_f64(max);
            stats[2 * r + 1] = <T as candle_core::WithDType>::to_f64(inv);
        }
        for c0 in (0..d).step_by(W) {
            weighted_tile::<T, W>(&sc, sp, v, d, c0, end, &mut o[r0 * d..], rows);
        }
    }
}

/// Turns row `r`'s raw scores `0..e` into logits (scale, mask) and returns their max.
/// (Separate passes, so each vectorises: a running max in the same loop did not.)
#[inline(always)]
fn softmax_logits<T: Real>(task: &Task<'_, T>, row: &mut [T], r: usize, e: usize) -> T {
    let row = &mut row[..e];
    match task.mask_row(r) {
        Some(mk) => row
            .iter_mut()
            .zip(mk)
            .for_each(|(x, &k)| *x = x.mul_add(task.scale, k)),
        None => row.iter_mut().for_each(|x| *x *= task.scale),
    }
    lane_max(row)
}

/// The gradients of one task.
struct Grads<'a, T> {
    dq: &'a mut [T],
    dk: &'a mut [T],
    dv: &'a mut [T],
}

/// One task's backward pass.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_task<T: Real, const W: usize>(
    task: &Task<'_, T>,
    q: &[T],
    k: &[T],
    v: &[T],
    o: &[T],
    go: &[T],
    stats: &[f64],
    out: Grads<'_, T>,
) {
    let (m, s, d) = (task.m, task.s, task.d);
    let sp = padded(s);
    let kt = transposed(k, s, d, sp);
    let vt = transposed(v, s, d, sp);
    let ends = task.ends();
    let dsum: Vec<T> = (0..m)
        .map(|r| lane_dot(&go[r * d..(r + 1) * d], &o[r * d..(r + 1) * d]))
        .collect();
    // Every row's probabilities and score gradients, zero past the row's end (and
    // whole padding rows up to a multiple of ROWS), for the key-side products after
    // the loop.
    let mp = m.div_ceil(ROWS) * ROWS;
    let mut p = vec![T::zero(); mp * sp];
    let mut ds = vec![T::zero(); mp * sp];
    let mut sc = vec![T::zero(); ROWS * sp];
    let mut dp = vec![T::zero(); ROWS * sp];
    let mut pad = vec![T::zero(); ROWS * d];
    for r0 in (0..m).step_by(ROWS) {
        let rows = ROWS.min(m - r0);
        let end = ends[r0..r0 + rows].iter().copied().max().unwrap_or(s);
        task.scores(q, &kt, sp, r0, end, &mut pad, &mut sc);
        task.scores(go, &vt, sp, r0, end, &mut pad, &mut dp);
        for i in 0..rows {
            let r = r0 + i;
            let e = ends[r];
            let row = &mut sc[i * sp..(i + 1) * sp];
            softmax_logits(task, row, r, e);
            let max = T::from(stats[2 * r]).expect("float");
            let inv = T::from(stats[2 * r + 1]).expect("float");
            let pr = &mut p[r * sp..r * sp + e];
            for (p, &x) in pr.iter_mut().zip(&row[..e]) {
                *p = flush_subnormal((x - max).fast_exp() * inv);
            }
            let dr = &mut ds[r * sp..r * sp + e];
            let c = dsum[r];
            for ((g, &p), &dpj) in dr.iter_mut().zip(pr.iter()).zip(&dp[i * sp..i * sp + e]) {
                *g = task.scale * p * (dpj - c);
            }
        }
        for c0 in (0..d).step_by(W) {
            weighted_tile::<T, W>(
                &ds[r0 * sp..],
                sp,
                k,
                d,
                c0,
                end,
                &mut out.dq[r0 * d..],
                rows,
            );
        }
    }
    for j0 in (0..s).step_by(KEY_ROWS) {
        let keys = KEY_ROWS.min(s - j0);
        for c0 in (0..d).step_by(W) {
            transposed_tile::<T, W>(&p, sp, go, d, &ends, j0, c0, &mut out.dv[j0 * d..], keys);
            transposed_tile::<T, W>(&ds, sp, q, d, &ends, j0, c0, &mut out.dk[j0 * d..], keys);
        }
    }
}

#[cfg(target_arch = "x86_64")]
use super::attention_avx512 as avx;

#[cfg(feature = "cuda")]
impl FusedAttention {
    /// Runs `f` with the mask as the GPU kernels take it.
    fn with_gpu_mask<R>(
        &self,
        f: impl FnOnce(Option<&super::cuda::AttentionMask<'_>>) -> Result<R>,
    ) -> Result<R> {
        match &self.mask {
            Some(CallMask {
                tensor,
                mb,
                device_ends: Some(ends),
                ..
            }) => f(Some(&super::cuda::AttentionMask {
                mask: tensor,
                ends,
                mb: *mb,
            })),
            Some(_) => bail!("attention: the mask's ends are not on the GPU"),
            None => f(None),
        }
    }

    fn backward_gpu(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        o: &Tensor,
        go: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, g, m, d) = q.dims4()?;
        let dims = super::cuda::AttentionDims {
            b,
            g,
            m,
            s: k.dim(2)?,
            d,
            t: self.t,
        };
        let guard = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let Some(Stats::Device(stats)) = guard.as_ref() else {
            bail!("attention: backward pass before the forward one");
        };
        self.with_gpu_mask(|mask| {
            super::cuda::attention_bwd(q, k, v, o, go, stats, mask, dims, self.scale)
        })
    }
}

/// `(b, g, m, s, d)`: batch, KV heads, query rows per KV head, keys, head dim.
type Dims = (usize, usize, usize, usize, usize);

impl FusedAttention {
    /// The task of (batch, KV head) `i`, given the mask's data.
    fn task<'a, T: Real>(&'a self, dims: Dims, i: usize, mask: Option<&'a [T]>) -> Task<'a, T> {
        let (_b, g, m, s, d) = dims;
        let t = self.t;
        let mask = match (&self.mask, mask) {
            (Some(cm), Some(mk)) => {
                let bi = if cm.mb == 1 { 0 } else { i / g };
                Some((
                    &mk[bi * t * s..(bi + 1) * t * s],
                    &cm.ends[bi * t..(bi + 1) * t],
                ))
            }
            _ => None,
        };
        Task {
            m,
            s,
            d,
            t,
            scale: T::from(self.scale).expect("float"),
            mask,
        }
    }

    /// Runs `f` on the mask's data, if there is a mask.
    fn with_mask<T: Real, R>(&self, f: impl FnOnce(Option<&[T]>) -> Result<R>) -> Result<R> {
        match &self.mask {
            Some(cm) => with_data::<T, _>(&cm.tensor, |m| f(Some(m))),
            None => f(None),
        }
    }

    fn forward<T: Real>(&self, q: &[T], k: &[T], v: &[T], dims: Dims) -> Result<Vec<T>> {
        let (b, g, m, s, d) = dims;
        let mut o = vec![T::zero(); b * g * m * d];
        let mut stats = vec![0f64; 2 * b * g * m];
        self.with_mask::<T, _>(|mk| {
            o.par_chunks_mut(m * d)
                .zip(stats.par_chunks_mut(2 * m))
                .enumerate()
                .for_each(|(i, (o, stats))| {
                    let task = self.task(dims, i, mk);
                    let (k, v) = (
                        &k[i * s * d..(i + 1) * s * d],
                        &v[i * s * d..(i + 1) * s * d],
                    );
                    let q = &q[i * m * d..(i + 1) * m * d];
                    wide(
                        #[inline(always)]
                        || {
                            if d % 64 == 0 {
                                forward_task::<T, 64>(&task, q, k, v, o, stats)
                            } else {
                                forward_task::<T, 16>(&task, q, k, v, o, stats)
                            }
                        },
                    )
                });
            Ok(())
        })?;
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(Stats::Host(stats));
        Ok(o)
    }

    #[allow(clippy::type_complexity)]
    fn backward<T: Real>(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        o: &Tensor,
        go: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, g, m, d) = q.dims4()?;
        let s = k.dim(2)?;
        let dims = (b, g, m, s, d);
        let guard = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let Some(Stats::Host(stats)) = guard.as_ref() else {
            bail!("attention: backward pass before the forward one");
        };
        let mut dq = vec![T::zero(); b * g * m * d];
        let mut dk = vec![T::zero(); b * g * s * d];
        let mut dv = vec![T::zero(); b * g * s * d];
        with_data::<T, _>(q, |q| {
            with_data::<T, _>(k, |k| {
                with_data::<T, _>(v, |v| {
                    with_data::<T, _>(o, |o| {
                        with_data::<T, _>(go, |go| {
                            self.with_mask::<T, _>(|mk| {
                                dq.par_chunks_mut(m * d)
                                    .zip(dk.par_chunks_mut(s * d).zip(dv.par_chunks_mut(s * d)))
                                    .enumerate()
                                    .for_each(|(i, (dq, (dk, dv)))| {
                                        let task = self.task(dims, i, mk);
                                        let rows = i * m * d..(i + 1) * m * d;
                                        let keys = i * s * d..(i + 1) * s * d;
                                        let (q, o, go) =
                                            (&q[rows.clone()], &o[rows.clone()], &go[rows]);
                                        let (k, v) = (&k[keys.clone()], &v[keys]);
                                        let stats = &stats[2 * i * m..2 * (i + 1) * m];
                                        let out = Grads { dq, dk, dv };
                                        wide(
                                            #[inline(always)]
                                            || {
                                                if d % 64 == 0 {
                                                    backward_task::<T, 64>(
                                                        &task, q, k, v, o, go, stats, out,
                                                    )
                                                } else {
                                                    backward_task::<T, 16>(
                                                        &task, q, k, v, o, go, stats, out,
                                                    )
                                                }
                                            },
                                        )
                                    });
                                Ok(())
                            })
                        })
                    })
                })
            })
        })?;
        let dev = q.device();
        Ok((
            Tensor::from_vec(dq, q.shape(), dev)?,
            Tensor::from_vec(dk, k.shape(), dev)?,
            Tensor::from_vec(dv, v.shape(), dev)?,
        ))
    }
}

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "r1-fused-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [b, g, m, d] = l1.shape().dims() else {
            bail!("attention: q is not 4-D");
        };
        let s = l2.shape().dims()[2];
        let dims = (*b, *g, *m, s, *d);
        let o = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(self.forward(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
                dims,
            )?),
            CpuStorage::F64(_) => CpuStorage::F64(self.forward(
                slice(s1, l1)?,
                slice(s2, l2)?,
                slice(s3, l3)?,
                dims,
            )?),
            _ => bail!("attention: fused kernel runs on f32 or f64 only"),
        };
        Ok((o, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let [b, g, m, d] = l1.shape().dims() else {
            bail!("attention: q is not 4-D");
        };
        let dims = super::cuda::AttentionDims {
            b: *b,
            g: *g,
            m: *m,
            s: l2.shape().dims()[2],
            d: *d,
            t: self.t,
        };
        let (o, stats) = self.with_gpu_mask(|mask| {
            super::cuda::attention_fwd(s1, l1, s2, l2, s3, l3, mask, dims, self.scale)
        })?;
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(Stats::Device(stats));
        Ok((o, l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        o: &Tensor,
        go: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if q.device().is_cuda() {
            let (dq, dk, dv) = self.backward_gpu(q, k, v, o, go)?;
            return Ok((Some(dq), Some(dk), Some(dv)));
        }
        let (dq, dk, dv) = match q.dtype() {
            candle_core::DType::F32 => self.backward::<f32>(q, k, v, o, go)?,
            candle_core::DType::F64 => self.backward::<f64>(q, k, v, o, go)?,
            d => bail!("attention: no fused backward for {d:?}"),
        };
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}
