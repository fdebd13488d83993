//! Log-probabilities of completions given their prompts, in one forward pass: the
//! quantity GRPO's ratio and KL are built from. When rows share a prompt (a GRPO
//! group's samples), each distinct prompt is encoded once ([`crate::shared_prefix`]);
//! otherwise each row is `[left pad | prompt | completion | right pad]`.

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
/// Rows that share a prompt share its encoding.
pub fn completion_logprobs(
    model: &Model,
    prompts: &[&[u32]],
    completions: &[&[u32]],
    temperature: f64,
    mode: Mode,
    with_entropy: bool,
) -> Result<CompletionScores> {
    score(
        model,
        prompts,
        completions,
        temperature,
        mode,
        with_entropy,
        true,
    )
}

/// [`completion_logprobs`] with every row encoding its own prompt: the plain layout
/// the shared-prefix pass is checked against.
pub fn completion_logprobs_one_row_each(
    model: &Model,
    prompts: &[&[u32]],
    completions: &[&[u32]],
    temperature: f64,
    mode: Mode,
    with_entropy: bool,
) -> Result<CompletionScores> {
    score(
        model,
        prompts,
        completions,
        temperature,
        mode,
        with_entropy,
        false,
    )
}

fn score(
    model: &Model,
    prompts: &[&[u32]],
    completions: &[&[u32]],
    temperature: f64,
    mode: Mode,
    with_entropy: bool,
    share_prompts: bool,
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
    let t = completions
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut mask = vec![0f32; b * t];
    for r in 0..b {
        mask[r * t..r * t + completions[r].len()].fill(1.0);
    }
    let (distinct, group) = distinct_prompts(prompts);
    // The shared-prefix pass scores only real tokens (`slots` spreads them back over
    // `[b, t]`); the plain one scores every padded position.
    let any_tokens = completions.iter().any(|c| !c.is_empty());
    let (h, targets, slots) = if share_prompts && distinct.len() < b && any_tokens {
        let (h, real, slots) =
            shared_prefix_hidden(model, &distinct, &group, completions, t, mode)?;
        let n = real.len();
        (h, Tensor::from_vec(real, n, device)?, Some(slots))
    } else {
        let h = one_row_each_hidden(model, prompts, completions, t, mode)?;
        let mut targets = vec![0u32; b * t];
        for (r, c) in completions.iter().enumerate() {
            targets[r * t..r * t + c.len()].copy_from_slice(c);
        }
        (h, Tensor::from_vec(targets, b * t, device)?, None)
    };
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
    let spread = |x: Tensor| -> Result<Tensor> {
        let x = match &slots {
            Some(s) => {
                Tensor::cat(&[&x, &x.zeros_like()?.narrow(0, 0, 1)?], 0)?.index_select(s, 0)?
            }
            None => x,
        };
        Ok(x.reshape((b, t))?)
    };
    let lp = spread(stats.logprobs)?;
    let mask = Tensor::from_vec(mask, (b, t), device)?.to_dtype(lp.dtype())?;
    Ok(CompletionScores {
        logprobs: (lp * &mask)?,
        entropy: stats.entropy.map(spread).transpose()?,
        mask,
    })
}

/// The distinct prompts in order of first appearance, and which one each row has.
fn distinct_prompts<'a>(prompts: &[&'a [u32]]) -> (Vec<&'a [u32]>, Vec<usize>) {
    let mut distinct: Vec<&[u32]> = vec![];
    let group = prompts
        .iter()
        .map(|p| match distinct.iter().position(|d| d == p) {
            Some(g) => g,
            None => {
                distinct.push(p);
                distinct.len() - 1
            }
        })
        .collect();
    (distinct, group)
}

/// Hidden states `[b·t, h]` predicting each completion token, rows laid out as
/// `[left pad | prompt | completion | right pad]` with every prompt ending at the same
/// column.
fn one_row_each_hidden(
    model: &Model,
    prompts: &[&[u32]],
    completions: &[&[u32]],
    t: usize,
    mode: Mode,
) -> Result<Tensor> {
    let device = model.device();
    let b = prompts.len();
    let p_len = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    let total = p_len + t;
    let mut ids = vec![0u32; b * total];
    let pads: Vec<usize> = prompts.iter().map(|p| p_len - p.len()).collect();
    for r in 0..b {
        let row = &mut ids[r * total..(r + 1) * total];
        row[pads[r]..p_len].copy_from_slice(prompts[r]);
        row[p_len..p_len + completions[r].len()].copy_from_slice(completions[r]);
    }
    let ids = Tensor::from_vec(ids, (b, total), device)?;
    let pos = positions(&pads, 0, total, device)?;
    let attn = causal_mask(&pads, 0, total, device)?;
    let hidden = model.forward(&ids, &pos, Some(&attn), None, mode)?;
    // Position p_len-1+k predicts completion token k.
    Ok(hidden.narrow(1, p_len - 1, t)?.reshape((b * t, ()))?)
}

/// Hidden states `[n, h]` predicting the `n` real completion tokens, from a packed
/// pass that encodes each distinct prompt once (see [`crate::shared_prefix`]): token 0
/// of a completion is predicted by its prompt's last position, token k > 0 by the
/// completion's position k − 1. Also returns those tokens, and for each of the `[b, t]`
/// positions its index among them (`n` for padding).
fn shared_prefix_hidden(
    model: &Model,
    distinct: &[&[u32]],
    group: &[usize],
    completions: &[&[u32]],
    t: usize,
    mode: Mode,
) -> Result<(Tensor, Vec<u32>, Tensor)> {
    let device = model.device();
    let prompt_lens: Vec<usize> = distinct.iter().map(|p| p.len()).collect();
    let comp_lens: Vec<usize> = completions.iter().map(|c| c.len()).collect();
    let layout = model.shared_prefix(&prompt_lens, group, &comp_lens)?;
    let mut ids: Vec<u32> = Vec::with_capacity(layout.tokens());
    distinct.iter().for_each(|p| ids.extend_from_slice(p));
    completions.iter().for_each(|c| ids.extend_from_slice(c));
    let n_ids = ids.len();
    let ids = Tensor::from_vec(ids, (1, n_ids), device)?;
    let hidden = model
        .forward_shared_prefix(&ids, &layout, mode)?
        .squeeze(0)?;
    let n: usize = comp_lens.iter().sum();
    let (mut rows, mut real) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut slots = vec![n as u32; group.len() * t];
    for (r, (&g, c)) in group.iter().zip(completions).enumerate() {
        for (k, &tok) in c.iter().enumerate() {
            let row = match k {
                0 => layout.prompt_token(g, prompt_lens[g] - 1),
                _ => layout.completion_token(r, k - 1),
            };
            slots[r * t + k] = rows.len() as u32;
            rows.push(row as u32);
            real.push(tok);
        }
    }
    let rows = Tensor::from_vec(rows, n, device)?;
    let slots = Tensor::from_vec(slots, group.len() * t, device)?;
    Ok((hidden.index_select(&rows, 0)?, real, slots))
}
