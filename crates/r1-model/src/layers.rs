//! Building blocks of the decoder. On the CPU in f32/f64 the element-wise ops run r1's
//! fused kernels (`kernels`), which carry their own backward passes and so serve
//! sampling and training alike. Elsewhere each op has two implementations chosen by
//! [`Mode`]: candle's fused kernels for sampling (fast, but they record no backward
//! pass) and differentiable composites for training. Keeping them behind one function
//! is what lets the sampler and the trainer share a single model definition.

use crate::kernels;
use candle_core::{DType, Result, Tensor, D};

/// Which kernels to run: candle's fused ops silently drop gradients, so training
/// must use the composite ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Infer,
    Train,
}

/// A low-rank adapter: `Δy = scale · (dropout(x) Aᵀ) Bᵀ` with `A` `[r, in]`, `B` `[out, r]`.
#[derive(Debug, Clone)]
pub struct Lora {
    pub a: Tensor,
    pub b: Tensor,
    /// `alpha / r`.
    pub scale: f64,
    /// Dropout on the adapter's input, training only.
    pub dropout: f32,
    /// Where the dropout mask comes from (see [`DropoutSeed`]).
    pub seed: DropoutSeed,
}

/// Seeds dropout masks so they are reproducible: the trainer sets one seed per
/// micro-batch (from the run's seed, step and micro-batch, so a resumed run draws the
/// same masks) and each adapter mixes in its own index. A checkpointed block that
/// reruns its forward in the backward pass then draws the very mask the loss saw.
/// candle's own dropout draws from an unseeded thread-local RNG.
#[derive(Debug, Clone, Default)]
pub struct DropoutSeed {
    /// Shared by every adapter of a model; set by [`crate::Model::set_dropout_seed`].
    pub shared: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// This adapter's place in the model.
    pub index: u64,
}

impl DropoutSeed {
    fn get(&self) -> u64 {
        let s = self.shared.load(std::sync::atomic::Ordering::Relaxed);
        splitmix64(s ^ self.index.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }
}

/// SplitMix64's output function: a well-mixed 64-bit hash of `z`.
pub fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Inverted dropout with a mask that is a pure function of `seed` and the element's
/// index: each element is kept with probability `1 - p` and scaled by `1 / (1 - p)`.
pub fn seeded_dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    let keep = 1.0 / (1.0 - p);
    // Drop when the hash's top 32 bits fall below p · 2^32.
    let threshold = (p as f64 * 4_294_967_296.0) as u64;
    let mask: Vec<f32> = (0..x.elem_count() as u64)
        .map(|i| {
            let h = splitmix64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32;
            if h < threshold {
                0.0
            } else {
                keep
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), &candle_core::Device::Cpu)?
        .to_device(x.device())?
        .to_dtype(x.dtype())?;
    x * mask
}

/// A dense projection `y = x W^T + b` with `W` stored `[out, in]` as in Hugging Face,
/// plus an optional LoRA adapter.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub lora: Option<Lora>,
}

impl Linear {
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = self.dense(x, mode)?;
        self.add_lora(x, y, mode)
    }

    /// The layers' outputs for one shared input, as `forward` each would give them.
    /// Decoding runs their products in one call of the streaming kernel (one thread
    /// hand-off for a layer's q/k/v instead of three).
    pub fn forward_many<const N: usize>(
        layers: [&Linear; N],
        x: &Tensor,
        mode: Mode,
    ) -> Result<[Tensor; N]> {
        let (flat, dims) = flatten_rows(x)?;
        if !fits_small_kernel(&flat, mode) || layers.iter().any(|l| l.weight.dtype() != DType::F32)
        {
            let mut out = Vec::with_capacity(N);
            for l in layers {
                out.push(l.forward(x, mode)?);
            }
            return Ok(out.try_into().expect("N outputs"));
        }
        let weights: Vec<&Tensor> = layers.iter().map(|l| &l.weight).collect();
        let ys = kernels::matmul_small::matmul_wt_many(&flat, &weights)?;
        let mut out = Vec::with_capacity(N);
        for (l, y) in layers.iter().zip(ys) {
            let y = l.bias_and_shape(y, &dims)?;
            out.push(l.add_lora(x, y, mode)?);
        }
        Ok(out.try_into().expect("N outputs"))
    }

    /// `y` plus the LoRA adapter's term for input `x`, if there is an adapter.
    fn add_lora(&self, x: &Tensor, y: Tensor, mode: Mode) -> Result<Tensor> {
        let Some(l) = &self.lora else { return Ok(y) };
        let x = match mode {
            Mode::Train if l.dropout > 0.0 => seeded_dropout(x, l.dropout, l.seed.get())?,
            _ => x.clone(),
        };
        let delta = flatten_rows(&x)?.0.matmul(&l.a.t()?)?.matmul(&l.b.t()?)?;
        let delta = (delta * l.scale)?.reshape(y.shape())?;
        y + delta
    }

    fn dense(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (flat, dims) = flatten_rows(x)?;
        self.bias_and_shape(project(&flat, &self.weight, mode)?, &dims)
    }

    /// The 2-D product `y` `[rows, out]` plus the bias, shaped like the input `dims`
    /// with its last dimension now `out`.
    fn bias_and_shape(&self, y: Tensor, dims: &[usize]) -> Result<Tensor> {
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims.to_vec();
        *out.last_mut().expect("linear input has a last dim") = self.weight.dim(0)?;
        y.reshape(out)
    }
}

