//! Attention for decoding: a few new query positions against the KV cache, computed
//! directly per (row, head) — scores, masked softmax and the weighted sum of values
//! in one pass. The GEMM route ran two tiny matrix products per row and KV group
//! (192 GEMM calls per layer at batch 32, each waking the thread pool), which took
//! more time in synchronisation than in arithmetic. Inference only (no backward).

use super::cpu::{for_each_chunk, lane_dot, lane_max, lane_sum, wide, with_data, Real};
use super::logprob::flush_subnormal;
use candle_core::{bail, Result, Storage, Tensor};

/// Largest number of new positions this kernel is used for (prefill uses GEMMs).
pub const MAX_QUERIES: usize = 8;

/// `softmax(scale · q·kᵀ + mask) · v` for `q` `[b, heads, t, d]`, `k`/`v`
/// `[b, kv_heads, s, d]` (any strides with contiguous rows, e.g. views of the KV cache)
/// and an additive mask `[b or 1, 1, t, s]`. Returns `[b, heads, t, d]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let (b, nh, t, d) = q.dims4()?;
    let (kb, nkv, s, kd) = k.dims4()?;
    if kb != b || kd != d || v.dims() != k.dims() || nkv == 0 || nh % nkv != 0 {
        bail!(
            "attention: q {:?}, k {:?}, v {:?} do not fit",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    if let Some(m) = mask {
        let (mb, _, mt, ms) = m.dims4()?;
        if (mb != b && mb != 1) || mt != t || ms != s {
            bail!(
                "attention: mask {:?} does not fit scores [{b}, {nh}, {t}, {s}]",
                m.dims()
            );
        }
    }
    fn run<T: Real>(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        scale: f64,
    ) -> Result<Tensor> {
        let (b, nh, t, d) = q.dims4()?;
        let (_, nkv, s, _) = k.dims4()?;
        let rep = nh / nkv;
        let scale = T::from(scale).unwrap();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (Storage::Cpu(ks), Storage::Cpu(vs)) = (&*ks, &*vs) else {
            bail!("attention: tensors are not on the CPU")
        };
        let (kall, vall) = (ks.as_slice::<T>()?, vs.as_slice::<T>()?);
        let (kst, vst) = (kl.stride(), vl.stride());
        if kst[3] != 1 || vst[3] != 1 {
            bail!("attention: key/value rows must be contiguous");
        }
        let (ko, vo) = (kl.start_offset(), vl.start_offset());
        let mut out = vec![T::zero(); b * nh * t * d];
        let mask_data = match mask {
            Some(m) => Some((m.contiguous()?.flatten_all()?.to_vec1::<T>()?, m.dim(0)?)),
            None => None,
        };
        with_data::<T, _>(q, |qs| {
            // Multiply-adds: q·k and p·v over every key, per (row, head, query).
            let work = b * nh * t * s * d * 2;
            // One task per (row, KV group): the group's `rep` query heads share each
            // key and value row, which is loaded once for all of them.
            let rows = rep * t;
            for_each_chunk(&mut out, rows * d, 1, work, |bg, o| {
                wide(
                    #[inline(always)]
                    || {
                        let (bi, g) = (bg / nkv, bg % nkv);
                        let kbase = ko + bi * kst[0] + g * kst[1];
                        let vbase = vo + bi * vst[0] + g * vst[1];
                        // Query rows in output order (head, position), contiguous in q.
                        let qg = &qs[bg * rows * d..][..rows * d];
                        let mut p = vec![T::zero(); rows * s];
                        if !scores_simd(qg, &kall[kbase..], kst[2], s, d, scale, &mut p) {
                            for j in 0..s {
                                let kr = &kall[kbase + j * kst[2]..][..d];
                                for (qi, qr) in qg.chunks_exact(d).enumerate() {
                                    p[qi * s + j] = lane_dot(qr, kr) * scale;
                                }
                            }
                        }
                        for (qi, pr) in p.chunks_exact_mut(s).enumerate() {
                            if let Some((m, mb)) = &mask_data {
                                let ti = qi % t;
                                let mrow = if *mb == 1 { ti } else { bi * t + ti };
                                pr.iter_mut()
                                    .zip(&m[mrow * s..(mrow + 1) * s])
                                    .for_each(|(a, &mv)| *a += mv);
                            }
                            let max = lane_max(pr);
                            pr.iter_mut().for_each(|x| *x = (*x - max).fast_exp());
                            let inv = lane_sum(pr).recip();
                            pr.iter_mut().for_each(|x| *x = flush_subnormal(*x * inv));
                        }
                        if !weighted_values_simd(&p, &vall[vbase..], vst[2], s, d, o) {
                            for j in 0..s {
                                let vr = &vall[vbase + j * vst[2]..][..d];
                                for (qi, orow) in o.chunks_exact_mut(d).enumerate() {
                                    let w = p[qi * s + j];
                                    if w != T::zero() {
                                        orow.iter_mut().zip(vr).for_each(|(a, &x)| *a += w * x);
                                    }
                                }
                            }
                        }
                    },
                )
            });
            Ok(())
        })?;
        Tensor::from_vec(out, (b, nh, t, d), q.device())
    }
    match q.dtype() {
        candle_core::DType::F32 => run::<f32>(q, k, v, mask, scale),
        candle_core::DType::F64 => run::<f64>(q, k, v, mask, scale),
        dt => bail!("attention: fused kernel runs on f32 or f64 only, not {dt:?}"),
    }
}

/// `p[qi·s + j] = scale · q_qi · k_j` for every query row of `q` (`[rows, d]`) and key
/// `j < s` (row `j` of `k` at `j·ks`), with explicit AVX-512 when `T` is f32 and `d` a
/// multiple of 16 (at most 128); returns false, computing nothing, otherwise. Written
/// by hand because the generic loop compiled to 2-lane pieces around each 64-wide dot
/// product's lane sum: at 32 rows the decode attention ran at ~14 GFLOP/s on
/// cache-resident keys. Here 16 keys' dot products accumulate side by side and one
/// transposing tree ([`sum_lanes_16`]) reduces all 16 at once.
fn scores_simd<T: Real>(
    q: &[T],
    k: &[T],
    ks: usize,
    s: usize,
    d: usize,
    scale: T,
    p: &mut [T],
) -> bool {
    if !simd_rows::<T>(d) {
        return false;
    }
    let rows = q.len() / d;
    assert!(p.len() >= rows * s && (s == 0 || k.len() >= (s - 1) * ks + d));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `T` is f32 (`simd_rows`), the bounds were checked just above and
    // AVX-512 was detected.
    unsafe {
        let scale = scale.to_f32().unwrap_or(f32::NAN);
        scores_f32_avx512(as_f32(q), as_f32(k), ks, s, d, scale, as_f32_mut(p));
    }
    true
}

/// Whether the AVX-512 paths run: `T` is f32 (the only 4-byte [`Real`]), the head
/// size a multiple of 16 up to 128, and the CPU has AVX-512.
fn simd_rows<T: Real>(d: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::mem::size_of::<T>() == 4
            && d.is_multiple_of(16)
            && d <= 128
            && is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = d;
        false
    }
}

