//! A forward pass where several completions share one prompt, as a GRPO group's G
//! samples do: each distinct prompt is encoded once, and its keys and values are what
//! the completions that follow it attend to. Scoring 8 prompts × 4 samples this way
//! runs the prompt tokens 8 times instead of 32 — for ~95-token prompts and ~80-token
//! completions, 40 % fewer tokens through every projection, forward and backward.
//!
//! Layout: the tokens of a pass are packed into one row, `x` `[1, tokens, h]`, with no
//! padding: first the `np` distinct prompts, then the `nc` completions, each at its own
//! length. Token-wise ops (norms, projections, the MLP, the lm_head) run on the real
//! tokens only. Attention gathers them into padded `[np, lp]` and `[nc, lc]` blocks (a
//! few copies, cheap beside the projections) and scatters its output back. A prompt
//! attends causally to itself; completion row `r` attends to its prompt's keys
//! (`group[r]`) followed, causally, by its own. Gradients flowing into a shared prompt
//! from its G completions add up through the gathers (`index_select`'s backward pass).

use crate::config::ModelConfig;
use crate::kernels::attention::Mask;
use crate::layers::{rope_heads, Mode};
use crate::model::{attend, causal_mask, mask_value, positions, Attention};
use candle_core::{DType, Device, Result, Tensor};

/// Where the prompts and completions of a packed pass are, with their rotary tables
/// and masks.
#[derive(Debug, Clone)]
pub struct SharedPrefix {
    /// Distinct prompts and the longest one's length.
    pub prompts: usize,
    pub prompt_len: usize,
    /// Completions and the longest one's length (at least 1).
    pub rows: usize,
    pub completion_len: usize,
    /// Real tokens in the packed row.
    tokens: usize,
    /// Packed row where each prompt and each completion starts.
    prompt_start: Vec<usize>,
    completion_start: Vec<usize>,
    /// `[rows]` u32: the prompt each completion follows.
    group: Tensor,
    /// `[np·lp]` and `[nc·lc]` u32: the packed row behind each padded slot (padding
    /// slots repeat a real row; the masks keep them out).
    prompt_slots: Tensor,
    completion_slots: Tensor,
    /// `[tokens]` u32: the padded slot (prompt slots, then completion slots) of each
    /// packed row.
    unpad: Tensor,
    prompt_cos: Tensor,
    prompt_sin: Tensor,
    /// `[np, 1, lp, lp]` additive.
    prompt_mask: Mask,
    comp_cos: Tensor,
    comp_sin: Tensor,
    /// `[nc, 1, lc, lp + lc]` additive: the prompt's real positions, then causal.
    comp_mask: Mask,
}

impl SharedPrefix {
    /// The layout for prompts of `prompt_lens` and completions of `completion_lens`,
    /// completion `r` following prompt `group[r]`. `rope` turns positions `[b, t]` into
    /// `(cos, sin)` tables.
    pub(crate) fn new(
        prompt_lens: &[usize],
        group: &[usize],
        completion_lens: &[usize],
        rope: impl Fn(&Tensor) -> Result<(Tensor, Tensor)>,
        device: &Device,
    ) -> Result<Self> {
        let np = prompt_lens.len();
        let lp = prompt_lens.iter().copied().max().unwrap_or(0);
        let nc = group.len();
        let lc = completion_lens.iter().copied().max().unwrap_or(0).max(1);
        if completion_lens.len() != nc {
            candle_core::bail!(
                "shared prefix: {nc} completions but {} lengths",
                completion_lens.len()
            );
        }
        if let Some(&g) = group.iter().find(|&&g| g >= np) {
            candle_core::bail!("shared prefix: completion follows prompt {g} of {np}");
        }
        if prompt_lens.contains(&0) {
            candle_core::bail!("shared prefix: empty prompt");
        }
        let mut prompt_start = Vec::with_capacity(np);
        let mut at = 0;
        for &l in prompt_lens {
            prompt_start.push(at);
            at += l;
        }
        let mut completion_start = Vec::with_capacity(nc);
        for &l in completion_lens {
            completion_start.push(at);
            at += l;
        }
        let tokens = at;
        // Padded slots: prompts left-padded (pads repeat the first token), completions
        // right-padded (pads repeat the prompt's last token when the completion is
        // empty, else the completion's last one).
        let pads: Vec<usize> = prompt_lens.iter().map(|&l| lp - l).collect();
        let mut unpad = vec![0u32; tokens];
        let mut prompt_slots = Vec::with_capacity(np * lp);
        for g in 0..np {
            for j in 0..lp {
                let i = j.saturating_sub(pads[g]);
                let row = prompt_start[g] + i;
                if j >= pads[g] {
                    unpad[row] = (g * lp + j) as u32;
                }
                prompt_slots.push(row as u32);
            }
        }
        let mut completion_slots = Vec::with_capacity(nc * lc);
        for r in 0..nc {
            let len = completion_lens[r];
            for i in 0..lc {
                let row = if len == 0 {
                    prompt_start[group[r]] + prompt_lens[group[r]] - 1
                } else {
                    completion_start[r] + i.min(len - 1)
                };
                if i < len {
                    unpad[row] = (np * lp + r * lc + i) as u32;
                }
                completion_slots.push(row as u32);
            }
        }
        let (prompt_cos, prompt_sin) = rope(&positions(&pads, 0, lp, device)?)?;
        let prompt_mask = Mask::new(causal_mask(&pads, 0, lp, device)?);
        let mut pos = Vec::with_capacity(nc * lc);
        for &g in group {
            pos.extend((0..lc).map(|i| (prompt_lens[g] + i) as u32));
        }
        let (comp_cos, comp_sin) = rope(&Tensor::from_vec(pos, (nc, lc), device)?)?;
        let keys = lp + lc;
        let neg = mask_value(DType::F32);
        let mut m = vec![0f32; nc * lc * keys];
        for (r, &g) in group.iter().enumerate() {
            for i in 0..lc {
                let row = &mut m[(r * lc + i) * keys..(r * lc + i + 1) * keys];
                row[..pads[g]].fill(neg);
                row[lp + i + 1..].fill(neg);
            }
        }
        let comp_mask = Mask::new(Tensor::from_vec(m, (nc, 1, lc, keys), device)?);
        let u32s = |v: Vec<u32>| {
            let n = v.len();
            Tensor::from_vec(v, n, device)
        };
        Ok(Self {
            prompts: np,
            prompt_len: lp,
            rows: nc,
            completion_len: lc,
            tokens,
            prompt_start,
            completion_start,
            group: u32s(group.iter().map(|&g| g as u32).collect())?,
            prompt_slots: u32s(prompt_slots)?,
            completion_slots: u32s(completion_slots)?,
            unpad: u32s(unpad)?,
            prompt_cos,
            prompt_sin,
            prompt_mask,
            comp_cos,
            comp_sin,
            comp_mask,
        })
    }

