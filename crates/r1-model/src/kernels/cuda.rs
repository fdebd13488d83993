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

// ---- Fused attention (cuda_attention.cu)

/// Tile sizes of `cuda_attention.cu` (its `FA_*` constants): head dims per thread,
/// query rows per block of the forward and dQ kernels, keys per block of the dK/dV one.
const FA_SUB: usize = 32;
const FA_ROWS: usize = 64;
const FA_KEY_ROWS: usize = 64;

/// Whether the fused GPU attention takes these queries `[b, g, m, d]`: an f32 or bf16
/// CUDA tensor with a head dim of 64 or 128, and `R1_CUDA_FLASH_ATTENTION=1` set.
///
/// Opt-in until it has run on a GPU: the kernels were written on a machine without
/// one and are checked there under emulation (`tests/cuda_emulated.rs`);
/// `tests/cuda_kernels.rs` checks them on a GPU against the CPU kernel, and
/// `r1 bench --what ops --device cuda` times them against the composite.
pub fn attention_supported(q: &Tensor) -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    let on = *ON.get_or_init(|| std::env::var("R1_CUDA_FLASH_ATTENTION").is_ok_and(|v| v == "1"));
    on && supported(q) && matches!(q.dims().last(), Some(64 | 128))
}

/// The mask of a fused attention call on the GPU: the additive mask `[mb, 1, t, s]` in
/// the queries' dtype, each of its rows' visible end (`[mb · t]`, u32), and `mb`.
pub struct AttentionMask<'a> {
    pub mask: &'a Tensor,
    pub ends: &'a Tensor,
    pub mb: usize,
}

/// Shapes of one call: `(b, g, m, s, d)` and the positions per query head `t`.
#[derive(Debug, Clone, Copy)]
pub struct AttentionDims {
    pub b: usize,
    pub g: usize,
    pub m: usize,
    pub s: usize,
    pub d: usize,
    pub t: usize,
}

impl AttentionDims {
    fn name(&self, kernel: &str) -> String {
        format!("{kernel}_d{}", self.d)
    }

    fn threads(&self) -> u32 {
        ((self.d / FA_SUB) * FA_ROWS) as u32
    }

