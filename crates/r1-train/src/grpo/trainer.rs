//! The GRPO step, top to bottom:
//!
//! 1. sample G completions for each prompt of the batch (the rollout engine);
//! 2. score them with the reward functions (in parallel);
//! 3. optionally drop groups whose rewards all agree and refill (dynamic sampling);
//! 4. group-relative advantages;
//! 5. π_old log-probs (recomputed only when μ > 1) and π_ref log-probs (only when β > 0);
//! 6. μ passes of: micro-batch forward/backward with gradient accumulation, then one
//!    clipped AdamW update — skipped if anything is NaN/inf;
//! 7. metrics with TRL's names.

use super::advantages::{advantages, informative_groups, std};
use super::config::GrpoConfig;
use super::loss::{grpo_loss, LossParams};
use super::micro_batches::{order_rows, RowShape};
use crate::lora::micro_batch_seed;
use crate::optim::{lr_at, Accumulated, AdamW, AdamWConfig};
use crate::trainable::Trainable;
use anyhow::Result;
use candle_core::{DType, Tensor};
use r1_model::scoring::completion_logprobs;
use r1_model::{Mode, Model};
use r1_rewards::{CompositeReward, RewardInput};
use r1_rollout::{Completion, FinishReason, LocalEngine, RolloutEngine, SamplingParams};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// Most tokens one no-gradient scoring pass (π_old, π_ref) takes: its transient
/// per-layer buffers stay around 100 MB for SmolLM2-sized models.
const NO_GRAD_PASS_TOKENS: usize = 8192;

/// One training prompt: the text fed to the model and what the rewards need.
#[derive(Debug, Clone)]
pub struct GrpoItem {
    /// The prompt as the model sees it (template already applied).
    pub prompt: String,
    /// The user's question (rewards detect its language; logs show it).
    pub question: String,
    pub answer: Option<String>,
    pub extra: serde_json::Value,
}

/// One scored completion, for the samples log.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRecord {
    pub question: String,
    pub answer: Option<String>,
    pub completion: String,
    pub num_tokens: usize,
    pub finish_reason: FinishReason,
    pub reward: f64,
    pub rewards: BTreeMap<String, f64>,
    pub advantage: f64,
}

pub struct StepOutput {
    pub metrics: BTreeMap<String, f64>,
    pub samples: Vec<SampleRecord>,
}

pub struct GrpoTrainer {
    pub cfg: GrpoConfig,
    pub policy: Trainable,
    /// Frozen copy of the starting weights; only when `beta > 0`.
    pub reference: Option<Model>,
    pub rewards: CompositeReward,
    pub optimizer: AdamW,
    /// Training steps done (generation batches).
    pub step: usize,
    /// Optimizer updates done.
    pub updates: usize,
}

struct Scored {
    completion: Completion,
    prompt_ids: std::sync::Arc<Vec<u32>>,
    item: usize,
    total: f64,
    components: Vec<(String, f64)>,
}

impl GrpoTrainer {
    pub fn new(cfg: GrpoConfig, policy: Trainable, rewards: CompositeReward) -> Result<Self> {
        cfg.validate()?;
        let reference = if cfg.beta > 0.0 {
            Some(policy.reference_model()?)
        } else {
            None
        };
        let optimizer = AdamW::new(
            AdamWConfig {
                beta1: cfg.adam_beta1,
                beta2: cfg.adam_beta2,
                eps: cfg.adam_epsilon,
                weight_decay: cfg.weight_decay,
            },
            policy.vars.len(),
        );
        Ok(Self {
            cfg,
            policy,
            reference,
            rewards,
            optimizer,
            step: 0,
            updates: 0,
        })
    }

    fn sampling(&self, round: usize) -> SamplingParams {
        SamplingParams {
            temperature: self.cfg.temperature,
            top_p: self.cfg.top_p,
            top_k: self.cfg.top_k,
            max_new_tokens: self.cfg.max_completion_length,
            min_new_tokens: 0,
            stop: vec![],
            // Reproducible and resumable: a pure function of (seed, step, round).
            seed: self
                .cfg
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add((self.step * 131 + round) as u64),
        }
    }

