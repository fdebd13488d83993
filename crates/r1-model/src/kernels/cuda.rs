//! The GPU side of the fused kernels: `cuda_common.cuh`, `cuda_kernels.cu` and
//! `cuda_attention.cu`, compiled together once per process with NVRTC and launched on
//! candle's stream, so they are ordered with candle's own kernels.
//! Each function here is the CUDA twin of a CPU kernel in this folder, for f32 and bf16
//! tensors; the CustomOps call them from `cuda_fwd` and from their backward passes.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::op::BackpropOp;
use candle_core::{bail, CudaDevice, CudaStorage, DType, Layout, Result, Shape, Storage, Tensor};
use std::sync::{Arc, OnceLock};

const SOURCE: &str = concat!(
    include_str!("cuda_common.cuh"),
    include_str!("cuda_kernels.cu"),
    include_str!("cuda_attention.cu")
);
const MODULE: &str = "r1_fused_kernels";
/// Threads per block of the row kernels (RMSNorm, softmax) and the element-wise ones.
const BLOCK: u32 = 256;
/// Rows each block of RMSNorm's backward pass handles (and sums ∂w over).
const RMS_ROWS_PER_BLOCK: usize = 16;

/// The module's PTX, compiled on first use. A compile error is kept and reported at
/// every use (it would be the same each time).
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        candle_core::cuda_backend::cudarc::nvrtc::compile_ptx(SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| format!("{e:?}"))
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Msg(format!("compiling r1's CUDA kernels with NVRTC: {e}")))
}

/// A loaded kernel and the stream candle runs its own kernels on.
struct Kernel {
    func: CudaFunction,
    stream: Arc<CudaStream>,
}

/// Kernel `name`, its variant for `dtype`.
fn kernel(dev: &CudaDevice, name: &str, dtype: DType) -> Result<Kernel> {
    let suffix = match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        d => bail!("r1's CUDA kernels run on f32 and bf16, not {d:?}"),
    };
    let f = dev.get_or_load_custom_func(&format!("{name}_{suffix}"), MODULE, ptx()?)?;
    Ok(Kernel {
        func: f.into_cuda_function(),
        stream: dev.cuda_stream(),
    })
}

/// `launch!(dev, "name", dtype, config; &arg, ...)` runs kernel `name` with those
/// arguments (references to buffers, views and scalar locals, in the kernel's order).
macro_rules! launch {
    ($dev:expr, $name:expr, $dtype:expr, $cfg:expr; $($arg:expr),* $(,)?) => {{
        let k = kernel($dev, $name, $dtype)?;
        let mut a = k.stream.launch_builder(&k.func);
        $( a.arg($arg); )*
        // SAFETY: the arguments match the kernel's signature in cuda_kernels.cu, and
        // every buffer holds the elements the launch configuration covers.
        unsafe { a.launch($cfg) }.w()?;
    }};
}

fn rows_cfg(rows: usize, shared_mem_bytes: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes,
    }
}

fn elems_cfg(n: usize) -> LaunchConfig {
    rows_cfg(n.div_ceil(BLOCK as usize), 0)
}

/// Whether the GPU kernels take this tensor (a CUDA tensor in f32 or bf16).
pub fn supported(t: &Tensor) -> bool {
    t.device().is_cuda() && matches!(t.dtype(), DType::F32 | DType::BF16)
}

/// The elements of a contiguous storage, as type `T`.
fn view<'a, T: CudaDType>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, T>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(s.as_cuda_slice::<T>()?.slice(a..b)),
        None => bail!("r1 CUDA kernel: input is not contiguous"),
    }
}

fn cuda(s: &Storage) -> Result<&CudaStorage> {
    match s {
        Storage::Cuda(c) => Ok(c),
        _ => bail!("r1 CUDA kernel: tensor is not on the GPU"),
    }
}

/// An output buffer of `n` elements; every kernel writes all of its output.
fn alloc<T: DeviceRepr>(dev: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the kernel the buffer is for writes each of its elements.
    unsafe { dev.alloc::<T>(n) }
}

fn tensor<T: CudaDType>(s: CudaSlice<T>, dev: &CudaDevice, shape: impl Into<Shape>) -> Tensor {
    let st = CudaStorage::wrap_cuda_slice(s, dev.clone());
    Tensor::from_storage(Storage::Cuda(st), shape, BackpropOp::none(), false)
}

