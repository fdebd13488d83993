//! `r1 generate`: sample completions for prompts given on the command line or in JSONL.

use crate::device::DeviceArgs;
use crate::prompts::{prompts_from_jsonl, Prompt};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use r1_rollout::{LocalEngine, RolloutEngine, SamplingParams};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A model folder, a .gguf file or a cache name (default: SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<String>,
    /// A prompt (repeatable).
    #[arg(long)]
    prompt: Vec<String>,
    /// JSONL file of prompts (`prompt`/`messages`/`question`/`problem` per line).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Feed prompts as they are, without the chat template.
    #[arg(long)]
    raw: bool,
    /// System message put before each chat prompt.
    #[arg(long)]
    system: Option<String>,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// 0 disables top-k.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Samples per prompt.
    #[arg(long, default_value_t = 1)]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when the completion contains this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Sequences sampled together (prompts × n per batch).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Write completions as JSONL here instead of printing them.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    dev: DeviceArgs,
}

pub fn run(a: Args) -> Result<()> {
    if !(0.0..=1.0).contains(&a.top_p) || a.top_p == 0.0 {
        bail!("--top-p must be in (0, 1], got {}", a.top_p);
    }
    if a.temperature < 0.0 || !a.temperature.is_finite() {
        bail!("--temperature must be >= 0, got {}", a.temperature);
    }
    if a.n == 0 {
        bail!("--n must be at least 1");
    }
    let mut prompts: Vec<Prompt> = a.prompt.iter().map(|p| Prompt::Text(p.clone())).collect();
    if let Some(path) = &a.input {
        prompts.extend(prompts_from_jsonl(path)?);
    }
    if prompts.is_empty() {
        bail!("no prompts: pass --prompt TEXT or --input FILE.jsonl");
    }
    let lm = r1_model::load(a.model.as_deref(), &a.dev.device()?, a.dev.dtype()?)?;
    let model = lm.model()?;
    let tok = &lm.tokenizer;
    let raw = a.raw || !tok.has_chat_template();
    let encoded: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            let text = p.render(tok, raw, a.system.as_deref())?;
            tok.encode(&text, raw)
        })
        .collect::<Result<_>>()?;
    let params = SamplingParams {
        temperature: a.temperature,
        top_p: a.top_p,
        top_k: a.top_k,
        max_new_tokens: a.max_new_tokens,
        min_new_tokens: 0,
        stop: a.stop.clone(),
        seed: a.seed,
    };
    let total = (prompts.len() * a.n * a.max_new_tokens) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} tokens (max) {per_sec} {elapsed}")
            .unwrap(),
    );
    if total < 512 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let on_tokens = |k: usize| bar.inc(k as u64);
    let mut engine = LocalEngine {
        model: &model,
        tokenizer: tok,
        on_tokens: Some(&on_tokens),
    };
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let per_batch = (a.batch_size / a.n).max(1);
    for (chunk_no, chunk) in encoded.chunks(per_batch).enumerate() {
        let mut p = params.clone();
        // Seeds are per (prompt, sample); offset by the batch so batches differ.
        p.seed = params.seed.wrapping_add(chunk_no as u64 * 1_000_003);
        let groups = engine.generate(chunk, a.n, &p)?;
        for (j, group) in groups.into_iter().enumerate() {
            let idx = chunk_no * per_batch + j;
            for c in group {
                if a.output.is_some() {
                    let line = serde_json::json!({
                        "prompt_index": idx,
                        "prompt": prompts[idx].display(),
                        "sample": c.sample_index,
                        "completion": c.text,
                        "finish_reason": c.finish_reason,
                        "num_tokens": c.token_ids.len(),
                        "sum_logprob": c.logprobs.iter().map(|&x| x as f64).sum::<f64>(),
                    });
                    writeln!(out, "{line}")?;
                } else if encoded.len() == 1 && a.n == 1 {
                    writeln!(out, "{}", c.text)?;
                } else {
                    writeln!(
                        out,
                        "=== prompt {idx} sample {} ({:?}) ===\n{}",
                        c.sample_index, c.finish_reason, c.text
                    )?;
                }
            }
        }
    }
    bar.finish_and_clear();
    out.flush()?;
    Ok(())
}
