//! One SFT optimizer step: `gradient_accumulation_steps` micro-batches, the loss
//! `-Σ logprob(completion token) / Σ completion tokens` over the whole step (so every
//! token weighs the same however the step is split), clipping, the schedule.

use super::batching::{batches_per_epoch, epoch_batches};
use super::config::SftConfig;
use super::tokenize::Tokenized;
use crate::lora::micro_batch_seed;
use crate::optim::{lr_at, Accumulated, AdamW};
use crate::trainable::Trainable;
use anyhow::Result;
use candle_core::Tensor;
use r1_model::scoring::completion_logprobs;
use r1_model::{LoadedModel, Mode, Model};
use std::time::Instant;

/// What one step measured.
#[derive(Debug, Clone, Copy)]
pub struct SftStep {
    /// Mean negative log-likelihood per completion token.
    pub loss: f64,
    pub learning_rate: f64,
    /// Before clipping.
    pub grad_norm: f64,
    /// False when the gradient was not finite and the update was skipped.
    pub applied: bool,
    /// Tokens (prompt + completion) processed.
    pub tokens: usize,
    pub tokens_per_second: f64,
    /// Passes over the data completed, fractional.
    pub epoch: f64,
}

pub struct SftTrainer {
    pub cfg: SftConfig,
    pub policy: Trainable,
    pub optimizer: AdamW,
    pub data: Vec<Tokenized>,
    /// Optimizer steps done.
    pub step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    lengths: Vec<usize>,
    epoch_cache: Option<(u64, Vec<Vec<usize>>)>,
}

/// Sum of completion log-probabilities of `batch` and its completion token count.
pub fn batch_logprob(model: &Model, batch: &[&Tokenized], mode: Mode) -> Result<(Tensor, usize)> {
    let prompts: Vec<&[u32]> = batch.iter().map(|t| t.prompt.as_slice()).collect();
    let completions: Vec<&[u32]> = batch.iter().map(|t| t.completion.as_slice()).collect();
    let s = completion_logprobs(model, &prompts, &completions, 1.0, mode, false)?;
    let n = batch.iter().map(|t| t.completion.len()).sum();
    Ok((s.logprobs.sum_all()?, n))
}

/// The trainable weights `cfg` asks for: every weight, or LoRA adapters on
/// `lora.target_modules` (their `A` initialised from `cfg.seed`, so a resumed run
/// builds the same adapters before loading the saved ones).
pub fn sft_policy(cfg: &SftConfig, lm: LoadedModel) -> Result<Trainable> {
    match &cfg.lora {
        Some(l) => Trainable::new_lora(lm, l.clone(), cfg.seed),
        None => Trainable::new(lm),
    }
}

impl SftTrainer {
    pub fn new(cfg: SftConfig, policy: Trainable, data: Vec<Tokenized>) -> Result<Self> {
        cfg.validate()?;
        anyhow::ensure!(!data.is_empty(), "no training examples");
        let optimizer = AdamW::new(cfg.adamw(), policy.vars.len());
        let lengths = data.iter().map(Tokenized::len).collect();
        let total_steps = cfg.total_steps(batches_per_epoch(
            data.len(),
            cfg.per_device_train_batch_size,
        ));
        Ok(Self {
            cfg,
            policy,
            optimizer,
            data,
            step: 0,
            total_steps,
            lengths,
            epoch_cache: None,
        })
    }

    pub fn micro_batches_per_epoch(&self) -> usize {
        batches_per_epoch(self.data.len(), self.cfg.per_device_train_batch_size)
    }

    /// The examples of global micro-batch `k` (epochs laid end to end).
    fn micro_batch(&mut self, k: usize) -> Vec<usize> {
        let per = self.micro_batches_per_epoch();
        let epoch = (k / per) as u64;
        if self.epoch_cache.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let b = epoch_batches(
                &self.lengths,
                self.cfg.per_device_train_batch_size,
                self.cfg.bucket_window,
                self.cfg.seed,
                epoch,
            );
            self.epoch_cache = Some((epoch, b));
        }
        self.epoch_cache.as_ref().unwrap().1[k % per].clone()
    }

    /// The learning rate of the next step.
    pub fn learning_rate(&self) -> f64 {
        lr_at(
            self.cfg.learning_rate,
            self.cfg.lr_scheduler_type,
            self.cfg.warmup_steps,
            self.total_steps,
            self.step,
        )
    }

    /// Runs one optimizer step.
    pub fn train_step(&mut self) -> Result<SftStep> {
        let start = Instant::now();
        let accum = self.cfg.gradient_accumulation_steps;
        let first = self.step * accum;
        let batches: Vec<Vec<usize>> = (first..first + accum)
            .map(|k| self.micro_batch(k))
            .collect();
        // Normalise by the whole step's completion tokens up front, so accumulated
        // gradients equal those of one big batch.
        let n_tokens: usize = batches
            .iter()
            .flatten()
            .map(|&i| self.data[i].completion.len())
            .sum();
        let mut grads = Accumulated::new(self.policy.vars.len());
        let mut nll = 0.0;
        let mut tokens = 0;
        for (k, b) in batches.iter().enumerate() {
            let mut model = self.policy.train_model()?;
            if self.cfg.gradient_checkpointing {
                model.enable_checkpointing();
            }
            // LoRA dropout masks: a pure function of (seed, step, micro-batch).
            model.set_dropout_seed(micro_batch_seed(
                self.cfg.seed,
                &[self.step as u64, k as u64],
            ));
            let items: Vec<&Tokenized> = b.iter().map(|&i| &self.data[i]).collect();
            tokens += items.iter().map(|t| t.len()).sum::<usize>();
            let (lp, _) = batch_logprob(&model, &items, Mode::Train)?;
            let loss = (lp.neg()? / n_tokens as f64)?;
            nll += loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            grads.add(&self.policy.vars, &model.backward(&loss)?)?;
        }
        let lr = self.learning_rate();
        let info =
            self.optimizer
                .step(&self.policy.vars, &grads.grads, lr, self.cfg.max_grad_norm)?;
        self.step += 1;
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        Ok(SftStep {
            loss: nll,
            learning_rate: lr,
            grad_norm: info.grad_norm,
            applied: info.applied,
            tokens,
            tokens_per_second: tokens as f64 / secs,
            epoch: (self.step * accum) as f64 / self.micro_batches_per_epoch() as f64,
        })
    }

    /// Mean loss per completion token of `items` under the current weights (no
    /// gradients).
    pub fn eval_loss(&self, items: &[Tokenized]) -> Result<f64> {
        let model = self.policy.infer_model()?;
        let (mut sum, mut n) = (0.0, 0usize);
        for chunk in items.chunks(self.cfg.per_device_train_batch_size) {
            let refs: Vec<&Tokenized> = chunk.iter().collect();
            let (lp, k) = batch_logprob(&model, &refs, Mode::Infer)?;
            sum += lp.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            n += k;
        }
        Ok(-sum / n.max(1) as f64)
    }
}
