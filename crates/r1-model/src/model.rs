//! The decoder-only transformer of the Llama family (Llama 2/3, SmolLM/SmolLM2, Mistral,
//! Qwen2). One forward pass serves sampling (with a [`KvCache`], fused kernels) and
//! training (autodiff through every op); it returns final hidden states, not logits, so
//! callers choose how to project to the vocabulary (chunked, see `logprobs`).

use crate::cache::KvCache;
use crate::config::ModelConfig;
use crate::kernels;
use crate::kernels::attention::Mask;
use crate::layers::{attention_probs, rms_norm, rope_heads, Linear, Mlp, Mode};
use crate::recompute::GradSink;
pub use crate::shared_prefix::SharedPrefix;
use candle_core::{DType, Device, Result, Tensor, D};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
}

#[derive(Debug, Clone)]
pub struct Block {
    pub input_norm: Tensor,
    pub attn: Attention,
    pub post_norm: Tensor,
    pub mlp: Mlp,
}

impl Block {
    /// The block's projections in forward order (q, k, v, o, gate, up, down).
    pub fn linears(&self) -> [&Linear; 7] {
        let (a, m) = (&self.attn, &self.mlp);
        [&a.q, &a.k, &a.v, &a.o, &m.gate, &m.up, &m.down]
    }
}

/// Weights by their Hugging Face names; what loaders produce and savers consume.
pub type NamedTensors = HashMap<String, Tensor>;

#[derive(Debug, Clone)]
pub struct Model {
    pub cfg: ModelConfig,
    pub embed: Tensor,
    pub blocks: Vec<Block>,
    pub norm: Tensor,
    /// `[vocab, hidden]`; the embedding itself when embeddings are tied.
    pub lm_head: Tensor,
    inv_freq: Tensor,
    /// Set when activation checkpointing is on: collects the recomputed blocks' weight
    /// gradients.
    recompute: Option<GradSink>,
    /// Collects the weight gradients of blocks trained as fused ops
    /// ([`crate::block_backward`]). A clone shares it (as it shares the weights), so
    /// two clones' backward passes should not run at the same time.
    block_grads: GradSink,
    /// Whether `Mode::Train` blocks may run as fused ops (see [`Model::set_fused_blocks`]).
    fused_blocks: bool,
}

/// Names of every weight the architecture needs, in a stable order.
pub fn parameter_names(cfg: &ModelConfig) -> Vec<String> {
    let mut names = vec!["model.embed_tokens.weight".to_string()];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        names.push(format!("{p}.input_layernorm.weight"));
        for m in ["q_proj", "k_proj", "v_proj"] {
            names.push(format!("{p}.self_attn.{m}.weight"));
            if cfg.attention_bias {
                names.push(format!("{p}.self_attn.{m}.bias"));
            }
        }
        names.push(format!("{p}.self_attn.o_proj.weight"));
        names.push(format!("{p}.post_attention_layernorm.weight"));
        for m in ["gate_proj", "up_proj", "down_proj"] {
            names.push(format!("{p}.mlp.{m}.weight"));
        }
    }
    names.push("model.norm.weight".to_string());
    if !cfg.tie_word_embeddings {
        names.push("lm_head.weight".to_string());
    }
    names
}

/// The shape each named weight must have.
pub fn parameter_shape(cfg: &ModelConfig, name: &str) -> Vec<usize> {
    let h = cfg.hidden_size;
    let q = cfg.num_attention_heads * cfg.head_dim;
    let kv = cfg.num_key_value_heads * cfg.head_dim;
    let i = cfg.intermediate_size;
    let last = |s: &str| name.ends_with(s);
    if name == "model.embed_tokens.weight" || name == "lm_head.weight" {
        vec![cfg.vocab_size, h]
    } else if last("layernorm.weight") || name == "model.norm.weight" {
        vec![h]
    } else if last("q_proj.weight") {
        vec![q, h]
    } else if last("k_proj.weight") || last("v_proj.weight") {
        vec![kv, h]
    } else if last("q_proj.bias") {
        vec![q]
    } else if last("k_proj.bias") || last("v_proj.bias") {
        vec![kv]
    } else if last("o_proj.weight") {
        vec![h, q]
    } else if last("gate_proj.weight") || last("up_proj.weight") {
        vec![i, h]
    } else if last("down_proj.weight") {
        vec![h, i]
    } else {
        vec![]
    }
}

