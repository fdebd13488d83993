//! A decoder block trained as one op with a hand-written backward pass.
//!
//! Why: under candle's autograd every intermediate of a block is a graph node whose
//! gradient starts as `zeros_like` and is then added into (a fresh tensor each time),
//! and every weight's gradient goes through the same. Profiles of a GRPO step put that
//! bookkeeping at ~12 % of the training phase (`binary_map`, `memset`), on top of the
//! copies it allocates. Here the forward runs without a graph and saves only what the
//! backward needs; the backward is the block's chain rule written out as 14 GEMMs and
//! the fused kernels' backward passes, each gradient computed once into its own buffer.
//!
//! Only the attention core (rotary embedding, the per-layout gathers and the fused
//! attention) keeps a small local graph from the q/k/v projections to the output
//! projection's input: it differs between the row and packed layouts, its tensors are
//! a fraction of the MLP's, and candle differentiates it correctly already.
//!
//! Forward, per token (`N` tokens, `W·` weights `[out, in]`):
//! `n₁ = rms(x)·w₁`, `q,k,v = n₁·W_qᵀ…`, `a = attn(q,k,v)`, `h = x + a·W_oᵀ`,
//! `n₂ = rms(h)·w₂`, `g = n₂·W_gᵀ`, `u = n₂·W_uᵀ`, `s = silu(g)⊙u`, `y = h + s·W_dᵀ`.
//! Backward from `∂y`: `∂W_d = ∂yᵀ·s`, `∂s = ∂y·W_d`, SwiGLU's backward gives `∂g, ∂u`,
//! `∂W_g = ∂gᵀ·n₂`, `∂n₂ = ∂g·W_g + ∂u·W_u`, `∂h = ∂y + rms_bwd(∂n₂)`, `∂W_o = ∂hᵀ·a`,
//! `∂a = ∂h·W_o`, the local graph gives `∂q, ∂k, ∂v`, and `∂x = ∂h + rms_bwd(∂n₁)` with
//! `∂n₁ = ∂q·W_q + ∂k·W_k + ∂v·W_v`. Biases get the column sums of their outputs'
//! gradients.

use crate::config::ModelConfig;
use crate::kernels;
use crate::layers::{swiglu, Linear, Mode};
use crate::model::{attention_core, AttnInput, Block};
use crate::recompute::{cpu_input, cpu_output, detached, GradSink};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, Var};
use std::sync::Mutex;

/// Whether `block` can train as one fused op on `x`: CPU f32/f64 with the fused
/// kernels on, every weight trainable, no LoRA adapters.
pub(crate) fn fits(block: &Block, x: &Tensor) -> bool {
    kernels::supported(x)
        && block.input_norm.is_variable()
        && block.post_norm.is_variable()
        && block.linears().iter().all(|l| {
            l.lora.is_none()
                && l.weight.is_variable()
                && l.bias.as_ref().is_none_or(|b| b.is_variable())
        })
}

/// Setting `R1_AUTOGRAD_BLOCKS=1` trains blocks through candle's autograd instead, for
/// A/B benchmarks and bisecting (the default of [`crate::Model::set_fused_blocks`]).
pub(crate) fn autograd_forced() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("R1_AUTOGRAD_BLOCKS").is_ok_and(|v| v == "1"))
}

/// Runs `block` on `x` `[b, t, h]` (training, no cache) as one op whose backward pass
/// deposits the weights' gradients in `sink` and returns the input's. Check [`fits`]
/// first.
pub(crate) fn block(
    cfg: &ModelConfig,
    block: &Block,
    x: &Tensor,
    input: &AttnInput,
    sink: &GradSink,
) -> Result<Tensor> {
    let op = FusedBlock::new(cfg, block, input, sink)?;
    // The anchor (a trainable weight) keeps the op in the graph even when `x` is not
    // tracked; its real gradient goes to the sink with the others'.
    let anchor = block.post_norm.clone();
    x.contiguous()?.apply_op2(&anchor, op)
}