/// Runs `$f::<T>(args)` with `T` the Rust type of `$dtype`.
macro_rules! by_dtype {
    ($dtype:expr, $f:ident($($arg:expr),*)) => {
        match $dtype {
            DType::F32 => $f::<f32>($($arg),*),
            DType::BF16 => $f::<half::bf16>($($arg),*),
            d => bail!("r1's CUDA kernels run on f32 and bf16, not {d:?}"),
        }
    };
}

/// Runs `f` on the GPU storage and layout of a contiguous copy of `t`.
fn with_storage<R>(t: &Tensor, f: impl FnOnce(&CudaStorage, &Layout) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    f(cuda(&s)?, l)
}

// ---- RMSNorm

pub fn rms_norm_fwd(
    x: &CudaStorage,
    xl: &Layout,
    w: &CudaStorage,
    wl: &Layout,
    eps: f64,
) -> Result<CudaStorage> {
    fn run<T: CudaDType + DeviceRepr>(
        x: &CudaStorage,
        xl: &Layout,
        w: &CudaStorage,
        wl: &Layout,
        eps: f64,
    ) -> Result<CudaStorage> {
        let dev = x.device();
        let h = wl.shape().elem_count();
        let rows = xl.shape().elem_count() / h;
        let (xv, wv) = (view::<T>(x, xl)?, view::<T>(w, wl)?);
        let y = alloc::<T>(dev, rows * h)?;
        let (h32, eps) = (h as i32, eps as f32);
        launch!(dev, "rms_norm_fwd", x.dtype(), rows_cfg(rows, 0); &xv, &wv, &y, &h32, &eps);
        Ok(CudaStorage::wrap_cuda_slice(y, dev.clone()))
    }
    by_dtype!(x.dtype(), run(x, xl, w, wl, eps))
}

/// `(∂x, ∂w)`; ∂w is summed over rows from per-block partial sums.
pub fn rms_norm_bwd(x: &Tensor, w: &Tensor, g: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    fn run<T: CudaDType + DeviceRepr>(
        x: &Tensor,
        w: &Tensor,
        g: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, Tensor)> {
        let h = w.elem_count();
        let rows = x.elem_count() / h;
        let blocks = rows.div_ceil(RMS_ROWS_PER_BLOCK);
        with_storage(x, |xs, xl| {
            with_storage(w, |ws, wl| {
                with_storage(g, |gs, gl| {
                    let dev = xs.device();
                    let (xv, wv, gv) = (view::<T>(xs, xl)?, view::<T>(ws, wl)?, view::<T>(gs, gl)?);
                    let dx = alloc::<T>(dev, rows * h)?;
                    let dw = alloc::<f32>(dev, blocks * h)?;
                    let (rows32, h32, eps, rpb) =
                        (rows as i32, h as i32, eps as f32, RMS_ROWS_PER_BLOCK as i32);
                    let cfg = rows_cfg(blocks, (h * std::mem::size_of::<f32>()) as u32);
                    launch!(dev, "rms_norm_bwd", x.dtype(), cfg; &xv, &wv, &gv, &dx, &dw, &rows32, &h32, &eps, &rpb);
                    let dw = tensor(dw, dev, (blocks, h)).sum(0)?.to_dtype(w.dtype())?;
                    Ok((tensor(dx, dev, x.shape()), dw.reshape(w.shape())?))
                })
            })
        })
    }
    by_dtype!(x.dtype(), run(x, w, g, eps))
}

// ---- RoPE fused with the head split