    fn encode(&self, item: &GrpoItem) -> Result<Vec<u32>> {
        let mut ids = self.policy.tokenizer.encode(&item.prompt, false)?;
        let max = self.cfg.max_prompt_length;
        if max > 0 && ids.len() > max {
            ids.drain(..ids.len() - max); // keep the end: it holds the question
        }
        Ok(ids)
    }

    /// Samples and scores G completions for each item.
    fn rollout(&self, items: &[GrpoItem], first_item: usize, round: usize) -> Result<Vec<Scored>> {
        let model = self.policy.infer_model()?;
        let prompts: Vec<Vec<u32>> = items
            .iter()
            .map(|it| self.encode(it))
            .collect::<Result<_>>()?;
        let mut engine = LocalEngine {
            model: &model,
            tokenizer: &self.policy.tokenizer,
            on_tokens: None,
        };
        let groups = engine.generate(&prompts, self.cfg.num_generations, &self.sampling(round))?;
        let prompts: Vec<_> = prompts.into_iter().map(std::sync::Arc::new).collect();
        let flat: Vec<(usize, Completion)> = groups
            .into_iter()
            .enumerate()
            .flat_map(|(i, g)| g.into_iter().map(move |c| (i, c)))
            .collect();
        let max_len = self.cfg.max_completion_length;
        Ok(flat
            .into_par_iter()
            .map(|(i, c)| {
                let it = &items[i];
                let input = RewardInput {
                    prompt: &it.question,
                    completion: &c.text,
                    answer: it.answer.as_deref(),
                    completion_tokens: c.token_ids.len(),
                    max_completion_tokens: max_len,
                    truncated: c.finish_reason == FinishReason::Length,
                    extra: &it.extra,
                };
                let s = self.rewards.score(&input);
                Scored {
                    total: s.total,
                    components: s
                        .components
                        .iter()
                        .map(|c| (c.name.clone(), c.score.value))
                        .collect(),
                    completion: c,
                    prompt_ids: prompts[i].clone(),
                    item: first_item + i,
                }
            })
            .collect())
    }

