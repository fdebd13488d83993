//! The f32 register tiles of `attention`, in AVX-512 intrinsics. The generic tiles
//! there are right for any float, but the compiler kept their row pointers on the
//! stack and reloaded the shared operand for every row: the fused attention ran at a
//! third of the GEMM's FLOP rate. Here each tile's accumulators, its shared operand
//! and its per-row broadcasts all stay in registers.
//!
//! Callers check [`super::cpu::has_avx512`] and the bounds; these take raw pointers.

// Index loops over a tile's rows read like the math they compute.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

/// `out[i][c] = Σ_dd a[i·lda + dd] · bt[dd·ld + c]` for `i < R`, `c < 32`: a tile of
/// `a·bᵀ` with `bᵀ` stored row-major, written to `out + i·ldo`.
///
/// # Safety
/// AVX-512F and FMA present; `a` readable for `R` rows of `d`, `bt` for `d` rows of 32
/// at stride `ld`, `out` writable for `R` rows of 32 at stride `ldo`.
#[target_feature(enable = "avx512f,fma")]
pub unsafe fn dot_tile<const R: usize>(
    a: *const f32,
    lda: usize,
    d: usize,
    bt: *const f32,
    ld: usize,
    out: *mut f32,
    ldo: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for dd in 0..d {
        let b0 = _mm512_loadu_ps(bt.add(dd * ld));
        let b1 = _mm512_loadu_ps(bt.add(dd * ld + 16));
        for i in 0..R {
            let x = _mm512_set1_ps(*a.add(i * lda + dd));
            acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.add(i * ldo), row[0]);
        _mm512_storeu_ps(out.add(i * ldo + 16), row[1]);
    }
}

/// `out[i][c] = Σ_{j<n} p[i·ldp + j] · v[j·ld + c]` for `i < R`, `c < 16·V`: a tile
/// of `p·v`, its first `rows` rows written to `out + i·ldo`.
///
/// # Safety
/// AVX-512F and FMA present; `p` readable for `R` rows of `n` at stride `ldp`, `v` for
/// `n` rows of `16·V` at stride `ld`, `out` writable for `rows ≤ R` rows of `16·V`.
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn weighted_tile<const R: usize, const V: usize>(
    p: *const f32,
    ldp: usize,
    v: *const f32,
    ld: usize,
    n: usize,
    out: *mut f32,
    ldo: usize,
    rows: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for j in 0..n {
        // Plain loops, no closures: a closure is compiled without this function's
        // target features, and `__m512` values crossing one came back corrupted
        // (docs/kernels.md).
        let mut x = [_mm512_setzero_ps(); V];
        for q in 0..V {
            x[q] = _mm512_loadu_ps(v.add(j * ld + 16 * q));
        }
        for i in 0..R {
            let w = _mm512_set1_ps(*p.add(i * ldp + j));
            for q in 0..V {
                acc[i][q] = _mm512_fmadd_ps(w, x[q], acc[i][q]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(rows) {
        for (q, &a) in row.iter().enumerate() {
            _mm512_storeu_ps(out.add(i * ldo + 16 * q), a);
        }
    }
}

/// `out[j][c] = Σ_{r visible} p[r·ldp + j] · x[r·ldx + c]` for `j < K`, `c < 16·V`,
/// over the rows `r < ends.len()` with `ends[r] > j0` (those that see the tile's first
/// key; `p` is zero past each row's end): a tile of `pᵀ·x`, written to `out + j·ldo`
/// for `j < keys`.
///
/// # Safety
/// AVX-512F and FMA present; `p` readable for `ends.len()` rows of `K` at stride `ldp`,
/// `x` for as many rows of `16·V` at stride `ldx`, `out` writable for `keys ≤ K` rows.
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn transposed_tile<const K: usize, const V: usize>(
    p: *const f32,
    ldp: usize,
    x: *const f32,
    ldx: usize,
    ends: &[usize],
    j0: usize,
    out: *mut f32,
    ldo: usize,
    keys: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; K];
    for (r, &end) in ends.iter().enumerate() {
        if end <= j0 {
            continue;
        }
        let mut xr = [_mm512_setzero_ps(); V];
        for q in 0..V {
            xr[q] = _mm512_loadu_ps(x.add(r * ldx + 16 * q));
        }
        for j in 0..K {
            let w = _mm512_set1_ps(*p.add(r * ldp + j));
            for q in 0..V {
                acc[j][q] = _mm512_fmadd_ps(w, xr[q], acc[j][q]);
            }
        }
    }
    for (j, row) in acc.iter().enumerate().take(keys) {
        for (q, &a) in row.iter().enumerate() {
            _mm512_storeu_ps(out.add(j * ldo + 16 * q), a);
        }
    }
}