    /// Blocks over query rows (forward, dQ).
    fn rows_cfg(&self) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (self.m.div_ceil(FA_ROWS) as u32, (self.b * self.g) as u32, 1),
            block_dim: (self.threads(), 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Blocks over keys (dK, dV).
    fn keys_cfg(&self) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (
                self.s.div_ceil(FA_KEY_ROWS) as u32,
                (self.b * self.g) as u32,
                1,
            ),
            block_dim: (((self.d / FA_SUB) * FA_KEY_ROWS) as u32, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    fn ints(&self, mb: usize) -> [i32; 5] {
        [self.m, self.s, self.t, self.g, mb].map(|x| x as i32)
    }
}

/// Runs `f` with the mask's and ends' views, `has_mask` and the mask's batch size.
/// Without a mask the kernels read neither: the queries stand in for the mask, and a
/// one-element buffer for the ends.
fn with_mask<T: CudaDType, R>(
    dev: &CudaDevice,
    stand_in: &CudaView<'_, T>,
    mask: Option<&AttentionMask<'_>>,
    f: impl FnOnce(&CudaView<'_, T>, &CudaView<'_, u32>, i32, usize) -> Result<R>,
) -> Result<R> {
    match mask {
        Some(mk) => with_storage(mk.mask, |ms, ml| {
            with_storage(mk.ends, |es, el| {
                f(&view::<T>(ms, ml)?, &view::<u32>(es, el)?, 1, mk.mb)
            })
        }),
        None => {
            let ends = dev.alloc_zeros::<u32>(1)?;
            f(stand_in, &ends.slice(0..1), 0, 1)
        }
    }
}

/// `softmax(scale · q·kᵀ + mask) · v` for contiguous `q` `[b, g, m, d]`, `k`, `v`
/// `[b, g, s, d]`; returns the output and each row's max logit and reciprocal
/// normaliser (`[b·g·m, 2]`, f32) for [`attention_bwd`].
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd(
    q: &CudaStorage,
    ql: &Layout,
    k: &CudaStorage,
    kl: &Layout,
    v: &CudaStorage,
    vl: &Layout,
    mask: Option<&AttentionMask<'_>>,
    dims: AttentionDims,
    scale: f64,
) -> Result<(CudaStorage, Tensor)> {
    #[allow(clippy::too_many_arguments)]
    fn run<T: CudaDType + DeviceRepr>(
        q: &CudaStorage,
        ql: &Layout,
        k: &CudaStorage,
        kl: &Layout,
        v: &CudaStorage,
        vl: &Layout,
        mask: Option<&AttentionMask<'_>>,
        dims: AttentionDims,
        scale: f64,
    ) -> Result<(CudaStorage, Tensor)> {
        let dev = q.device();
        let rows = dims.b * dims.g * dims.m;
        let (qv, kv, vv) = (view::<T>(q, ql)?, view::<T>(k, kl)?, view::<T>(v, vl)?);
        let o = alloc::<T>(dev, rows * dims.d)?;
        let stats = alloc::<f32>(dev, rows * 2)?;
        let scale = scale as f32;
        with_mask(dev, &qv, mask, |mv, ev, has, mb| {
            let [m, s, t, g, mb] = dims.ints(mb);
            launch!(dev, &dims.name("attention_fwd"), q.dtype(), dims.rows_cfg();
                &qv, &kv, &vv, mv, ev, &has, &o, &stats, &m, &s, &t, &g, &mb, &scale);
            Ok(())
        })?;
        let stats = tensor(stats, dev, (rows, 2));
        Ok((CudaStorage::wrap_cuda_slice(o, dev.clone()), stats))
    }
    by_dtype!(q.dtype(), run(q, ql, k, kl, v, vl, mask, dims, scale))
}

/// `(∂q, ∂k, ∂v)` of [`attention_fwd`] from its output `o`, the output's gradient `go`
/// and the forward's `stats`: the dQ kernel (which also writes each row's Σ dO⊙O), then
/// the dK/dV kernel.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    go: &Tensor,
    stats: &Tensor,
    mask: Option<&AttentionMask<'_>>,
    dims: AttentionDims,
    scale: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    #[allow(clippy::too_many_arguments)]
    fn run<T: CudaDType + DeviceRepr>(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        o: &Tensor,
        go: &Tensor,
        stats: &Tensor,
        mask: Option<&AttentionMask<'_>>,
        dims: AttentionDims,
        scale: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let rows = dims.b * dims.g * dims.m;
        let keys = dims.b * dims.g * dims.s * dims.d;
        with_storage(q, |qs, ql| {
            with_storage(k, |ks, kl| {
                with_storage(v, |vs, vl| {
                    with_storage(o, |os, ol| {
                        with_storage(go, |gs, gl| {
                            with_storage(stats, |ss, sl| {
                                let dev = qs.device();
                                let (qv, kv, vv) =
                                    (view::<T>(qs, ql)?, view::<T>(ks, kl)?, view::<T>(vs, vl)?);
                                let (ov, gv) = (view::<T>(os, ol)?, view::<T>(gs, gl)?);
                                let sv = view::<f32>(ss, sl)?;
                                let dq = alloc::<T>(dev, rows * dims.d)?;
                                let (dk, dv) = (alloc::<T>(dev, keys)?, alloc::<T>(dev, keys)?);
                                let dsum = alloc::<f32>(dev, rows)?;
                                let scale = scale as f32;
                                let dtype = q.dtype();
                                with_mask(dev, &qv, mask, |mv, ev, has, mb| {
                                    let [m, s, t, g, mb] = dims.ints(mb);
                                    let dq_name = dims.name("attention_bwd_dq");
                                    launch!(dev, &dq_name, dtype, dims.rows_cfg();
                                        &qv, &kv, &vv, mv, ev, &has, &ov, &gv, &sv, &dq, &dsum,
                                        &m, &s, &t, &g, &mb, &scale);
                                    let dkv_name = dims.name("attention_bwd_dkv");
                                    launch!(dev, &dkv_name, dtype, dims.keys_cfg();
                                        &qv, &kv, &vv, mv, ev, &has, &gv, &sv, &dsum, &dk, &dv,
                                        &m, &s, &t, &g, &mb, &scale);
                                    Ok(())
                                })?;
                                Ok((
                                    tensor(dq, dev, q.shape()),
                                    tensor(dk, dev, k.shape()),
                                    tensor(dv, dev, v.shape()),
                                ))
                            })
                        })
                    })
                })
            })
        })
    }
    by_dtype!(q.dtype(), run(q, k, v, o, go, stats, mask, dims, scale))
}
