//! Building blocks of the decoder. Each op has two implementations chosen by [`Mode`]:
//! candle's fused kernels for sampling (fast, but they record no backward pass) and
//! differentiable composites for training. Keeping both behind one function is what
//! lets the sampler and the trainer share a single model definition.

use candle_core::{Result, Tensor, D};

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
        let y = self.dense(x)?;
        let Some(l) = &self.lora else { return Ok(y) };
        let x = match mode {
            Mode::Train if l.dropout > 0.0 => candle_nn::ops::dropout(x, l.dropout)?,
            _ => x.clone(),
        };
        let dims = x.dims().to_vec();
        let last = *dims.last().expect("linear input has a last dim");
        let rows = x.elem_count() / last;
        let delta = x
            .reshape((rows, last))?
            .matmul(&l.a.t()?)?
            .matmul(&l.b.t()?)?;
        let delta = (delta * l.scale)?.reshape(y.shape())?;
        y + delta
    }

    fn dense(&self, x: &Tensor) -> Result<Tensor> {
        // Flatten to 2-D so one GEMM runs at full batch size.
        let dims = x.dims().to_vec();
        let last = *dims.last().expect("linear input has a last dim");
        let rows = x.elem_count() / last;
        let y = x.reshape((rows, last))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims;
        *out.last_mut().unwrap() = self.weight.dim(0)?;
        y.reshape(out)
    }
}

pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Infer => candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps as f32),
        Mode::Train => {
            // Accumulate in f32 for half types; keep f64 as f64 (gradient checks need it).
            let dtype = x.dtype();
            let x32 = x.to_dtype(crate::logprobs::compute_dtype(dtype))?;
            let ms = x32.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = x32.broadcast_div(&(ms + eps)?.sqrt()?)?;
            normed.to_dtype(dtype)?.broadcast_mul(weight)
        }
    }
}

/// Rotary embedding, rotate-half layout (Hugging Face). `cos`/`sin` are `[b, t, d/2]`
/// so every row of a left-padded batch has its own positions.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Infer => candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin),
        Mode::Train => {
            let (_b, _h, _t, d) = x.dims4()?;
            let half = d / 2;
            let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
            let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
            let x1 = x.narrow(D::Minus1, 0, half)?;
            let x2 = x.narrow(D::Minus1, half, half)?;
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
        }
    }
}

pub fn softmax_last(x: &Tensor, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Infer => candle_nn::ops::softmax_last_dim(&x.contiguous()?),
        Mode::Train => candle_nn::ops::softmax(x, D::Minus1),
    }
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
        let g = self.gate.forward(x, mode)?;
        // candle's unary silu records its backward pass, so one path serves both modes.
        self.down
            .forward(&(g.silu()? * self.up.forward(x, mode)?)?, mode)
    }
}