/// The block's backward pass straight after its forward one: `∂x` for input `x`
/// `[b, t, h]` given `∂y`, the weights' gradients into `sink`. Activation checkpointing
/// recomputes its blocks this way.
pub(crate) fn recompute_backward(
    cfg: &ModelConfig,
    block: &Block,
    x: &Tensor,
    input: &AttnInput,
    sink: &GradSink,
    dy: &Tensor,
) -> Result<Tensor> {
    FusedBlock::new(cfg, block, input, sink)?.forward_backward(x, dy)
}

struct FusedBlock {
    cfg: ModelConfig,
    /// The block as the graph knows it (its weights' ids key the gradients), and the
    /// same weights detached, which the passes compute with so they record no graph.
    block: Block,
    plain: Block,
    input: AttnInput,
    sink: GradSink,
    saved: Mutex<Option<Saved>>,
}

/// What the backward pass needs from the forward one, all `[N, ·]` (flattened rows).
struct Saved {
    /// The q/k/v projections as leaves of the local attention graph, and its output.
    q: Var,
    k: Var,
    v: Var,
    attn_out: Tensor,
    /// The residual stream between attention and MLP, and the MLP's pre-activations.
    mid: Tensor,
    gate: Tensor,
    up: Tensor,
}

impl FusedBlock {
    fn new(cfg: &ModelConfig, block: &Block, input: &AttnInput, sink: &GradSink) -> Result<Self> {
        Ok(FusedBlock {
            cfg: cfg.clone(),
            block: block.clone(),
            plain: detached(block),
            input: input.detached()?,
            sink: sink.clone(),
            saved: Mutex::new(None),
        })
    }

    fn eps(&self) -> f64 {
        self.cfg.rms_norm_eps
    }

    /// The forward pass on rows `x` `[N, h]` of a `dims` input; saves for the backward.
    fn forward(&self, x: &Tensor, dims: &[usize]) -> Result<Tensor> {
        let (p, train) = (&self.plain, Mode::Train);
        let n1 = kernels::rms_norm::rms_norm(x, &p.input_norm, self.eps())?.reshape(dims)?;
        let [q, k, v] = Linear::forward_many([&p.attn.q, &p.attn.k, &p.attn.v], &n1, train)?;
        let (q, k, v) = (
            Var::from_tensor(&q)?,
            Var::from_tensor(&k)?,
            Var::from_tensor(&v)?,
        );
        drop(n1);
        let attn_out = attention_core(&self.cfg, &q, &k, &v, &self.input, train)?;
        let mid = (x + rows(&p.attn.o.forward(&attn_out.detach(), train)?)?)?;
        let n2 = kernels::rms_norm::rms_norm(&mid, &p.post_norm, self.eps())?;
        let [gate, up] = Linear::forward_many([&p.mlp.gate, &p.mlp.up], &n2, train)?;
        drop(n2);
        let y = (&mid + p.mlp.down.forward(&swiglu(&gate, &up)?, train)?)?;
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some(Saved {
            q,
            k,
            v,
            attn_out,
            mid,
            gate,
            up,
        });
        Ok(y)
    }

