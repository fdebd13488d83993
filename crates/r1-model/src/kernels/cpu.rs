//! Shared plumbing of the CPU kernels: the float trait they are generic over, and
//! access to a tensor's contiguous data.

use candle_core::{bail, CpuStorage, Layout, Result, Storage, Tensor, WithDType};
use rayon::prelude::*;

/// The element types the fused kernels run on. f64 exists so gradient checks by
/// finite differences are meaningful.
pub trait Real:
    WithDType
    + num_traits::Float
    + std::ops::AddAssign
    + std::ops::MulAssign
    + std::iter::Sum
    + super::exp::FastExp
    + Send
    + Sync
{
    /// The slice as f32, for kernels with a hand-written f32 path.
    fn as_f32(x: &[Self]) -> Option<&[f32]> {
        let _ = x;
        None
    }
}
impl Real for f32 {
    fn as_f32(x: &[Self]) -> Option<&[f32]> {
        Some(x)
    }
}
impl Real for f64 {}

/// Whether this CPU has AVX-512 (F and VL), for kernels written in its intrinsics.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The data of a contiguous CPU tensor.
pub fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let all = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => bail!("fused kernel: input is not contiguous"),
    }
}

/// Runs `f` on the data of `t`, copied to contiguous form first if it is strided.
pub fn with_data<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(slice(c, l)?),
        _ => bail!("fused kernel: tensor is not on the CPU"),
    }
}

/// Rows per parallel task: enough tasks to balance the threads, few enough that
/// per-task overhead (and per-task partial sums) stays small.
pub fn rows_per_task(rows: usize) -> usize {
    (rows / (4 * rayon::current_num_threads())).max(1)
}

/// Element-wise work is split in pieces of this many elements.
pub const ELEMS_PER_TASK: usize = 16 * 1024;

/// The output buffer of a kernel, zero-filled. (Skipping the fill with an
/// uninitialised buffer saved no measurable time per training step, and reading
/// uninitialised floats would be undefined behaviour should a kernel miss one.)
pub fn output_vec<T: Real>(n: usize) -> Vec<T> {
    vec![T::zero(); n]
}

/// Runs `f` compiled for AVX-512 (else AVX2 + FMA) when this CPU has it. The kernels'
/// loops are written as plain Rust that the compiler vectorises, and the default
/// x86-64 target only allows SSE2: 4 lanes instead of 16, no FMA. Call it around the
/// body of a parallel task, so the body is inlined into the wide copy.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        static LEVEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
        let level = *LEVEL.get_or_init(|| {
            let fma = is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx2");
            if fma && has_avx512() {
                2
            } else if fma {
                1
            } else {
                0
            }
        });
        // SAFETY: the features were detected on this CPU just above.
        match level {
            2 => return unsafe { avx512(f) },
            1 => return unsafe { avx2(f) },
            _ => {}
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Σ x in 16 independent lanes, so the sum vectorises (a single running sum cannot be
/// reassociated by the compiler).
#[inline(always)]
pub fn lane_sum<T: Real>(x: &[T]) -> T {
    let mut acc = [T::zero(); 16];
    let whole = x.len() / 16 * 16;
    for c in x[..whole].chunks_exact(16) {
        for l in 0..16 {
            acc[l] += c[l];
        }
    }
    x[whole..].iter().fold(tree_sum(acc), |a, &v| a + v)
}

/// The sum of 16 lanes as a tree (8 + 4 + 2 + 1 adds): a left-to-right sum is 15
/// dependent scalar adds, which cost more than the 16-wide loop before it when the
/// vectors are short (a 64-wide attention head).
#[inline(always)]
pub fn tree_sum<T: Real>(a: [T; 16]) -> T {
    let b: [T; 8] = std::array::from_fn(|i| a[i] + a[i + 8]);
    let c: [T; 4] = std::array::from_fn(|i| b[i] + b[i + 4]);
    (c[0] + c[2]) + (c[1] + c[3])
}

/// Σ a·b in 16 independent lanes.
#[inline(always)]
pub fn lane_dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 16];
    let whole = a.len().min(b.len()) / 16 * 16;
    for (x, y) in a[..whole].chunks_exact(16).zip(b[..whole].chunks_exact(16)) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail = a[whole..]
        .iter()
        .zip(&b[whole..])
        .fold(T::zero(), |s, (&x, &y)| s + x * y);
    tree_sum(acc) + tail
}

/// max x in 16 lanes (NaN-ignoring, as `f32::max`).
#[inline(always)]
pub fn lane_max<T: Real>(x: &[T]) -> T {
    let mut acc = [T::neg_infinity(); 16];
    let whole = x.len() / 16 * 16;
    for c in x[..whole].chunks_exact(16) {
        for l in 0..16 {
            acc[l] = num_traits::Float::max(acc[l], c[l]);
        }
    }
    x[whole..]
        .iter()
        .chain(acc.iter())
        .fold(T::neg_infinity(), |a, &v| num_traits::Float::max(a, v))
}

/// Work (elements, or multiply-adds) below which a kernel stays on the calling thread.
/// Handing a job to rayon's pool from outside it wakes a worker and parks the caller,
/// and those futex round trips cost more than a decode step's small ops themselves
/// (12 % of a GRPO generation phase was spent in them).
pub const PARALLEL_MIN_WORK: usize = 1 << 16;

/// `f(i, piece)` for each `chunk`-element piece of `out`: on rayon's pool (tasks of at
/// least `min_len` pieces) when `work` reaches [`PARALLEL_MIN_WORK`], else in order on
/// this thread.
pub fn for_each_chunk<T: Send>(
    out: &mut [T],
    chunk: usize,
    min_len: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if work < PARALLEL_MIN_WORK {
        out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    } else {
        out.par_chunks_mut(chunk)
            .enumerate()
            .with_min_len(min_len)
            .for_each(|(i, c)| f(i, c));
    }
}
