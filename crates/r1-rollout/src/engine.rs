//! Batched sampling with a KV cache on the local model.
//!
//! - Each distinct prompt is encoded once; its cache rows are then copied to the `n`
//!   samples that share it (a GRPO group shares its prompt).
//! - Tokens that every prompt starts with (a system prompt) are encoded once too, then
//!   each prompt's own tokens; rows of different lengths are padded between the two,
//!   with per-row positions and masks.
//! - A sequence that ends (EOS, stop string, length) leaves the batch at once, so it
//!   stops costing compute.
//! - Every sequence has its own RNG seeded from (seed, prompt, sample), so results do
//!   not depend on batch composition.

use crate::sampling::{sample_token, SamplingParams};
use crate::{Completion, FinishReason, RolloutEngine};
use anyhow::Result;
use candle_core::{DType, Tensor};
use r1_model::model::{causal_mask, positions, RowPadding};
use r1_model::{KvCache, Mode, Model, Tokenizer};
use rand::SeedableRng;
use rayon::prelude::*;

/// Samples from a model held in this process.
pub struct LocalEngine<'a> {
    pub model: &'a Model,
    pub tokenizer: &'a Tokenizer,
    /// Called with the number of tokens produced by each decode step (progress bars).
    pub on_tokens: Option<&'a (dyn Fn(usize) + Sync)>,
}

struct Seq {
    prompt: usize,
    sample: usize,
    pad: usize,
    rng: rand::rngs::StdRng,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    finish: Option<FinishReason>,
    stop_at: Option<usize>,
}

/// Below this many tokens common to every prompt, an extra pass to encode them once
/// saves less than it costs.
const MIN_SHARED_PREFIX: usize = 16;

/// How many leading tokens all of several distinct prompts share (0 if fewer than
/// [`MIN_SHARED_PREFIX`]), leaving every prompt at least one token of its own: the last
/// prompt token's logits start each row's sampling.
fn shared_prefix_len(prompts: &[Vec<u32>]) -> usize {
    let Some((first, rest)) = prompts.split_first() else {
        return 0;
    };
    if rest.is_empty() {
        return 0;
    }
    let shortest = prompts.iter().map(|q| q.len()).min().unwrap_or(0);
    let common = rest
        .iter()
        .map(|q| first.iter().zip(q).take_while(|(a, b)| a == b).count())
        .min()
        .unwrap_or(0)
        .min(shortest.saturating_sub(1));
    if common >= MIN_SHARED_PREFIX {
        common
    } else {
        0
    }
}