/// # Safety
/// `T` must be f32.
#[cfg(target_arch = "x86_64")]
unsafe fn as_f32<T>(x: &[T]) -> &[f32] {
    std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len())
}

/// # Safety
/// `T` must be f32.
#[cfg(target_arch = "x86_64")]
unsafe fn as_f32_mut<T>(x: &mut [T]) -> &mut [f32] {
    std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut f32, x.len())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scores_f32_avx512(
    q: &[f32],
    k: &[f32],
    ks: usize,
    s: usize,
    d: usize,
    scale: f32,
    p: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (rows, chunks) = (q.len() / d, d / 16);
    let (q, k) = (q.as_ptr(), k.as_ptr());
    let full = s / 16 * 16;
    for j0 in (0..full).step_by(16) {
        // The 16 keys (4 KB at d = 64) stay in L1 across the query rows.
        for qi in 0..rows {
            let mut acc = [_mm512_setzero_ps(); 16];
            for c in 0..chunks {
                let qv = _mm512_loadu_ps(q.add(qi * d + c * 16));
                for (jj, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k.add((j0 + jj) * ks + c * 16)), *a);
                }
            }
            let dots = _mm512_mul_ps(sum_lanes_16(acc), _mm512_set1_ps(scale));
            _mm512_storeu_ps(p.as_mut_ptr().add(qi * s + j0), dots);
        }
    }
    for j in full..s {
        for qi in 0..rows {
            let mut a = _mm512_setzero_ps();
            for c in 0..chunks {
                a = _mm512_fmadd_ps(
                    _mm512_loadu_ps(q.add(qi * d + c * 16)),
                    _mm512_loadu_ps(k.add(j * ks + c * 16)),
                    a,
                );
            }
            p[qi * s + j] = _mm512_reduce_add_ps(a) * scale;
        }
    }
}

