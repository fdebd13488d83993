//! Shared plumbing of the CPU kernels: the float trait they are generic over, and
//! access to a tensor's contiguous data.

use candle_core::{bail, CpuStorage, Layout, Result, Storage, Tensor, WithDType};

/// The element types the fused kernels run on. f64 exists so gradient checks by
/// finite differences are meaningful.
pub trait Real:
    WithDType
    + num_traits::Float
    + std::ops::AddAssign
    + std::ops::MulAssign
    + std::iter::Sum
    + Send
    + Sync
{
}
impl Real for f32 {}
impl Real for f64 {}

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

/// A vector of `n` elements for a kernel that writes every one of them before anything
/// reads it. Skipping the zero fill saves a memset pass over each output, 5 % of a
/// training step in profiles.
pub fn output_vec<T: Real>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: capacity is n; f32 and f64 have no invalid bit patterns, and each caller
    // overwrites every element (each kernel's loop covers its whole output).
    unsafe { v.set_len(n) };
    v
}