/// `x` flattened to `[rows, last]`, so one product runs at full batch size, with its
/// original dims.
fn flatten_rows(x: &Tensor) -> Result<(Tensor, Vec<usize>)> {
    let dims = x.dims().to_vec();
    let last = *dims.last().expect("linear input has a last dim");
    Ok((x.reshape((x.elem_count() / last, last))?, dims))
}

/// `x · Wᵀ` for `x` `[rows, k]` and `W` `[n, k]`. Sampling's few-row products (decode
/// steps) run r1's streaming kernel, which beats GEMM's packing up to
/// `kernels::matmul_small::max_rows()` rows; everything else, and anything needing a gradient, runs GEMM.
pub fn project(x: &Tensor, w: &Tensor, mode: Mode) -> Result<Tensor> {
    if fits_small_kernel(x, mode) && w.dtype() == DType::F32 {
        return kernels::matmul_small::matmul_wt(x, w);
    }
    gemm_operand(x)?.matmul(&w.t()?)
}

/// `x` as a left matmul operand. candle's GPU matmul takes only rows that are adjacent
/// in memory, so a view that skips (each sequence's last position, say) is copied
/// first; the CPU GEMM reads any strides and gets `x` itself.
pub fn gemm_operand(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        Ok(x.clone())
    } else {
        x.contiguous()
    }
}

/// Whether [`project`] runs `x` `[rows, k]` (f32 weights assumed) on the streaming kernel.
fn fits_small_kernel(x: &Tensor, mode: Mode) -> bool {
    mode == Mode::Infer
        && x.dim(0)
            .is_ok_and(|rows| rows <= kernels::matmul_small::max_rows())
        && x.dtype() == DType::F32
        && x.device().is_cpu()
        && kernels::matmul_small::available()
        && kernels::supported(x)
}

/// RMSNorm over the last dimension. f32/f64 on the CPU and f32/bf16 on a GPU run the
/// fused kernel (with its own backward pass) in both modes; other dtypes sample with
/// candle's fused op and train with the differentiable composite.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, mode: Mode) -> Result<Tensor> {
    if kernels::fused_supported(x) {
        return kernels::rms_norm::rms_norm(x, weight, eps);
    }
    match mode {
        Mode::Infer => candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps as f32),
        Mode::Train => rms_norm_composite(x, weight, eps),
    }
}

/// RMSNorm from differentiable candle ops, as Hugging Face computes it.
pub fn rms_norm_composite(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    // Accumulate in f32 for half types; keep f64 as f64 (gradient checks need it).
    let dtype = x.dtype();
    let x32 = x.to_dtype(crate::logprobs::compute_dtype(dtype))?;
    let ms = x32.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = x32.broadcast_div(&(ms + eps)?.sqrt()?)?;
    normed.to_dtype(dtype)?.broadcast_mul(weight)
}

/// Splits a projection `[b, t, heads·d]` into heads `[b, heads, t, d]` and applies the
/// rotary embedding (rotate-half layout, as Hugging Face). `cos`/`sin` are `[b, t, d/2]`
/// so every row of a left-padded batch has its own positions.
pub fn rope_heads(
    x: &Tensor,
    heads: usize,
    cos: &Tensor,
    sin: &Tensor,
    mode: Mode,
) -> Result<Tensor> {
    if kernels::fused_supported(x) {
        return kernels::rope::rope_split_heads(x, cos, sin, heads);
    }
    let (b, t, _) = x.dims3()?;
    let x = x.reshape((b, t, heads, ()))?.transpose(1, 2)?;
    match mode {
        Mode::Infer => candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin),
        Mode::Train => rope_composite(&x, cos, sin),
    }
}

/// Rotary embedding of `x` `[b, h, t, d]` from differentiable candle ops.
pub fn rope_composite(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (_b, _h, _t, d) = x.dims4()?;
    let half = d / 2;
    let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
    let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
}

/// Attention probabilities `softmax(scale · scores + mask)` for scores `[b, g, m, s]`
/// (`m` stacks the query heads sharing a KV head over `t` positions) and an additive
/// mask `[b, 1, t, s]`.
pub fn attention_probs(
    scores: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    mode: Mode,
) -> Result<Tensor> {
    if kernels::fused_supported(scores) {
        return kernels::softmax::scaled_masked_softmax(scores, mask, scale);
    }
    match mode {
        Mode::Infer => {
            let scores = attention_logits_composite(scores, mask, scale)?;
            candle_nn::ops::softmax_last_dim(&scores.contiguous()?)
        }
        Mode::Train => attention_probs_composite(scores, mask, scale),
    }
}

/// [`attention_probs`] from differentiable candle ops.
pub fn attention_probs_composite(
    scores: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    candle_nn::ops::softmax(&attention_logits_composite(scores, mask, scale)?, D::Minus1)
}

/// `scale · scores + mask` from candle ops, the mask broadcast over the stacked heads.
pub fn attention_logits_composite(
    scores: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let (b, g, m, s) = scores.dims4()?;
    let scores = (scores * scale)?;
    match mask {
        Some(mk) => {
            let t = mk.dim(2)?;
            scores
                .reshape((b, g, m / t, t, s))?
                .broadcast_add(&mk.unsqueeze(1)?)?
                .reshape((b, g, m, s))
        }
        None => Ok(scores),
    }
}

/// `silu(gate) ⊙ up`, fused on the CPU and on a GPU.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if kernels::fused_supported(gate) {
        return kernels::swiglu::swiglu(gate, up);
    }
    // candle's unary silu records its backward pass, so one path serves both modes.
    gate.silu()? * up
}

/// SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

impl Mlp {
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let [g, u] = Linear::forward_many([&self.gate, &self.up], x, mode)?;
        self.down.forward(&swiglu(&g, &u)?, mode)
    }
}
