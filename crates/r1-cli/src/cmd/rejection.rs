//! Sampling graded candidates from a model and writing the stage files shared by
//! `r1 distill` and `r1 pipeline` (traces, kept SFT records). Every file is written
//! through a temporary file and a rename, so an existing file is always complete.

use anyhow::{Context, Result};
use r1_eval::output::write_atomic;
use r1_eval::{candidates, generate_all, sft_record, Candidate, Grader, Template};
use r1_model::LoadedModel;
use r1_rollout::{LocalEngine, SamplingParams};
use r1_tasks::Example;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How answers are sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SampleSpec {
    /// Answers per prompt.
    pub n: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub max_new_tokens: usize,
    /// Sequences generated together.
    pub batch_size: usize,
    pub seed: u64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        Self {
            n: 4,
            temperature: 0.7,
            top_p: 0.95,
            max_new_tokens: 512,
            batch_size: 32,
            seed: 0,
        }
    }
}

impl SampleSpec {
    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: 0,
            max_new_tokens: self.max_new_tokens,
            min_new_tokens: 0,
            stop: vec![],
            seed: self.seed,
        }
    }
}

/// `n` graded answers per example from `lm`.
pub fn sample_candidates(
    lm: &LoadedModel,
    examples: &[Example],
    template: Template,
    spec: &SampleSpec,
) -> Result<Vec<Candidate>> {
    super::eval::check_sampling(spec.n, spec.temperature, spec.top_p)?;
    let model = lm.model()?;
    let tok = &lm.tokenizer;
    let prompts: Vec<Vec<u32>> = examples
        .iter()
        .map(|ex| {
            r1_eval::prompt::encode(tok, template, ex)
                .map(|(_, ids)| ids)
                .with_context(|| format!("prompt for {}", ex.id))
        })
        .collect::<Result<_>>()?;
    let bar = super::eval::progress_bar(examples.len(), spec.n, spec.max_new_tokens);
    let on_tokens = |n: usize| bar.inc(n as u64);
    let mut engine = LocalEngine {
        model: &model,
        tokenizer: tok,
        on_tokens: Some(&on_tokens),
    };
    let groups = generate_all(
        &mut engine,
        &prompts,
        spec.n,
        &spec.params(),
        spec.batch_size,
        &mut |_| {},
    )?;
    bar.finish_and_clear();
    let grader = Grader::default();
    Ok(examples
        .iter()
        .zip(&groups)
        .flat_map(|(ex, g)| candidates(ex, g, &grader))
        .collect())
}

/// Writes rows as JSONL, atomically.
pub fn write_rows<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    r1_eval::output::write_jsonl(path, rows)
}

/// Reads the candidates of a traces file.
pub fn read_candidates(path: &Path) -> Result<Vec<Candidate>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// Writes kept candidates as SFT records (chat `messages` plus provenance).
pub fn write_kept(path: &Path, kept: &[Candidate], model: &str) -> Result<()> {
    let mut buf = Vec::new();
    for c in kept {
        serde_json::to_writer(&mut buf, &sft_record(c, model))?;
        buf.push(b'\n');
    }
    write_atomic(path, &buf)
}