impl Model {
    /// Assembles the model from named tensors, checking every name and shape.
    pub fn from_tensors(
        cfg: &ModelConfig,
        w: &NamedTensors,
        device: &Device,
    ) -> anyhow::Result<Self> {
        for name in parameter_names(cfg) {
            let t = w
                .get(&name)
                .ok_or_else(|| anyhow::anyhow!("missing weight `{name}`"))?;
            let want = parameter_shape(cfg, &name);
            if t.dims() != want.as_slice() {
                anyhow::bail!(
                    "weight `{name}` has shape {:?}, expected {want:?}",
                    t.dims()
                );
            }
        }
        let get = |n: &str| w[n].clone();
        let lin = |n: &str| Linear {
            weight: get(&format!("{n}.weight")),
            bias: w.get(&format!("{n}.bias")).cloned(),
            lora: None,
        };
        let blocks = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                Block {
                    input_norm: get(&format!("{p}.input_layernorm.weight")),
                    attn: Attention {
                        q: lin(&format!("{p}.self_attn.q_proj")),
                        k: lin(&format!("{p}.self_attn.k_proj")),
                        v: lin(&format!("{p}.self_attn.v_proj")),
                        o: lin(&format!("{p}.self_attn.o_proj")),
                    },
                    post_norm: get(&format!("{p}.post_attention_layernorm.weight")),
                    mlp: Mlp {
                        gate: lin(&format!("{p}.mlp.gate_proj")),
                        up: lin(&format!("{p}.mlp.up_proj")),
                        down: lin(&format!("{p}.mlp.down_proj")),
                    },
                }
            })
            .collect();
        let embed = get("model.embed_tokens.weight");
        let lm_head = if cfg.tie_word_embeddings {
            embed.clone()
        } else {
            get("lm_head.weight")
        };
        let inv_freq = Tensor::new(cfg.rope_inv_freq(), device)?;
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            blocks,
            norm: get("model.norm.weight"),
            lm_head,
            inv_freq,
            recompute: None,
            block_grads: GradSink::default(),
            fused_blocks: !crate::block_backward::autograd_forced(),
        })
    }

    /// The projections LoRA can target, by module path (e.g.
    /// `model.layers.3.self_attn.q_proj`), for the short names in `targets`
    /// (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`).
    pub fn linears_mut(&mut self, targets: &[String]) -> Vec<(String, &mut Linear)> {
        let mut out = vec![];
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            let mods: [(&str, &str, &mut Linear); 7] = [
                ("self_attn", "q_proj", &mut b.attn.q),
                ("self_attn", "k_proj", &mut b.attn.k),
                ("self_attn", "v_proj", &mut b.attn.v),
                ("self_attn", "o_proj", &mut b.attn.o),
                ("mlp", "gate_proj", &mut b.mlp.gate),
                ("mlp", "up_proj", &mut b.mlp.up),
                ("mlp", "down_proj", &mut b.mlp.down),
            ];
            for (group, name, lin) in mods {
                if targets.iter().any(|t| t == name) {
                    out.push((format!("{p}.{group}.{name}"), lin));
                }
            }
        }
        out
    }

    /// Seeds the LoRA adapters' dropout masks for the next forward pass (and its
    /// recomputation under activation checkpointing). Trainers call it once per
    /// micro-batch.
    pub fn set_dropout_seed(&self, seed: u64) {
        for l in self.linears().filter_map(|lin| lin.lora.as_ref()) {
            l.seed
                .shared
                .store(seed, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Every block's projections, in forward order (q, k, v, o, gate, up, down).
    pub fn linears(&self) -> impl Iterator<Item = &Linear> {
        self.blocks.iter().flat_map(Block::linears)
    }

    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    /// Final hidden states `[b, t, hidden]` for token ids `[b, t]` at `positions` `[b, t]`
    /// (u32; rows of a left-padded batch start later). `mask` is additive, broadcastable
    /// to `[b, 1, t, keys]`; with a cache, keys are all cached positions plus the new ones.
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        let (cos, sin) = self.rope_tables(positions)?;
        // Wrapped once here, so every layer shares one scan of the mask's visible ends.
        let mask = match mask {
            Some(m) => Some(Mask::new(m.to_dtype(self.dtype())?)),
            None => None,
        };
        self.run_blocks(ids, &AttnInput::Rows { cos, sin, mask }, cache, mode)
    }

    /// Final hidden states `[1, tokens, hidden]` of a packed pass where completions share
    /// their prompts (see [`SharedPrefix`]); `ids` `[1, tokens]` in the same layout.
    pub fn forward_shared_prefix(
        &self,
        ids: &Tensor,
        layout: &SharedPrefix,
        mode: Mode,
    ) -> Result<Tensor> {
        let (_, n) = ids.dims2()?;
        if n != layout.tokens() {
            candle_core::bail!(
                "shared prefix: {n} ids for a layout of {} tokens",
                layout.tokens()
            );
        }
        let input = AttnInput::Shared(layout.prepared(self.dtype())?);
        self.run_blocks(ids, &input, None, mode)
    }

    /// The layout of a packed pass: prompts of `prompt_lens` and completions of
    /// `completion_lens`, completion `r` following prompt `group[r]`.
    pub fn shared_prefix(
        &self,
        prompt_lens: &[usize],
        group: &[usize],
        completion_lens: &[usize],
    ) -> Result<SharedPrefix> {
        SharedPrefix::new(
            prompt_lens,
            group,
            completion_lens,
            |p| self.rope_tables(p),
            self.device(),
        )
    }

    /// RoPE angles per row and position, `[b, t, d/2]` cos and sin in the model's dtype.
    fn rope_tables(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let pos = positions.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
        let freqs = pos.broadcast_mul(&self.inv_freq.reshape((1, 1, ()))?)?;
        Ok((
            freqs.cos()?.to_dtype(self.dtype())?,
            freqs.sin()?.to_dtype(self.dtype())?,
        ))
    }

    fn run_blocks(
        &self,
        ids: &Tensor,
        input: &AttnInput,
        mut cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let mut x = self
            .embed
            .embedding(&ids.flatten_all()?)?
            .reshape((b, t, ()))?;
        for (i, block) in self.blocks.iter().enumerate() {
            x = match (&self.recompute, mode, cache.is_none()) {
                // Activation checkpointing: keep only the block's input; recompute the
                // block during the backward pass.
                (Some(sink), Mode::Train, true) => {
                    let fused = self.fused_blocks;
                    crate::recompute::checkpointed_block(
                        &self.cfg, i, block, &x, input, sink, fused,
                    )?
                }
                // Training on the CPU: the block as one op with a hand-written backward.
                (None, Mode::Train, true)
                    if self.fused_blocks && crate::block_backward::fits(block, &x) =>
                {
                    crate::block_backward::block(&self.cfg, block, &x, input, &self.block_grads)?
                }
                _ => block_forward(&self.cfg, i, block, &x, input, cache.as_deref_mut(), mode)?,
            };
        }
        if let Some(c) = cache {
            c.advance(t);
        }
        rms_norm(&x, &self.norm, self.cfg.rms_norm_eps, mode)
    }

    /// With `on` (the default unless `R1_AUTOGRAD_BLOCKS=1`), training forwards on the
    /// CPU run each decoder block as one op with a hand-written backward pass
    /// ([`crate::block_backward`]); off, candle's autograd differentiates every op.
    /// Both give the same gradients; the fused blocks are faster and keep less memory.
    pub fn set_fused_blocks(&mut self, on: bool) {
        self.fused_blocks = on;
    }

    /// Turns on activation checkpointing for `Mode::Train` forwards; use
    /// [`Model::backward`] so the recomputed blocks' weight gradients are collected.
    pub fn enable_checkpointing(&mut self) {
        self.recompute = Some(GradSink::default());
    }

    /// `loss.backward()`, plus the weight gradients of blocks that trained as fused ops
    /// (CPU) or were checkpointed. Call this rather than `loss.backward()` directly.
    pub fn backward(&self, loss: &Tensor) -> Result<candle_core::backprop::GradStore> {
        let mut store = loss.backward()?;
        self.block_grads.drain_into(&mut store)?;
        if let Some(sink) = &self.recompute {
            sink.drain_into(&mut store)?;
        }
        Ok(store)
    }
}

/// What attention needs besides the weights: the rotary tables and masks for how the
/// tokens of `x` are laid out.
#[derive(Debug, Clone)]
pub(crate) enum AttnInput {
    /// `x` `[b, t, h]`: each row attends within itself; `mask` broadcasts to
    /// `[b, 1, t, keys]` (keys: cached positions plus the new ones).
    Rows {
        cos: Tensor,
        sin: Tensor,
        mask: Option<Mask>,
    },
    /// `x` `[1, tokens, h]`: prompts and the completions that share them, packed.
    Shared(SharedPrefix),
}

impl AttnInput {
    /// The same input with no ties to a graph (kept by checkpointed blocks).
    pub(crate) fn detached(&self) -> Result<Self> {
        Ok(match self {
            AttnInput::Rows { cos, sin, mask } => AttnInput::Rows {
                cos: cos.detach(),
                sin: sin.detach(),
                mask: mask.as_ref().map(Mask::detach),
            },
            AttnInput::Shared(sp) => AttnInput::Shared(sp.clone()),
        })
    }
}

/// One decoder block: pre-norm attention and pre-norm SwiGLU, both residual.
pub(crate) fn block_forward(
    cfg: &ModelConfig,
    layer: usize,
    block: &Block,
    x: &Tensor,
    input: &AttnInput,
    cache: Option<&mut KvCache>,
    mode: Mode,
) -> Result<Tensor> {
    let h = rms_norm(x, &block.input_norm, cfg.rms_norm_eps, mode)?;
    let a = match input {
        AttnInput::Rows { cos, sin, mask } => attention(
            cfg,
            layer,
            &block.attn,
            &h,
            cos,
            sin,
            mask.as_ref(),
            cache,
            mode,
        )?,
        AttnInput::Shared(sp) => crate::shared_prefix::attention(cfg, &block.attn, &h, sp, mode)?,
    };
    let x = (x + a)?;
    let h = rms_norm(&x, &block.post_norm, cfg.rms_norm_eps, mode)?;
    &x + block.mlp.forward(&h, mode)?
}

#[allow(clippy::too_many_arguments)]
fn attention(
    cfg: &ModelConfig,
    layer: usize,
    attn: &Attention,
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    mask: Option<&Mask>,
    cache: Option<&mut KvCache>,
    mode: Mode,
) -> Result<Tensor> {
    let (b, t, _) = x.dims3()?;
    let (nh, hd) = (cfg.num_attention_heads, cfg.head_dim);
    let [q, k, v] = Linear::forward_many([&attn.q, &attn.k, &attn.v], x, mode)?;
    let (q, k, v) = heads(cfg, &q, &k, &v, cos, sin, mode)?;
    let (k, v) = match cache {
        Some(c) => c.append(layer, &k, &v)?,
        None => (k, v.contiguous()?),
    };
    // Decoding: a few queries against the cache, computed directly (no tiny GEMMs).
    if mode == Mode::Infer && t <= kernels::attention_decode::MAX_QUERIES && kernels::supported(&q)
    {
        let scale = 1.0 / (hd as f64).sqrt();
        let out = kernels::attention_decode::attention(&q, &k, &v, mask.map(Mask::tensor), scale)?;
        return attn
            .o
            .forward(&out.transpose(1, 2)?.reshape((b, t, nh * hd))?, mode);
    }
    attn.o.forward(&attend(cfg, &q, &k, &v, mask, mode)?, mode)
}

/// Projections `[b, t, heads·d]` split into heads `[b, heads, t, d]`, queries and keys
/// rotated (`v` is a view, not yet contiguous).
fn heads(
    cfg: &ModelConfig,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    mode: Mode,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, t, _) = v.dims3()?;
    let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    Ok((
        rope_heads(q, nh, cos, sin, mode)?,
        rope_heads(k, nkv, cos, sin, mode)?,
        v.reshape((b, t, nkv, cfg.head_dim))?.transpose(1, 2)?,
    ))
}