fn seq_seed(seed: u64, prompt: usize, sample: usize) -> u64 {
    // SplitMix64 over the triple: distinct, well-mixed seeds per sequence.
    let mut z = seed
        ^ (prompt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (sample as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl LocalEngine<'_> {
    /// Logits `[rows, vocab]` (f32, on the host) for hidden states `[rows, h]`.
    fn logits(&self, hidden: &Tensor) -> Result<Vec<Vec<f32>>> {
        let logits = r1_model::layers::project(hidden, &self.model.lm_head, r1_model::Mode::Infer)?
            .to_dtype(DType::F32)?;
        Ok(logits.to_vec2::<f32>()?)
    }

    fn finish_check(&self, s: &mut Seq, p: &SamplingParams, eos: &[u32]) -> Result<()> {
        let last = *s.tokens.last().expect("a token was just pushed");
        if eos.contains(&last) {
            s.finish = Some(FinishReason::Eos);
            return Ok(());
        }
        if !p.stop.is_empty() {
            let text = self.tokenizer.decode(&s.tokens, true)?;
            if let Some(pos) = p.stop.iter().filter_map(|st| text.find(st.as_str())).min() {
                s.finish = Some(FinishReason::Stop);
                s.stop_at = Some(pos);
                return Ok(());
            }
        }
        if s.tokens.len() >= p.max_new_tokens {
            s.finish = Some(FinishReason::Length);
        }
        Ok(())
    }
}

impl RolloutEngine for LocalEngine<'_> {
    fn generate(
        &mut self,
        prompts: &[Vec<u32>],
        n: usize,
        p: &SamplingParams,
    ) -> Result<Vec<Vec<Completion>>> {
        let model = self.model;
        let device = model.device().clone();
        let eos = self.tokenizer.eos_ids.clone();
        if prompts.is_empty() || n == 0 {
            return Ok(prompts.iter().map(|_| vec![]).collect());
        }
        if let Some(i) = prompts.iter().position(|q| q.is_empty()) {
            anyhow::bail!("prompt {i} is empty");
        }
        // Tokens every prompt starts with (a system prompt, a template's header) are
        // encoded once and their cache rows copied; each row then holds
        // `[shared | its padding | its own tokens]`.
        let shared = shared_prefix_len(prompts);
        let plen = prompts.iter().map(|q| q.len() - shared).max().unwrap_or(0);
        let pads: Vec<usize> = prompts.iter().map(|q| plen - (q.len() - shared)).collect();
        let cfg = &model.cfg;
        let mut cache = KvCache::new(
            cfg.num_hidden_layers,
            if shared > 0 { 1 } else { prompts.len() },
            cfg.num_key_value_heads,
            cfg.head_dim,
            shared + plen + p.max_new_tokens.max(1),
            model.dtype(),
            &device,
        )?;
        if shared > 0 {
            let ids = Tensor::from_vec(prompts[0][..shared].to_vec(), (1, shared), &device)?;
            let pos = positions(&[0], 0, shared, &device)?;
            let mask = causal_mask(&[0], 0, shared, &device)?;
            model.forward(&ids, &pos, Some(&mask), Some(&mut cache), Mode::Infer)?;
            cache.select_rows(&vec![0; prompts.len()])?;
        }
        // Prefill each prompt's own tokens, left-padded after the shared ones.
        let mut ids = Vec::with_capacity(prompts.len() * plen);
        for q in prompts {
            ids.extend(std::iter::repeat_n(0u32, plen - (q.len() - shared)));
            ids.extend_from_slice(&q[shared..]);
        }
        let ids = Tensor::from_vec(ids, (prompts.len(), plen), &device)?;
        let layout = RowPadding {
            at: shared,
            pad: &pads,
        };
        let pos = layout.positions(shared, plen, &device)?;
        let mask = layout.causal_mask(shared, plen, &device)?;
        let hidden = model.forward(&ids, &pos, Some(&mask), Some(&mut cache), Mode::Infer)?;
        let last = hidden.narrow(1, plen - 1, 1)?.squeeze(1)?;
        let prompt_logits = self.logits(&last)?;
        // Fan out: row r of the batch is (prompt r / n, sample r % n).
        let fan: Vec<u32> = (0..prompts.len() * n).map(|r| (r / n) as u32).collect();
        if n > 1 {
            cache.select_rows(&fan)?;
        }
        let mut seqs: Vec<Seq> = (0..prompts.len() * n)
            .map(|r| Seq {
                prompt: r / n,
                sample: r % n,
                pad: pads[r / n],
                rng: rand::rngs::StdRng::seed_from_u64(seq_seed(p.seed, r / n, r % n)),
                tokens: Vec::with_capacity(p.max_new_tokens),
                logprobs: Vec::with_capacity(p.max_new_tokens),
                finish: None,
                stop_at: None,
            })
            .collect();
        let mut active: Vec<usize> = (0..seqs.len()).collect();
        let mut logits: Vec<Vec<f32>> = fan
            .iter()
            .map(|&q| prompt_logits[q as usize].clone())
            .collect();
        if p.max_new_tokens == 0 {
            active.clear();
        }
        while !active.is_empty() {
            // Sample one token for every active row, in parallel.
            let mut rows: Vec<&mut Seq> = {
                let mut by_idx: Vec<Option<&mut Seq>> = seqs.iter_mut().map(Some).collect();
                active
                    .iter()
                    .map(|&i| by_idx[i].take().expect("active rows are distinct"))
                    .collect()
            };
            rows.par_iter_mut()
                .zip(logits.par_iter_mut())
                .for_each(|(s, l)| {
                    if s.tokens.len() < p.min_new_tokens {
                        // Too early to end: end-of-sequence tokens cannot be drawn.
                        for &e in &eos {
                            if let Some(x) = l.get_mut(e as usize) {
                                *x = f32::NEG_INFINITY;
                            }
                        }
                    }
                    let (tok, lp) = sample_token(l, p, &mut s.rng);
                    s.tokens.push(tok);
                    s.logprobs.push(lp);
                });
            if let Some(cb) = self.on_tokens {
                cb(rows.len());
            }
            for s in rows.iter_mut() {
                self.finish_check(s, p, &eos)?;
            }
            drop(rows);
            let keep: Vec<u32> = (0..active.len())
                .filter(|&j| seqs[active[j]].finish.is_none())
                .map(|j| j as u32)
                .collect();
            if keep.is_empty() {
                break;
            }
            if keep.len() < active.len() {
                cache.select_rows(&keep)?;
                active = keep.iter().map(|&j| active[j as usize]).collect();
            }
            // Decode step: one new token per active row.
            let past = cache.len();
            let b = active.len();
            let next: Vec<u32> = active
                .iter()
                .map(|&i| *seqs[i].tokens.last().unwrap())
                .collect();
            let ids = Tensor::from_vec(next, (b, 1), &device)?;
            let row_pads: Vec<usize> = active.iter().map(|&i| seqs[i].pad).collect();
            let rows = RowPadding {
                at: shared,
                pad: &row_pads,
            };
            let pos = rows.positions(past, 1, &device)?;
            let mask = rows.causal_mask(past, 1, &device)?;
            let hidden = model.forward(&ids, &pos, Some(&mask), Some(&mut cache), Mode::Infer)?;
            logits = self.logits(&hidden.squeeze(1)?)?;
        }
        let mut out: Vec<Vec<Completion>> = prompts.iter().map(|_| Vec::with_capacity(n)).collect();
        for s in seqs {
            let mut text = self.tokenizer.decode(&s.tokens, true)?;
            if let Some(cut) = s.stop_at {
                text.truncate(cut);
            }
            out[s.prompt].push(Completion {
                prompt_index: s.prompt,
                sample_index: s.sample,
                token_ids: s.tokens,
                logprobs: s.logprobs,
                text,
                finish_reason: s.finish.unwrap_or(FinishReason::Length),
            });
        }
        Ok(out)
    }
}