    /// Tokens in the packed row.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Packed row of token `i` of prompt `g`.
    pub fn prompt_token(&self, g: usize, i: usize) -> usize {
        self.prompt_start[g] + i
    }

    /// Packed row of token `i` of completion `r`.
    pub fn completion_token(&self, r: usize, i: usize) -> usize {
        self.completion_start[r] + i
    }

    /// Casts the rotary tables and masks to the model's dtype, detached from any graph.
    pub(crate) fn prepared(&self, dtype: DType) -> Result<Self> {
        let cast = |t: &Tensor| t.detach().to_dtype(dtype);
        let mut p = self.clone();
        p.prompt_cos = cast(&self.prompt_cos)?;
        p.prompt_sin = cast(&self.prompt_sin)?;
        p.prompt_mask = self.prompt_mask.cast(dtype)?;
        p.comp_cos = cast(&self.comp_cos)?;
        p.comp_sin = cast(&self.comp_sin)?;
        p.comp_mask = self.comp_mask.cast(dtype)?;
        Ok(p)
    }
}

/// Self-attention of a packed pass: `x` `[1, tokens, h]` → `[1, tokens, h]`.
pub(crate) fn attention(
    cfg: &ModelConfig,
    attn: &Attention,
    x: &Tensor,
    sp: &SharedPrefix,
    mode: Mode,
) -> Result<Tensor> {
    let [q, k, v] = [&attn.q, &attn.k, &attn.v].map(|l| l.forward(x, mode));
    let out = attention_core(cfg, &q?, &k?, &v?, sp, mode)?;
    attn.o.forward(&out, mode)
}

/// Attention from the packed q/k/v projections `[1, tokens, ·]` to the input of the
/// output projection `[1, tokens, heads·d]`.
pub(crate) fn attention_core(
    cfg: &ModelConfig,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    sp: &SharedPrefix,
    mode: Mode,
) -> Result<Tensor> {
    let (nh, nkv, hd) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    );
    let (np, lp, nc, lc) = (sp.prompts, sp.prompt_len, sp.rows, sp.completion_len);
    // Projections over the real tokens, then gathered into padded blocks.
    let split = |t: &Tensor| -> Result<(Tensor, Tensor)> {
        let t = t.squeeze(0)?;
        let w = t.dim(1)?;
        Ok((
            t.index_select(&sp.prompt_slots, 0)?.reshape((np, lp, w))?,
            t.index_select(&sp.completion_slots, 0)?
                .reshape((nc, lc, w))?,
        ))
    };
    let (qp, qc) = split(q)?;
    let (kp, kc) = split(k)?;
    let (vp, vc) = split(v)?;
    let heads = |v: Tensor, b: usize, t: usize| -> Result<Tensor> {
        v.reshape((b, t, nkv, hd))?.transpose(1, 2)?.contiguous()
    };
    let qp = rope_heads(&qp, nh, &sp.prompt_cos, &sp.prompt_sin, mode)?;
    let kp = rope_heads(&kp, nkv, &sp.prompt_cos, &sp.prompt_sin, mode)?;
    let vp = heads(vp, np, lp)?;
    let qc = rope_heads(&qc, nh, &sp.comp_cos, &sp.comp_sin, mode)?;
    let kc = rope_heads(&kc, nkv, &sp.comp_cos, &sp.comp_sin, mode)?;
    let vc = heads(vc, nc, lc)?;
    let out_p = attend(cfg, &qp, &kp, &vp, Some(&sp.prompt_mask), mode)?;
    // Each completion's keys: its prompt's, then its own.
    let k = Tensor::cat(&[&kp.index_select(&sp.group, 0)?, &kc], 2)?;
    let v = Tensor::cat(&[&vp.index_select(&sp.group, 0)?, &vc], 2)?;
    let out_c = attend(cfg, &qc, &k, &v, Some(&sp.comp_mask), mode)?;
    let w = nh * hd;
    let out = Tensor::cat(
        &[out_p.reshape((np * lp, w))?, out_c.reshape((nc * lc, w))?],
        0,
    )?
    .index_select(&sp.unpad, 0)?;
    out.unsqueeze(0)
}