/// `o[qi] = Σ_j p[qi·s + j] · v_j` for every output row of `o` (`[rows, d]`, zero on
/// entry; row `j` of `v` at `j·vs`), by AVX-512 under the same conditions as
/// [`scores_simd`], which it mirrors. Keys with weight 0 (masked) are skipped. The
/// generic loop kept `o` in memory, loading and storing it for every key.
fn weighted_values_simd<T: Real>(
    p: &[T],
    v: &[T],
    vs: usize,
    s: usize,
    d: usize,
    o: &mut [T],
) -> bool {
    if !simd_rows::<T>(d) {
        return false;
    }
    let rows = o.len() / d;
    assert!(p.len() >= rows * s && (s == 0 || v.len() >= (s - 1) * vs + d));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `scores_simd`.
    unsafe {
        weighted_values_f32_avx512(as_f32(p), as_f32(v), vs, s, d, as_f32_mut(o));
    }
    true
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weighted_values_f32_avx512(
    p: &[f32],
    v: &[f32],
    vs: usize,
    s: usize,
    d: usize,
    o: &mut [f32],
) {
    // Output rows in groups whose accumulators (rows × d/16 vectors, at most 24 of the
    // 32 registers) stay in registers, so each value row is loaded once for the whole
    // group (a decode step's KV group has 3 query heads at SmolLM2's head size 64)
    // instead of once per row.
    match d / 16 {
        1 => value_rows::<1, 8>(p, v, vs, s, o),
        2 => value_rows::<2, 6>(p, v, vs, s, o),
        3 => value_rows::<3, 4>(p, v, vs, s, o),
        4 => value_rows::<4, 3>(p, v, vs, s, o),
        5 => value_rows::<5, 2>(p, v, vs, s, o),
        6 => value_rows::<6, 2>(p, v, vs, s, o),
        7 => value_rows::<7, 2>(p, v, vs, s, o),
        _ => value_rows::<8, 2>(p, v, vs, s, o),
    }
}

/// Rows of `o` (`CH` vectors each) in groups of `R`, then one at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn value_rows<const CH: usize, const R: usize>(
    p: &[f32],
    v: &[f32],
    vs: usize,
    s: usize,
    o: &mut [f32],
) {
    let rows = o.len() / (16 * CH);
    let mut qi = 0;
    while qi + R <= rows {
        value_group::<CH, R>(p, v, vs, s, o, qi);
        qi += R;
    }
    while qi < rows {
        value_group::<CH, 1>(p, v, vs, s, o, qi);
        qi += 1;
    }
}