/// `x` `[b, t, heads, d]` → `[b, heads, t, d]` rotated; `inverse` runs the backward
/// pass (`[b, heads, t, d]` → `[b, t, heads, d]`, rotating back).
pub fn rope(
    x: &CudaStorage,
    xl: &Layout,
    cos: &Tensor,
    sin: &Tensor,
    (b, t, heads, d): (usize, usize, usize, usize),
    inverse: bool,
) -> Result<CudaStorage> {
    #[allow(clippy::too_many_arguments)]
    fn run<T: CudaDType + DeviceRepr>(
        x: &CudaStorage,
        xl: &Layout,
        cos: &Tensor,
        sin: &Tensor,
        (b, t, heads, d): (usize, usize, usize, usize),
        inverse: bool,
    ) -> Result<CudaStorage> {
        let dev = x.device();
        let xv = view::<T>(x, xl)?;
        with_storage(cos, |cs, cl| {
            with_storage(sin, |ss, sl| {
                let (cv, sv) = (view::<T>(cs, cl)?, view::<T>(ss, sl)?);
                let out = alloc::<T>(dev, b * t * heads * d)?;
                let pairs = (b * t * heads * d / 2) as i64;
                let (t32, h32, d32) = (t as i32, heads as i32, d as i32);
                let (sign, inv) = if inverse { (-1f32, 1i32) } else { (1f32, 0i32) };
                launch!(dev, "rope", x.dtype(), elems_cfg(pairs as usize); &xv, &cv, &sv, &out, &t32, &h32, &d32, &sign, &inv, &pairs);
                Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
            })
        })
    }
    by_dtype!(x.dtype(), run(x, xl, cos, sin, (b, t, heads, d), inverse))
}

/// [`rope`] on a tensor, returning a tensor of `shape`.
pub fn rope_tensor(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    dims: (usize, usize, usize, usize),
    inverse: bool,
    shape: impl Into<Shape>,
) -> Result<Tensor> {
    with_storage(x, |s, l| {
        let out = rope(s, l, cos, sin, dims, inverse)?;
        Ok(Tensor::from_storage(
            Storage::Cuda(out),
            shape,
            BackpropOp::none(),
            false,
        ))
    })
}

// ---- Attention softmax

/// `softmax(scale · x + mask)` of scores `[b, g, m, s]` with a `[mb, 1, t, s]` mask.
pub fn softmax_fwd(
    x: &CudaStorage,
    xl: &Layout,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<CudaStorage> {
    fn run<T: CudaDType + DeviceRepr>(
        x: &CudaStorage,
        xl: &Layout,
        mask: Option<&Tensor>,
        scale: f64,
    ) -> Result<CudaStorage> {
        let dev = x.device();
        let dims = xl.shape().dims();
        let (g, m, s) = (dims[1], dims[2], dims[3]);
        let rows = xl.shape().elem_count() / s;
        let (mb, t) = match mask {
            Some(mk) => (mk.dim(0)?, mk.dim(2)?),
            None => (1, 1),
        };
        let xv = view::<T>(x, xl)?;
        let p = alloc::<T>(dev, rows * s)?;
        let (s32, g32, m32, t32, mb32) = (s as i32, g as i32, m as i32, t as i32, mb as i32);
        let scale = scale as f32;
        // Without a mask the kernel gets the scores as a stand-in pointer it never reads.
        let go = |mv: &CudaView<T>, has: i32| -> Result<()> {
            launch!(dev, "softmax_fwd", x.dtype(), rows_cfg(rows, 0);
                &xv, mv, &has, &p, &s32, &g32, &m32, &t32, &mb32, &scale);
            Ok(())
        };
        match mask {
            Some(mk) => with_storage(mk, |ms, ml| go(&view::<T>(ms, ml)?, 1))?,
            None => go(&xv, 0)?,
        }
        Ok(CudaStorage::wrap_cuda_slice(p, dev.clone()))
    }
    by_dtype!(x.dtype(), run(x, xl, mask, scale))
}

/// `∂x = scale · p ⊙ (∂p − Σ ∂p⊙p)` per row.
pub fn softmax_bwd(p: &Tensor, dp: &Tensor, scale: f64) -> Result<Tensor> {
    fn run<T: CudaDType + DeviceRepr>(p: &Tensor, dp: &Tensor, scale: f64) -> Result<Tensor> {
        let s = p.dim(candle_core::D::Minus1)?;
        let rows = p.elem_count() / s;
        with_storage(p, |ps, pl| {
            with_storage(dp, |ds, dl| {
                let dev = ps.device();
                let (pv, dv) = (view::<T>(ps, pl)?, view::<T>(ds, dl)?);
                let dx = alloc::<T>(dev, rows * s)?;
                let (s32, scale) = (s as i32, scale as f32);
                launch!(dev, "softmax_bwd", p.dtype(), rows_cfg(rows, 0); &pv, &dv, &dx, &s32, &scale);
                Ok(tensor(dx, dev, p.shape()))
            })
        })
    }
    by_dtype!(p.dtype(), run(p, dp, scale))
}

// ---- SwiGLU

pub fn swiglu_fwd(
    g: &CudaStorage,
    gl: &Layout,
    u: &CudaStorage,
    ul: &Layout,
) -> Result<CudaStorage> {
    fn run<T: CudaDType + DeviceRepr>(
        g: &CudaStorage,
        gl: &Layout,
        u: &CudaStorage,
        ul: &Layout,
    ) -> Result<CudaStorage> {
        let dev = g.device();
        let n = gl.shape().elem_count();
        let (gv, uv) = (view::<T>(g, gl)?, view::<T>(u, ul)?);
        let h = alloc::<T>(dev, n)?;
        let n64 = n as i64;
        launch!(dev, "swiglu_fwd", g.dtype(), elems_cfg(n); &gv, &uv, &h, &n64);
        Ok(CudaStorage::wrap_cuda_slice(h, dev.clone()))
    }
    by_dtype!(g.dtype(), run(g, gl, u, ul))
}

/// `(∂g, ∂u)`.
pub fn swiglu_bwd(g: &Tensor, u: &Tensor, dh: &Tensor) -> Result<(Tensor, Tensor)> {
    fn run<T: CudaDType + DeviceRepr>(
        g: &Tensor,
        u: &Tensor,
        dh: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let n = g.elem_count();
        with_storage(g, |gs, gl| {
            with_storage(u, |us, ul| {
                with_storage(dh, |hs, hl| {
                    let dev = gs.device();
                    let (gv, uv, hv) = (view::<T>(gs, gl)?, view::<T>(us, ul)?, view::<T>(hs, hl)?);
                    let (dg, du) = (alloc::<T>(dev, n)?, alloc::<T>(dev, n)?);
                    let n64 = n as i64;
                    launch!(dev, "swiglu_bwd", g.dtype(), elems_cfg(n); &gv, &uv, &hv, &dg, &du, &n64);
                    Ok((tensor(dg, dev, g.shape()), tensor(du, dev, g.shape())))
                })
            })
        })
    }
    by_dtype!(g.dtype(), run(g, u, dh))
}

// ---- AdamW

/// The scalars of one AdamW update (see `r1_train::optim`).
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Gradient-clipping factor.
    pub scale: f32,
    /// Bias corrections `1 − β₁ᵗ`, `1 − β₂ᵗ`.
    pub bc1: f32,
    pub bc2: f32,
}

