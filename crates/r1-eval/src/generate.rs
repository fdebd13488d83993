//! Sampling `n` completions for every prompt through any [`RolloutEngine`], in
//! batches, so evaluation and rejection sampling work the same on the local model or
//! (later) a server, and can be tested with a scripted engine.

use anyhow::{bail, Result};
use r1_rollout::{Completion, RolloutEngine, SamplingParams};

/// Generates `n` completions for each of `prompts`, `batch_size` sequences at a time
/// (at least one prompt per batch). `on_batch(done)` is called after each batch with
/// the number of prompts finished so far. Returns completions per prompt, in order,
/// with `prompt_index` rewritten to the global index.
///
/// The engine seeds each sequence from (seed, index in batch, sample); the seed is
/// offset by the batch's first prompt so batches do not repeat each other's draws.
pub fn generate_all(
    engine: &mut dyn RolloutEngine,
    prompts: &[Vec<u32>],
    n: usize,
    params: &SamplingParams,
    batch_size: usize,
    on_batch: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<Completion>>> {
    if n == 0 {
        bail!("need at least one sample per prompt");
    }
    let per_batch = (batch_size / n).max(1);
    let mut out = Vec::with_capacity(prompts.len());
    for (b, chunk) in prompts.chunks(per_batch).enumerate() {
        let start = b * per_batch;
        let mut p = params.clone();
        p.seed = params.seed.wrapping_add(start as u64 * 1_000_003);
        let groups = engine.generate(chunk, n, &p)?;
        if groups.len() != chunk.len() {
            bail!(
                "engine returned {} groups for {} prompts",
                groups.len(),
                chunk.len()
            );
        }
        for (j, mut group) in groups.into_iter().enumerate() {
            group.sort_by_key(|c| c.sample_index);
            for c in &mut group {
                c.prompt_index = start + j;
            }
            out.push(group);
        }
        on_batch(out.len());
    }
    Ok(out)
}