/// Output rows `q0..q0 + R`: every key's value row is loaded once and added to all
/// `R` rows with their weights; keys masked for all of them are skipped.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn value_group<const CH: usize, const R: usize>(
    p: &[f32],
    v: &[f32],
    vs: usize,
    s: usize,
    o: &mut [f32],
    q0: usize,
) {
    use std::arch::x86_64::*;
    let d = 16 * CH;
    let mut acc = [[_mm512_setzero_ps(); CH]; R];
    for j in 0..s {
        let mut w = [0f32; R];
        for (r, x) in w.iter_mut().enumerate() {
            *x = *p.get_unchecked((q0 + r) * s + j);
        }
        if w.iter().all(|&x| x == 0.0) {
            continue;
        }
        let vr = v.as_ptr().add(j * vs);
        let mut vv = [_mm512_setzero_ps(); CH];
        for (c, x) in vv.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(vr.add(c * 16));
        }
        for r in 0..R {
            let b = _mm512_set1_ps(w[r]);
            for c in 0..CH {
                acc[r][c] = _mm512_fmadd_ps(b, vv[c], acc[r][c]);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (c, a) in row.iter().enumerate() {
            _mm512_storeu_ps(o.as_mut_ptr().add((q0 + r) * d + c * 16), *a);
        }
    }
}

/// Lane `i` of the result is the sum of `v[i]`'s 16 lanes: a halving tree that pairs
/// vectors at each level (256-bit halves, 128-bit quarters, 64-bit pairs, single
/// lanes), 46 instructions for all 16 sums where 16 separate reductions take ~130.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_lanes_16(v: [std::arch::x86_64::__m512; 16]) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // No closures here: a closure is not compiled with this function's target
    // features, and `__m512` values crossing into one are corrupted.
    let zero = _mm512_setzero_ps();
    // Level 1: w[i] holds v[2i]'s 8 partial sums in its low half, v[2i+1]'s in its high.
    let mut w = [zero; 8];
    for i in 0..8 {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        w[i] = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(a, b),
            _mm512_shuffle_f32x4::<0xEE>(a, b),
        );
    }
    // Level 2: x[i]'s quarters hold 4 partial sums of v[4i], v[4i+1], v[4i+2], v[4i+3].
    let mut x = [zero; 4];
    for i in 0..4 {
        let (a, b) = (w[2 * i], w[2 * i + 1]);
        x[i] = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(a, b),
            _mm512_shuffle_f32x4::<0xDD>(a, b),
        );
    }
    // Level 3: quarter q of y[i] holds 2 partial sums of v[8i+q], then of v[8i+4+q].
    let mut y = [zero; 2];
    for i in 0..2 {
        let (a, b) = (_mm512_castps_pd(x[2 * i]), _mm512_castps_pd(x[2 * i + 1]));
        // (Moved as 64-bit pairs, added as floats.)
        y[i] = _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
        );
    }
    // Level 4: lane 4q + r holds the sum of v[q + 4r] …
    let z = _mm512_add_ps(
        _mm512_shuffle_ps::<0x88>(y[0], y[1]),
        _mm512_shuffle_ps::<0xDD>(y[0], y[1]),
    );
    // … so lane i takes lane 4·(i mod 4) + i/4.
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_permutexvar_ps(order, z)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    #[test]
    fn sixteen_lane_sums_land_in_order() {
        if !is_x86_feature_detected!("avx512f") {
            return;
        }
        // v[i][l] = (i + 1) · 2^(l mod 8) + 1000·i·[l == 3]: every vector's sum differs.
        let data: Vec<[f32; 16]> = (0..16)
            .map(|i| {
                std::array::from_fn(|l| {
                    (i + 1) as f32 * (1 << (l % 8)) as f32
                        + if l == 3 { 1000.0 * i as f32 } else { 0.0 }
                })
            })
            .collect();
        let mut got = [0f32; 16];
        // SAFETY: AVX-512 was detected.
        unsafe { sums(&data, &mut got) };
        for (i, row) in data.iter().enumerate() {
            assert_eq!(got[i], row.iter().sum::<f32>(), "lane {i}");
        }
    }

    /// Loads, sums and stores inside one AVX-512 function: `__m512` values passed
    /// across functions compiled without AVX-512 (as a test's body is) are corrupted.
    #[target_feature(enable = "avx512f")]
    unsafe fn sums(data: &[[f32; 16]], got: &mut [f32; 16]) {
        use std::arch::x86_64::*;
        let mut v = [_mm512_setzero_ps(); 16];
        for (x, row) in v.iter_mut().zip(data) {
            *x = _mm512_loadu_ps(row.as_ptr());
        }
        _mm512_storeu_ps(got.as_mut_ptr(), super::sum_lanes_16(v));
    }
}