/// One AdamW update of the parameter in `p` (in place) with gradient `g` and the f32
/// moments `m`, `v` (updated in place; contiguous tensors owned by the optimizer).
pub fn adamw(
    p: &mut CudaStorage,
    pl: &Layout,
    g: &CudaStorage,
    gl: &Layout,
    m: &Tensor,
    v: &Tensor,
    k: &AdamWStep,
) -> Result<()> {
    fn run<T: CudaDType + DeviceRepr>(
        p: &mut CudaStorage,
        pl: &Layout,
        g: &CudaStorage,
        gl: &Layout,
        m: &Tensor,
        v: &Tensor,
        k: &AdamWStep,
    ) -> Result<()> {
        let n = pl.shape().elem_count();
        if gl.shape().elem_count() != n || m.elem_count() != n || v.elem_count() != n {
            bail!("adamw: parameter, gradient and moments differ in size");
        }
        let dev = p.device().clone();
        let dtype = p.dtype();
        let Some((p0, p1)) = pl.contiguous_offsets() else {
            bail!("adamw: parameter is not contiguous");
        };
        let gv = view::<T>(g, gl)?;
        with_storage(m, |ms, ml| {
            with_storage(v, |vs, vl| {
                let (mv, vv) = (view::<f32>(ms, ml)?, view::<f32>(vs, vl)?);
                let mut pv = p.as_cuda_slice_mut::<T>()?.slice_mut(p0..p1);
                let n64 = n as i64;
                launch!(&dev, "adamw", dtype, elems_cfg(n);
                    &mut pv, &gv, &mv, &vv, &n64, &k.lr, &k.beta1, &k.beta2, &k.eps,
                    &k.weight_decay, &k.scale, &k.bc1, &k.bc2);
                Ok(())
            })
        })
    }
    by_dtype!(p.dtype(), run(p, pl, g, gl, m, v, k))
}