    /// One training step on the prompts `next_items(n)` hands out.
    pub fn train_step(
        &mut self,
        next_items: &mut dyn FnMut(usize) -> Vec<GrpoItem>,
    ) -> Result<StepOutput> {
        let cfg = self.cfg.clone();
        let g = cfg.num_generations;
        let n_prompts = cfg.generation_batch_size() / g;
        let mut m = BTreeMap::new();

        // 1–2. Generate and score.
        let t0 = Instant::now();
        let mut items = next_items(n_prompts);
        anyhow::ensure!(!items.is_empty(), "the dataset handed out no prompts");
        let mut scored = self.rollout(&items, 0, 0)?;
        let first_totals: Vec<f64> = scored.iter().map(|s| s.total).collect();
        let zero_std = first_totals.chunks(g).filter(|c| std(c) == 0.0).count();
        m.insert(
            "frac_reward_zero_std".into(),
            zero_std as f64 / first_totals.chunks(g).count() as f64,
        );

        // 3. Dynamic sampling: keep informative groups, refill from further prompts.
        if cfg.dynamic_sampling {
            let mut kept = self.keep_informative(scored);
            let mut round = 0;
            while kept.len() < n_prompts * g && round < cfg.max_resample_rounds {
                round += 1;
                let more = next_items(n_prompts - kept.len() / g);
                if more.is_empty() {
                    break;
                }
                let offset = items.len();
                let fresh = self.rollout(&more, offset, round)?;
                items.extend(more);
                kept.extend(self.keep_informative(fresh));
            }
            kept.truncate(n_prompts * g);
            m.insert("dynamic_sampling/rounds".into(), round as f64);
            scored = kept;
        }
        let t_gen = t0.elapsed().as_secs_f64();

        let totals: Vec<f64> = scored.iter().map(|s| s.total).collect();
        self.reward_metrics(&mut m, &scored, &totals);
        let gen_tokens: usize = scored.iter().map(|s| s.completion.token_ids.len()).sum();
        m.insert("time/generation".into(), t_gen);
        m.insert(
            "tokens_per_second/generation".into(),
            gen_tokens as f64 / t_gen.max(1e-9),
        );

        // 4. Advantages.
        let adv = advantages(&totals, g, cfg.scale_rewards());
        let samples: Vec<SampleRecord> = scored
            .iter()
            .zip(&adv)
            .map(|(s, &a)| SampleRecord {
                question: items[s.item].question.clone(),
                answer: items[s.item].answer.clone(),
                completion: s.completion.text.clone(),
                num_tokens: s.completion.token_ids.len(),
                finish_reason: s.completion.finish_reason,
                reward: s.total,
                rewards: s.components.iter().cloned().collect(),
                advantage: a,
            })
            .collect();
        if scored.is_empty() {
            // Every group agreed: nothing to learn from this batch.
            m.insert("skipped_update".into(), 1.0);
            self.step += 1;
            return Ok(StepOutput {
                metrics: m,
                samples,
            });
        }

        // A micro-batch encodes each distinct prompt once: keep groups whole (see
        // `micro_batches`).
        let shapes: Vec<RowShape> = scored
            .iter()
            .map(|s| RowShape {
                prompt: s.item,
                completion_len: s.completion.token_ids.len(),
            })
            .collect();
        let order = order_rows(&shapes);
        let mut slots: Vec<Option<Scored>> = scored.into_iter().map(Some).collect();
        let scored: Vec<Scored> = order
            .iter()
            .map(|&i| slots[i].take().expect("each row is taken once"))
            .collect();
        let adv: Vec<_> = order.iter().map(|&i| adv[i]).collect();

        // 5. π_old and π_ref, per micro-batch, without gradients.
        let t_ref = Instant::now();
        let mb = cfg.per_device_train_batch_size;
        let chunks: Vec<std::ops::Range<usize>> = (0..scored.len())
            .step_by(mb)
            .map(|s| s..(s + mb).min(scored.len()))
            .collect();
        let infer = self.policy.infer_model()?;
        let old: Option<Vec<Tensor>> = if cfg.num_iterations > 1 {
            Some(self.score_no_grad(&infer, &scored, &chunks)?)
        } else {
            None
        };
        let reference: Option<Vec<Tensor>> = match &self.reference {
            Some(rm) => Some(self.score_no_grad(rm, &scored, &chunks)?),
            None => None,
        };
        m.insert("time/reference".into(), t_ref.elapsed().as_secs_f64());

        // 6. μ passes of accumulated micro-batches, one update each.
        let t_train = Instant::now();
        let masks: Vec<Tensor> = chunks
            .iter()
            .map(|r| self.mask(&scored[r.clone()]))
            .collect::<Result<_>>()?;
        let num_items: f64 = masks
            .iter()
            .map(|mk| {
                mk.sum_all()
                    .and_then(|s| s.to_dtype(DType::F64)?.to_scalar::<f64>())
            })
            .sum::<candle_core::Result<f64>>()?;
        let params = LossParams {
            loss_type: cfg.loss_type,
            epsilon_low: cfg.epsilon,
            epsilon_high: cfg.epsilon_high(),
            beta: cfg.beta,
            max_completion_length: cfg.max_completion_length,
            num_items_in_batch: num_items,
            gradient_accumulation_steps: chunks.len(),
        };
        let (mut loss_sum, mut kl_sum, mut ent_sum, mut ent_n) = (0.0, 0.0, 0.0, 0.0);
        let (mut clip_lo, mut clip_hi, mut tok) = (0.0, 0.0, 0.0);
        let (mut grad_norm, mut skipped) = (0.0, 0usize);
        let mut lr = 0.0;
        for iteration in 0..cfg.num_iterations {
            let mut model = self.policy.train_model()?;
            if cfg.gradient_checkpointing {
                model.enable_checkpointing();
            }
            let mut acc = Accumulated::new(self.policy.vars.len());
            let mut finite = true;
            for (c, r) in chunks.iter().enumerate() {
                let part = &scored[r.clone()];
                // LoRA dropout masks: a pure function of (seed, step, pass, micro-batch).
                model.set_dropout_seed(micro_batch_seed(
                    cfg.seed,
                    &[self.step as u64, iteration as u64, c as u64],
                ));
                let (logp, ent) = self.score(&model, part, Mode::Train)?;
                let mask = &masks[c];
                let old_lp = match &old {
                    Some(o) => o[c].clone(),
                    None => logp.detach(), // on-policy: ratio exactly 1
                };
                let a = Tensor::from_vec(
                    adv[r.clone()].iter().map(|&x| x as f32).collect::<Vec<_>>(),
                    r.len(),
                    logp.device(),
                )?;
                let out = grpo_loss(
                    &logp,
                    &old_lp,
                    reference.as_ref().map(|v| &v[c]),
                    &a,
                    mask,
                    &params,
                )?;
                let lv = out.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                if !lv.is_finite() {
                    finite = false;
                    break;
                }
                if iteration == 0 {
                    loss_sum += lv;
                    kl_sum += out.kl * out.tokens;
                    clip_lo += out.clip_low * out.tokens;
                    clip_hi += out.clip_high * out.tokens;
                    tok += out.tokens;
                    if let Some(e) = ent {
                        ent_sum += (e * mask)?
                            .sum_all()?
                            .to_dtype(DType::F64)?
                            .to_scalar::<f64>()?;
                        ent_n += out.tokens;
                    }
                }
                acc.add(&self.policy.vars, &model.backward(&out.loss)?)?;
            }
            lr = lr_at(
                cfg.learning_rate,
                cfg.lr_scheduler_type,
                cfg.warmup_steps,
                cfg.max_steps * cfg.num_iterations,
                self.updates,
            );
            if !finite {
                skipped += 1;
                continue;
            }
            let info = self
                .optimizer
                .step(&self.policy.vars, &acc.grads, lr, cfg.max_grad_norm)?;
            if iteration == 0 {
                grad_norm = info.grad_norm;
            }
            if info.applied {
                self.updates += 1;
            } else {
                skipped += 1;
            }
        }
        let t_train = t_train.elapsed().as_secs_f64();
        m.insert("time/training".into(), t_train);
        m.insert("loss".into(), loss_sum);
        m.insert("kl".into(), kl_sum / tok.max(1.0));
        m.insert("entropy".into(), ent_sum / ent_n.max(1.0));
        m.insert("clip_ratio/low_mean".into(), clip_lo / tok.max(1.0));
        m.insert("clip_ratio/high_mean".into(), clip_hi / tok.max(1.0));
        m.insert(
            "clip_ratio/region_mean".into(),
            (clip_lo + clip_hi) / tok.max(1.0),
        );
        m.insert("grad_norm".into(), grad_norm);
        m.insert("learning_rate".into(), lr);
        m.insert("skipped_updates".into(), skipped as f64);
        let total_time = t0.elapsed().as_secs_f64();
        m.insert("time/step".into(), total_time);
        m.insert(
            "tokens_per_second".into(),
            gen_tokens as f64 / total_time.max(1e-9),
        );
        self.step += 1;
        Ok(StepOutput {
            metrics: m,
            samples,
        })
    }

