//! `y = x · Wᵀ` for the few-row inputs of decoding (`x` `[m, k]` with small `m`,
//! `W` `[n, k]` as Hugging Face stores it). General GEMM libraries pack both operands
//! for large products; at decode's `m = 1…32` that packing and their matrix-vector
//! paths dominated (half of a decode step in gemm's packing code), while the work is
//! bound by reading `W` once. Here every `W` row is a contiguous dot-product operand,
//! so `W` streams from memory exactly once and `x` stays in cache. From 9 rows on
//! (AVX-512) the tiles change shape: `x` is transposed once per call and each `W`
//! element is broadcast against a whole column of `x` ([`broadcast`]), which keeps
//! the kernel off L2's bandwidth at decode's batch of 32.
//!
//! Inference only (no backward pass). Compiled for AVX-512 and for AVX2+FMA, chosen
//! at run time; elsewhere callers use candle's matmul (see [`available`]).

// Index loops over the tile's rows and columns read like the math they compute.
#![allow(clippy::needless_range_loop)]

use candle_core::{bail, Result, Storage, Tensor};
use rayon::prelude::*;

/// Largest `m` this kernel is used for; beyond it GEMM's packing pays off.
pub const MAX_ROWS: usize = 64;

/// Up to how many rows callers should run this kernel rather than GEMM on this CPU.
/// Measured on the SmolLM2 shapes, a decode step's projections against candle's GEMM:
/// with AVX-512, 2–8× faster at 8 rows and 1.3–4× at 32; with AVX2 only (an AMD EPYC
/// VM, session 11), 2.0× at 8 rows, 1.5× at 16 and 0.88× at 32.
pub fn max_rows() -> usize {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        return 32;
    }
    16
}

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` `[m, k]` times `w` `[n, k]` transposed, f32 on the CPU, no gradient.
pub fn matmul_wt(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let mut out = matmul_wt_many(x, &[w])?;
    Ok(out.pop().expect("one weight in, one product out"))
}

/// `x · Wᵢᵀ` for several weights sharing one input (a layer's q/k/v, or gate/up), in
/// one parallel region: a decode step's projections are short (tens of µs each), so
/// a thread hand-off per weight was a visible share of the step, and the small k/v
/// projections alone could not keep both threads busy.
pub fn matmul_wt_many(x: &Tensor, ws: &[&Tensor]) -> Result<Vec<Tensor>> {
    let (m, k) = x.dims2()?;
    let mut ns = Vec::with_capacity(ws.len());
    for w in ws {
        let (n, k2) = w.dims2()?;
        if k != k2 {
            bail!(
                "matmul_wt: x {:?} and w {:?} do not fit",
                x.dims(),
                w.dims()
            );
        }
        ns.push(n);
    }
    if !available() {
        bail!("matmul_wt: this CPU lacks AVX2/FMA");
    }
    let x = x.contiguous()?;
    let ws: Vec<Tensor> = ws.iter().map(|w| w.contiguous()).collect::<Result<_>>()?;
    // Left uninitialised: every element is written below (each task owns whole output
    // columns for all rows), and the zero fill was a serial memset on the calling
    // thread every projection, 0.9 s of a batch-32 generation.
    let mut outs: Vec<Vec<f32>> = ns.iter().map(|&n| Vec::with_capacity(m * n)).collect();
    {
        let guards: Vec<_> = ws.iter().map(|w| w.storage_and_layout()).collect();
        let mut wdata = Vec::with_capacity(ws.len());
        for (s, l) in &guards {
            match &**s {
                Storage::Cpu(c) => wdata.push(super::cpu::slice::<f32>(c, l)?),
                _ => bail!("matmul_wt: weight is not on the CPU"),
            }
        }
        let jobs: Vec<Job> = wdata
            .iter()
            .zip(&mut outs)
            .zip(&ns)
            .map(|((w, o), &n)| Job {
                w,
                out: OutPtr(o.as_mut_ptr()),
                n,
            })
            .collect();
        super::cpu::with_data::<f32, _>(&x, |xs| {
            run(xs, &jobs, m, k);
            Ok(())
        })?;
    }
    outs.into_iter()
        .zip(ns)
        .map(|(mut o, n)| {
            // SAFETY: `run` wrote all `m·n` elements (see above).
            unsafe { o.set_len(m * n) };
            Tensor::from_vec(o, (m, n), x.device())
        })
        .collect()
}

/// One weight's product: `W` `[n, k]` and where its `[m, n]` output goes.
struct Job<'a> {
    w: &'a [f32],
    out: OutPtr,
    n: usize,
}

/// Output columns per parallel task (rows of `W`): at most 64, and few enough that
/// every thread gets about four tasks (the k/v projections have only 192 columns:
/// three tasks of 64 left one of two threads idle half the time). A multiple of 4,
/// the tile width.
fn cols_per_task(n: usize) -> usize {
    (n / (4 * rayon::current_num_threads())).clamp(4, 64) / 4 * 4
}

/// A pointer tasks write disjoint columns of the output through.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: each task writes only its own columns `j0..j1` of every output row.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// A task: columns `j0..j1` of job `job`'s output.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Task {
    job: usize,
    j0: usize,
    j1: usize,
}

/// Only reached on x86_64 (`matmul_wt` checks [`available`] first).
#[cfg(target_arch = "x86_64")]
fn run(x: &[f32], jobs: &[Job], m: usize, k: usize) {
    let avx512 = is_x86_feature_detected!("avx512f");
    if avx512 && BROADCAST_ROWS.contains(&m) {
        if m <= 16 {
            broadcast::<1, 24>(x, jobs, m, k);
        } else {
            broadcast::<2, 12>(x, jobs, m, k);
        }
        return;
    }
    let mut tasks = vec![];
    for (job, j) in jobs.iter().enumerate() {
        let per_task = cols_per_task(j.n);
        for j0 in (0..j.n).step_by(per_task) {
            let j1 = (j0 + per_task).min(j.n);
            tasks.push(Task { job, j0, j1 });
        }
    }
    // Always on the pool, even at one row: streaming `W` is bound by memory bandwidth,
    // and two threads keep more loads in flight (batch-1 decoding ran at ~14 tokens/s
    // on one thread, up to 22 on two).
    tasks.into_par_iter().for_each(|t| {
        let j = &jobs[t.job];
        // SAFETY: the CPU features were checked (`available`, `avx512`); the task
        // writes only columns j0..j1 of its job's output, which no other task touches.
        unsafe {
            if avx512 {
                columns_avx512(x, j.w, j.out.0, m, j.n, k, t.j0, t.j1)
            } else {
                columns_avx2(x, j.w, j.out.0, m, j.n, k, t.j0, t.j1)
            }
        }
    });
}

/// Rows for which [`broadcast`] runs instead of the 4 × 4 dot-product tiles (below 9
/// rows the product is bound by reading `W`, and the tiles need no transposed copy).
#[cfg(target_arch = "x86_64")]
const BROADCAST_ROWS: std::ops::RangeInclusive<usize> = 9..=32;

/// Writes `x` `[m, k]` transposed to `[k, 16·V]` (rows past `m` zero) into `buf`,
/// starting at a cache-line boundary so each `p` is `V` aligned vector loads; returns
/// that start. Row by row of the output, so the writes are sequential and every
/// element is written (no fill first).
#[cfg(target_arch = "x86_64")]
fn transpose_into<const V: usize>(buf: &mut Vec<f32>, x: &[f32], m: usize, k: usize) -> usize {
    let width = 16 * V;
    buf.resize(k * width + 16, 0.0);
    let start = buf.as_ptr().align_offset(64).min(15);
    for (p, row) in buf[start..start + k * width]
        .chunks_exact_mut(width)
        .enumerate()
    {
        for (i, v) in row[..m].iter_mut().enumerate() {
            *v = x[i * k + p];
        }
        row[m..].fill(0.0);
    }
    start
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The transposed `x` of [`broadcast`], kept between calls (a decode step makes
    /// hundreds of them).
    static TRANSPOSED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Output columns in tiles of `R` rows of `W` × all `m ≤ 16·V` rows of `x`: each step
/// over `k` loads `V` vectors of `xᵀ` and broadcasts one element of each `W` row, so
/// `R·V` accumulators (24 of the 32 registers) hold `y`'s tile and no horizontal sums
/// are needed. Per FMA this reads 3–4× fewer bytes from cache than the 4 × 4 tiles,
/// which at 32 rows were bound by re-reading `x` from L2 for every 4 columns.
#[cfg(target_arch = "x86_64")]
fn broadcast<const V: usize, const R: usize>(x: &[f32], jobs: &[Job], m: usize, k: usize) {
    TRANSPOSED.with(|cell| {
        // A pool thread waiting on its own tasks may run another caller's call here;
        // that nested call gets a fresh buffer.
        let mut own = Vec::new();
        let mut kept = cell.try_borrow_mut();
        let buf = match kept.as_deref_mut() {
            Ok(b) => b,
            Err(_) => &mut own,
        };
        let start = transpose_into::<V>(buf, x, m, k);
        broadcast_with::<V, R>(x, &buf[start..], jobs, m, k);
    })
}

#[cfg(target_arch = "x86_64")]
fn broadcast_with<const V: usize, const R: usize>(
    x: &[f32],
    xt: &[f32],
    jobs: &[Job],
    m: usize,
    k: usize,
) {
    let tiles_total: usize = jobs.iter().map(|j| j.n / R).sum();
    let per_task = (tiles_total / (4 * rayon::current_num_threads())).clamp(1, 8);
    let mut tasks = vec![];
    for (job, j) in jobs.iter().enumerate() {
        let tiles = j.n / R;
        for t0 in (0..tiles).step_by(per_task) {
            let t1 = (t0 + per_task).min(tiles);
            tasks.push(Task {
                job,
                j0: t0 * R,
                j1: t1 * R,
            });
        }
        // Columns left over when `n` is not a multiple of `R`.
        if tiles * R < j.n {
            tasks.push(Task {
                job,
                j0: tiles * R,
                j1: j.n,
            });
        }
    }
    tasks.into_par_iter().for_each(|t| {
        let j = &jobs[t.job];
        if (t.j1 - t.j0) % R != 0 {
            // SAFETY: AVX-512 was checked by the caller; these columns belong to this
            // task alone.
            unsafe { columns::<16, 4>(x, j.w, j.out.0, m, j.n, k, t.j0, t.j1) };
            return;
        }
        for c in (t.j0..t.j1).step_by(R) {
            // SAFETY: AVX-512 was checked by the caller; `xt` holds `k` rows of `16·V`
            // floats, `w` rows `c..c+R` exist, and this task alone writes columns
            // `c..c+R`.
            unsafe {
                broadcast_tile::<V, R>(xt.as_ptr(), j.w.as_ptr().add(c * k), k, j.out.0, m, j.n, c)
            };
        }
    });
}

/// Where prefetched weight lines go: all cache levels (T1, L2 and out, measured the
/// same; the non-temporal hint was slower).
#[cfg(target_arch = "x86_64")]
const PREFETCH_HINT: i32 = std::arch::x86_64::_MM_HINT_T0;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn broadcast_tile<const V: usize, const R: usize>(
    xt: *const f32,
    w: *const f32,
    k: usize,
    out: *mut f32,
    m: usize,
    n: usize,
    j: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    // The next tile's rows of `W` (contiguous after this tile's `R` rows), a line at a
    // time: hardware prefetchers alone left a 32-row decode step reading weights at
    // ~5 GB/s of the ~13 this VM streams.
    let next = w.wrapping_add(R * k);
    for p in 0..k {
        _mm_prefetch::<PREFETCH_HINT>(next.wrapping_add(p * R) as *const i8);
        let xv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(xt.add(p * 16 * V + v * 16)));
        for r in 0..R {
            let b = _mm512_set1_ps(*w.add(r * k + p));
            for v in 0..V {
                acc[r][v] = _mm512_fmadd_ps(b, xv[v], acc[r][v]);
            }
        }
    }
    let mut col = [0f32; 32];
    for r in 0..R {
        for v in 0..V {
            _mm512_storeu_ps(col.as_mut_ptr().add(16 * v), acc[r][v]);
        }
        for (i, &c) in col[..m].iter().enumerate() {
            *out.add(i * n + j + r) = c;
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn run(_: &[f32], _: &[Job], _: usize, _: usize) {
    unreachable!("matmul_wt checks `available()` first")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn columns_avx512(
    x: &[f32],
    w: &[f32],
    out: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    j0: usize,
    j1: usize,
) {
    // Full 4 × 4 tiles with explicit AVX-512 (16 accumulators in registers); the
    // edges go through the generic path.
    let (jf, mf) = (j0 + (j1 - j0) / 4 * 4, m / 4 * 4);
    let kv = k / 16 * 16;
    let mut j = j0;
    while j < jf {
        let mut i = 0;
        while i < mf {
            let acc = tile4x4_avx512(x.as_ptr().add(i * k), w.as_ptr().add(j * k), k, kv);
            for (r, row) in acc.iter().enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    let mut s = v;
                    for q in kv..k {
                        s = w[(j + r) * k + q].mul_add(x[(i + c) * k + q], s);
                    }
                    *out.add((i + c) * n + j + r) = s;
                }
            }
            i += 4;
        }
        j += 4;
    }
    // Remaining rows of x for the full column tiles, then the remaining columns.
    if mf < m {
        columns_rows::<16>(x, w, out, m, n, k, j0, jf, mf);
    }
    columns::<16, 4>(x, w, out, m, n, k, jf, j1)
}

/// Rows `i0..m` of x against columns `j0..j1`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn columns_rows<const L: usize>(
    x: &[f32],
    w: &[f32],
    out: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    j0: usize,
    j1: usize,
    i0: usize,
) {
    for j in j0..j1 {
        for i in i0..m {
            *out.add(i * n + j) = tile1::<L>(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
        }
    }
}

/// 4 rows of W (at `w`, stride k) against 4 rows of x (at `x`), over `kv` (a multiple
/// of 16) elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn tile4x4_avx512(x: *const f32, w: *const f32, k: usize, kv: usize) -> [[f32; 4]; 4] {
    use std::arch::x86_64::*;
    let z = _mm512_setzero_ps();
    let mut a = [[z; 4]; 4];
    // The next 4 rows of `W` (the next column tile), as in `broadcast_tile`.
    let next = w.wrapping_add(4 * k);
    let mut p = 0;
    while p < kv {
        for r in 0..4 {
            _mm_prefetch::<PREFETCH_HINT>(next.wrapping_add(r * k + p) as *const i8);
        }
        let w0 = _mm512_loadu_ps(w.add(p));
        let w1 = _mm512_loadu_ps(w.add(k + p));
        let w2 = _mm512_loadu_ps(w.add(2 * k + p));
        let w3 = _mm512_loadu_ps(w.add(3 * k + p));
        for c in 0..4 {
            let xv = _mm512_loadu_ps(x.add(c * k + p));
            a[0][c] = _mm512_fmadd_ps(w0, xv, a[0][c]);
            a[1][c] = _mm512_fmadd_ps(w1, xv, a[1][c]);
            a[2][c] = _mm512_fmadd_ps(w2, xv, a[2][c]);
            a[3][c] = _mm512_fmadd_ps(w3, xv, a[3][c]);
        }
        p += 16;
    }
    let mut out = [[0f32; 4]; 4];
    for r in 0..4 {
        for c in 0..4 {
            out[r][c] = _mm512_reduce_add_ps(a[r][c]);
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn columns_avx2(
    x: &[f32],
    w: &[f32],
    out: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    j0: usize,
    j1: usize,
) {
    // Tiles of 4 `W` rows × 2 `x` rows: 4 × 4 tiles need 16 accumulators, all of AVX2's
    // 16 registers, and spilled (4 rows ran 5× slower than 3, and 2× slower than GEMM).
    columns::<8, 2>(x, w, out, m, n, k, j0, j1)
}

/// Output columns `j0..j1` for all `m` rows, in tiles of 4 `W` rows × `C` `x` rows
/// (`C` ≤ 4); `L` is the SIMD width the accumulators are shaped for.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn columns<const L: usize, const C: usize>(
    x: &[f32],
    w: &[f32],
    out: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    j0: usize,
    j1: usize,
) {
    let mut j = j0;
    while j < j1 {
        let r = (j1 - j).min(4);
        let mut i = 0;
        while i < m {
            let c = (m - i).min(C);
            let mut acc = [[0f32; 4]; 4];
            match (r, c) {
                (4, c) if c == C => tile::<L, 4, C>(x, w, k, i, j, &mut acc),
                _ => {
                    for rr in 0..r {
                        for cc in 0..c {
                            acc[rr][cc] =
                                tile1::<L>(&x[(i + cc) * k..][..k], &w[(j + rr) * k..][..k]);
                        }
                    }
                }
            }
            for rr in 0..r {
                for cc in 0..c {
                    *out.add((i + cc) * n + j + rr) = acc[rr][cc];
                }
            }
            i += c;
        }
        j += r;
    }
}

/// A 4 × 4 tile: `R` rows of `W` against `C` rows of `x`, `L`-lane accumulators.
#[inline(always)]
fn tile<const L: usize, const R: usize, const C: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    i: usize,
    j: usize,
    out: &mut [[f32; 4]; 4],
) {
    let xr: [&[f32]; C] = std::array::from_fn(|c| &x[(i + c) * k..(i + c + 1) * k]);
    let wr: [&[f32]; R] = std::array::from_fn(|r| &w[(j + r) * k..(j + r + 1) * k]);
    let mut acc = [[[0f32; L]; C]; R];
    let kv = k / L * L;
    let mut p = 0;
    while p < kv {
        let wv: [&[f32; L]; R] = std::array::from_fn(|r| wr[r][p..p + L].try_into().unwrap());
        let xv: [&[f32; L]; C] = std::array::from_fn(|c| xr[c][p..p + L].try_into().unwrap());
        for r in 0..R {
            for c in 0..C {
                for l in 0..L {
                    acc[r][c][l] = wv[r][l].mul_add(xv[c][l], acc[r][c][l]);
                }
            }
        }
        p += L;
    }
    for r in 0..R {
        for c in 0..C {
            let mut s: f32 = acc[r][c].iter().sum();
            for q in kv..k {
                s = wr[r][q].mul_add(xr[c][q], s);
            }
            out[r][c] = s;
        }
    }
}

/// One dot product, for the edges of the tiling.
#[inline(always)]
fn tile1<const L: usize>(x: &[f32], w: &[f32]) -> f32 {
    let mut acc = [0f32; L];
    let kv = x.len() / L * L;
    for (xc, wc) in x[..kv].chunks_exact(L).zip(w[..kv].chunks_exact(L)) {
        for l in 0..L {
            acc[l] = wc[l].mul_add(xc[l], acc[l]);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for q in kv..x.len() {
        s = w[q].mul_add(x[q], s);
    }
    s
}