/// Attention from the q/k/v projections `[b, t, ·]` to the input of the output
/// projection `[b, t, heads·d]`, for either layout and without a cache.
pub(crate) fn attention_core(
    cfg: &ModelConfig,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    input: &AttnInput,
    mode: Mode,
) -> Result<Tensor> {
    match input {
        AttnInput::Rows { cos, sin, mask } => {
            let (q, k, v) = heads(cfg, q, k, v, cos, sin, mode)?;
            attend(cfg, &q, &k, &v.contiguous()?, mask.as_ref(), mode)
        }
        AttnInput::Shared(sp) => crate::shared_prefix::attention_core(cfg, q, k, v, sp, mode),
    }
}

/// Scaled dot-product attention of queries `[b, heads, t, d]` over keys and values
/// `[b, kv_heads, s, d]` with an additive mask `[b, 1, t, s]`; returns `[b, t, heads·d]`.
pub(crate) fn attend(
    cfg: &ModelConfig,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Mask>,
    mode: Mode,
) -> Result<Tensor> {
    let (b, nh, t, hd) = q.dims4()?;
    let nkv = cfg.num_key_value_heads;
    let scale = 1.0 / (hd as f64).sqrt();
    // Grouped-query attention without copying K/V: fold the query heads that share a
    // KV head into the row dimension, [b, nkv, rep*t, d].
    let rep = nh / nkv;
    let q = q.contiguous()?.reshape((b, nkv, rep * t, hd))?;
    let out = if kernels::attention::supported(&q) {
        // Fused on the CPU: no score matrix kept, the causal tail skipped.
        kernels::attention::attention(&q, k, v, mask, scale)?
    } else {
        let probs = attention_probs(&q.matmul(&k.t()?)?, mask.map(Mask::tensor), scale, mode)?;
        probs.matmul(v)? // [b, nkv, rep*t, d]
    };
    out.reshape((b, nh, t, hd))?
        .transpose(1, 2)?
        .reshape((b, t, nh * hd))
}

