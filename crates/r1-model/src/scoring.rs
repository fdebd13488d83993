//! Log-probabilities of completions given their prompts, in one forward pass: the
//! quantity GRPO's ratio and KL are built from. Rows are laid out as
//! `[left pad | prompt | completion | right pad]` with every prompt ending at the same
//! column, so the hidden states predicting completion tokens are one contiguous slice.

use crate::layers::Mode;
use crate::logprobs::{token_logprobs, token_logprobs_no_grad, DEFAULT_CHUNK_ROWS};
use crate::model::{causal_mask, positions, Model};
use anyhow::Result;
use candle_core::Tensor;

pub struct CompletionScores {
    /// `[b, t]` log-probability of each completion token (0 where padded).
    pub logprobs: Tensor,
    /// `[b, t]` entropy of the distribution at each completion position, if asked for.
    pub entropy: Option<Tensor>,
    /// `[b, t]` 1 for real completion tokens, 0 for padding (dtype of `logprobs`).
    pub mask: Tensor,
}

/// Scores `completions[i]` after `prompts[i]` under `softmax(logits / temperature)`.
/// `Mode::Train` keeps the graph for backprop; `Mode::Infer` returns plain values.
pub fn completion_logprobs(
    model: &Model,
    prompts: &[&[u32]],
    completions: &[&[u32]],
    temperature: f64,
    mode: Mode,
    with_entropy: bool,
) -> Result<CompletionScores> {
    anyhow::ensure!(
        prompts.len() == completions.len(),
        "prompts and completions differ in number"
    );
    anyhow::ensure!(
        prompts.iter().all(|p| !p.is_empty()),
        "an empty prompt cannot be scored"
    );
    let device = model.device();
    let b = prompts.len();
    let p_len = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    let t = completions
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let total = p_len + t;
    let mut ids = vec![0u32; b * total];
    let mut targets = vec![0u32; b * t];
    let mut mask = vec![0f32; b * t];
    let pads: Vec<usize> = prompts.iter().map(|p| p_len - p.len()).collect();
    for r in 0..b {
        let row = &mut ids[r * total..(r + 1) * total];
        row[pads[r]..p_len].copy_from_slice(prompts[r]);
        row[p_len..p_len + completions[r].len()].copy_from_slice(completions[r]);
        targets[r * t..r * t + completions[r].len()].copy_from_slice(completions[r]);
        mask[r * t..r * t + completions[r].len()].fill(1.0);
    }
    let ids = Tensor::from_vec(ids, (b, total), device)?;
    let pos = positions(&pads, 0, total, device)?;
    let attn = causal_mask(&pads, 0, total, device)?;
    let hidden = model.forward(&ids, &pos, Some(&attn), None, mode)?;
    // Position p_len-1+k predicts completion token k.
    let h = hidden.narrow(1, p_len - 1, t)?.reshape((b * t, ()))?;
    let targets = Tensor::from_vec(targets, b * t, device)?;
    let stats = match mode {
        Mode::Train => token_logprobs(
            &h,
            &model.lm_head,
            &targets,
            temperature,
            with_entropy,
            DEFAULT_CHUNK_ROWS,
        )?,
        Mode::Infer => token_logprobs_no_grad(
            &h,
            &model.lm_head,
            &targets,
            temperature,
            with_entropy,
            DEFAULT_CHUNK_ROWS,
        )?,
    };
    let lp = stats.logprobs.reshape((b, t))?;
    let mask = Tensor::from_vec(mask, (b, t), device)?.to_dtype(lp.dtype())?;
    Ok(CompletionScores {
        logprobs: (lp * &mask)?,
        entropy: stats.entropy.map(|e| e.reshape((b, t))).transpose()?,
        mask,
    })
}