    fn keep_informative(&self, scored: Vec<Scored>) -> Vec<Scored> {
        let g = self.cfg.num_generations;
        let totals: Vec<f64> = scored.iter().map(|s| s.total).collect();
        let keep = informative_groups(&totals, g);
        let mut groups: Vec<Vec<Scored>> = Vec::new();
        let mut it = scored.into_iter();
        loop {
            let grp: Vec<Scored> = it.by_ref().take(g).collect();
            if grp.is_empty() {
                break;
            }
            groups.push(grp);
        }
        groups
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .flat_map(|(_, g)| g)
            .collect()
    }

    /// `[b, t]` completion mask; truncated completions are zeroed when configured.
    fn mask(&self, part: &[Scored]) -> Result<Tensor> {
        let t = part
            .iter()
            .map(|s| s.completion.token_ids.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut v = vec![0f32; part.len() * t];
        for (r, s) in part.iter().enumerate() {
            let drop = self.cfg.mask_truncated_completions
                && s.completion.finish_reason == FinishReason::Length;
            if !drop {
                v[r * t..r * t + s.completion.token_ids.len()].fill(1.0);
            }
        }
        Ok(Tensor::from_vec(
            v,
            (part.len(), t),
            self.policy.vars[0].device(),
        )?)
    }

    /// Log-probs without gradients (π_old, π_ref), one `[rows, t]` tensor per
    /// micro-batch of `chunks`. Without a graph to keep, several micro-batches share a
    /// pass (up to [`NO_GRAD_PASS_TOKENS`] tokens): larger GEMMs, and each prompt
    /// encoded once per pass.
    fn score_no_grad(
        &self,
        model: &Model,
        scored: &[Scored],
        chunks: &[std::ops::Range<usize>],
    ) -> Result<Vec<Tensor>> {
        let tokens = |r: &std::ops::Range<usize>| -> usize {
            scored[r.clone()]
                .iter()
                .map(|s| s.prompt_ids.len() + s.completion.token_ids.len())
                .sum()
        };
        let mut out = Vec::with_capacity(chunks.len());
        let mut first = 0;
        while first < chunks.len() {
            let mut last = first + 1;
            let mut sum = tokens(&chunks[first]);
            while last < chunks.len() && sum + tokens(&chunks[last]) <= NO_GRAD_PASS_TOKENS {
                sum += tokens(&chunks[last]);
                last += 1;
            }
            let rows = chunks[first].start..chunks[last - 1].end;
            let (lp, _) = self.score(model, &scored[rows.clone()], Mode::Infer)?;
            for r in &chunks[first..last] {
                let t = scored[r.clone()]
                    .iter()
                    .map(|s| s.completion.token_ids.len())
                    .max()
                    .unwrap_or(0)
                    .max(1);
                out.push(
                    lp.narrow(0, r.start - rows.start, r.len())?
                        .narrow(1, 0, t)?,
                );
            }
            first = last;
        }
        Ok(out)
    }

    /// `[b, t]` log-probs (and entropy in train mode) of a micro-batch's completions.
    fn score(
        &self,
        model: &Model,
        part: &[Scored],
        mode: Mode,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let prompts: Vec<&[u32]> = part.iter().map(|s| s.prompt_ids.as_slice()).collect();
        let comps: Vec<&[u32]> = part
            .iter()
            .map(|s| s.completion.token_ids.as_slice())
            .collect();
        let s = completion_logprobs(
            model,
            &prompts,
            &comps,
            self.cfg.temperature,
            mode,
            mode == Mode::Train,
        )?;
        Ok((
            s.logprobs.to_dtype(DType::F32)?,
            s.entropy.map(|e| e.to_dtype(DType::F32)).transpose()?,
        ))
    }

    fn reward_metrics(&self, m: &mut BTreeMap<String, f64>, scored: &[Scored], totals: &[f64]) {
        let n = totals.len().max(1) as f64;
        m.insert("reward".into(), totals.iter().sum::<f64>() / n);
        m.insert("reward_std".into(), std(totals));
        let mut by_name: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for s in scored {
            for (k, v) in &s.components {
                by_name.entry(k.clone()).or_default().push(*v);
            }
        }
        for (k, v) in &by_name {
            m.insert(
                format!("rewards/{k}/mean"),
                v.iter().sum::<f64>() / v.len() as f64,
            );
            m.insert(format!("rewards/{k}/std"), std(v));
        }
        // Accuracy: share of completions whose correctness reward is full.
        for key in ["accuracy", "countdown", "code_pass"] {
            if let Some(v) = by_name.get(key) {
                m.insert(
                    "accuracy".into(),
                    v.iter().filter(|&&x| x >= 1.0).count() as f64 / v.len() as f64,
                );
                break;
            }
        }
        let lens: Vec<f64> = scored
            .iter()
            .map(|s| s.completion.token_ids.len() as f64)
            .collect();
        m.insert(
            "completions/mean_length".into(),
            lens.iter().sum::<f64>() / n,
        );
        m.insert(
            "completions/min_length".into(),
            lens.iter().cloned().fold(f64::INFINITY, f64::min),
        );
        m.insert(
            "completions/max_length".into(),
            lens.iter().cloned().fold(0.0, f64::max),
        );
        let clipped = scored
            .iter()
            .filter(|s| s.completion.finish_reason == FinishReason::Length)
            .count();
        m.insert("completions/clipped_ratio".into(), clipped as f64 / n);
    }
}