/// Large negative used for masked attention scores: finite so a fully masked row (a
/// padding query) gives a uniform softmax instead of NaN, which would poison gradients.
pub fn mask_value(dtype: DType) -> f32 {
    match dtype {
        DType::F16 => -6.0e4,
        _ => -1.0e9,
    }
}

/// Additive mask `[b, 1, t, past + t]` for `t` new tokens after `past` cached ones, where
/// row `r`'s first `pad[r]` positions are left padding.
pub fn causal_mask(pad: &[usize], past: usize, t: usize, device: &Device) -> Result<Tensor> {
    RowPadding { at: 0, pad }.causal_mask(past, t, device)
}

/// Positions `[b, t]` for tokens `past..past+t` of rows with `pad[r]` left-padding tokens.
pub fn positions(pad: &[usize], past: usize, t: usize, device: &Device) -> Result<Tensor> {
    RowPadding { at: 0, pad }.positions(past, t, device)
}

/// Where each row's padding sits: `pad[r]` masked slots from position `at`. Plain left
/// padding has `at = 0`; prompts that share their first `at` tokens, encoded once (the
/// sampler does), are padded after them, before each row's own tokens.
#[derive(Debug, Clone, Copy)]
pub struct RowPadding<'a> {
    pub at: usize,
    pub pad: &'a [usize],
}

