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

/// The output buffer of a kernel, zero-filled. (Skipping the fill with an
/// uninitialised buffer saved no measurable time per training step, and reading
/// uninitialised floats would be undefined behaviour should a kernel miss one.)
pub fn output_vec<T: Real>(n: usize) -> Vec<T> {
    vec![T::zero(); n]
}