    /// `∂x` `[N, h]` for the block's input rows `x` given `∂y` `[N, h]`; the weights'
    /// gradients go to the sink.
    fn backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let Some(s) = self.saved.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            candle_core::bail!("fused block: backward pass before the forward one");
        };
        let (b, p) = (&self.block, &self.plain);
        let eps = self.eps();
        // The normalised inputs are recomputed (one cheap pass each) instead of kept.
        let n2 = kernels::rms_norm::rms_norm(&s.mid, &p.post_norm, eps)?;
        // MLP.
        let act = swiglu(&s.gate, &s.up)?;
        self.weight_grad(&b.mlp.down, dy, &act)?;
        drop(act);
        let d_act = dy.matmul(&p.mlp.down.weight)?;
        let (d_gate, d_up) = kernels::swiglu::cpu_grads(&s.gate, &s.up, &d_act)?;
        drop(d_act);
        self.weight_grad(&b.mlp.gate, &d_gate, &n2)?;
        self.weight_grad(&b.mlp.up, &d_up, &n2)?;
        drop(n2);
        let d_n2 = (d_gate.matmul(&p.mlp.gate.weight)? + d_up.matmul(&p.mlp.up.weight)?)?;
        drop((d_gate, d_up));
        let (d_mid, d_w2) = kernels::rms_norm::cpu_grads(&s.mid, &p.post_norm, &d_n2, eps)?;
        self.sink.add(b.post_norm.id(), d_w2)?;
        let d_mid = (d_mid + dy)?;
        // Attention: the output projection by hand, the core through its local graph.
        let a = rows(&s.attn_out)?;
        self.weight_grad(&b.attn.o, &d_mid, &a)?;
        let d_a = d_mid
            .matmul(&p.attn.o.weight)?
            .reshape(s.attn_out.shape())?;
        let g = s.attn_out.mul(&d_a)?.sum_all()?.backward()?;
        // Every projection feeds the attention core, so each has a gradient.
        let flat = |v: &Var| -> Result<Tensor> {
            match g.get(v.as_tensor()) {
                Some(t) => rows(t),
                None => candle_core::bail!("fused block: a q/k/v projection got no gradient"),
            }
        };
        let (dq, dk, dv) = (flat(&s.q)?, flat(&s.k)?, flat(&s.v)?);
        drop(g);
        let n1 = kernels::rms_norm::rms_norm(x, &p.input_norm, eps)?;
        self.weight_grad(&b.attn.q, &dq, &n1)?;
        self.weight_grad(&b.attn.k, &dk, &n1)?;
        self.weight_grad(&b.attn.v, &dv, &n1)?;
        drop(n1);
        let d_n1 = ((dq.matmul(&p.attn.q.weight)? + dk.matmul(&p.attn.k.weight)?)?
            + dv.matmul(&p.attn.v.weight)?)?;
        let (dx, d_w1) = kernels::rms_norm::cpu_grads(x, &p.input_norm, &d_n1, eps)?;
        self.sink.add(b.input_norm.id(), d_w1)?;
        dx + d_mid
    }

    /// Forward then backward on `x` `[b, t, h]`: `∂x` given `∂y`.
    fn forward_backward(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let x_rows = rows(&x.contiguous()?)?;
        self.forward(&x_rows, x.dims())?;
        let dx = self.backward(&x_rows, &rows(&dy.contiguous()?)?)?;
        dx.reshape(x.shape())
    }

    /// `∂W = ∂outᵀ·in` (and the bias's column sums) into the sink.
    fn weight_grad(&self, l: &Linear, d_out: &Tensor, input: &Tensor) -> Result<()> {
        self.sink.add(l.weight.id(), d_out.t()?.matmul(input)?)?;
        if let Some(bias) = &l.bias {
            self.sink.add(bias.id(), d_out.sum(0)?)?;
        }
        Ok(())
    }
}

/// `t` `[.., h]` as rows `[N, h]`, detached.
fn rows(t: &Tensor) -> Result<Tensor> {
    let h = t.dim(candle_core::D::Minus1)?;
    t.detach().reshape((t.elem_count() / h, h))
}

impl CustomOp2 for FusedBlock {
    fn name(&self) -> &'static str {
        "r1-fused-decoder-block"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = rows(&cpu_input(s, l, "fused block")?)?;
        let y = self.forward(&x, l.dims())?;
        cpu_output(&y.reshape(l.shape())?, "fused block")
    }

    fn bwd(
        &self,
        x: &Tensor,
        _anchor: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (x_rows, dy_rows) = (rows(x)?, rows(&dy.contiguous()?)?);
        let dx = self.backward(&x_rows, &dy_rows)?;
        Ok((Some(dx.reshape(x.shape())?), None))
    }
}