impl RowPadding<'_> {
    /// Additive mask `[b, 1, t, past + t]` for `t` new tokens after `past` cached ones:
    /// causal, with each row's padding hidden.
    pub fn causal_mask(&self, past: usize, t: usize, device: &Device) -> Result<Tensor> {
        let s = past + t;
        let neg = mask_value(DType::F32);
        let mut m = vec![0f32; self.pad.len() * t * s];
        for (r, &p) in self.pad.iter().enumerate() {
            for i in 0..t {
                let qpos = past + i;
                let row = &mut m[(r * t + i) * s..(r * t + i + 1) * s];
                for (j, v) in row.iter_mut().enumerate() {
                    if j > qpos || (j >= self.at && j < self.at + p) {
                        *v = neg;
                    }
                }
            }
        }
        Tensor::from_vec(m, (self.pad.len(), 1, t, s), device)
    }

    /// Positions `[b, t]` for tokens `past..past+t`: tokens before the padding keep
    /// their index, a row's own tokens continue right after them, and padding slots
    /// (masked) take the first own token's.
    pub fn positions(&self, past: usize, t: usize, device: &Device) -> Result<Tensor> {
        let mut p = Vec::with_capacity(self.pad.len() * t);
        for &pr in self.pad {
            for i in past..past + t {
                let pos = if i < self.at {
                    i
                } else {
                    self.at + (i - self.at).saturating_sub(pr)
                };
                p.push(pos as u32);
            }
        }
        Tensor::from_vec(p, (self.pad.len(), t), device)
    }
}
