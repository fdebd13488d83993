//! `r1 eval`: the paper's evaluation protocol on a JSONL benchmark — k samples per
//! question, pass@1 with a 95% interval, cons@k, unbiased pass@k.

use crate::device::DeviceArgs;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use r1_eval::output::{write_json, write_jsonl};
use r1_eval::{generate_all, score_question, summarize, Grader, Template};
use r1_rollout::{LocalEngine, SamplingParams};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// A model folder, a .gguf file or a cache name (default: SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<String>,
    /// Benchmark JSONL (`question`/`problem`/`prompt` + `answer`/`solution`; code
    /// problems carry `tests`).
    #[arg(long)]
    data: PathBuf,
    /// Samples per question (k).
    #[arg(long, default_value_t = 4)]
    samples: usize,
    #[arg(long, default_value_t = 0.6)]
    temperature: f64,
    #[arg(long, default_value_t = 0.95)]
    top_p: f64,
    #[arg(long, default_value_t = 512)]
    max_new_tokens: usize,
    /// One greedy sample per question (T = 0), overriding --samples and --temperature.
    #[arg(long)]
    greedy: bool,
    /// Folder for summary.json and questions.jsonl (default: eval-<data file stem>).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Only the first N questions.
    #[arg(long)]
    limit: Option<usize>,
    /// r1-zero, chat or raw.
    #[arg(long, default_value = "chat")]
    template: Template,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sequences sampled together (questions × samples per batch).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[command(flatten)]
    dev: DeviceArgs,
}

pub fn run(a: Args) -> Result<()> {
    let (k, temperature) = if a.greedy {
        (1, 0.0)
    } else {
        (a.samples, a.temperature)
    };
    check_sampling(k, temperature, a.top_p)?;
    // Read the data before loading the model: bad input fails in a second.
    let mut examples = r1_tasks::load_jsonl(&a.data)?;
    if let Some(n) = a.limit {
        if n == 0 {
            bail!("--limit must be at least 1");
        }
        examples.truncate(n);
    }
    let out_dir = a.output.clone().unwrap_or_else(|| default_dir(&a.data));
    let lm = r1_model::load(a.model.as_deref(), &a.dev.device()?, a.dev.dtype()?)?;
    let model = lm.model()?;
    let tok = &lm.tokenizer;
    let prompts = r1_eval::prompt::encode_all(tok, a.template, &examples)?;
    let params = SamplingParams {
        temperature,
        top_p: a.top_p,
        top_k: 0,
        max_new_tokens: a.max_new_tokens,
        min_new_tokens: 0,
        stop: vec![],
        seed: a.seed,
    };
    let bar = progress_bar(examples.len(), k, a.max_new_tokens);
    let on_tokens = |n: usize| bar.inc(n as u64);
    let mut engine = LocalEngine {
        model: &model,
        tokenizer: tok,
        on_tokens: Some(&on_tokens),
    };
    let started = Instant::now();
    let total = examples.len();
    let groups = generate_all(
        &mut engine,
        &prompts,
        k,
        &params,
        a.batch_size,
        &mut |done| bar.set_message(format!("{done}/{total} questions")),
    )?;
    bar.finish_and_clear();
    let grader = Grader::default();
    let results: Vec<_> = examples
        .iter()
        .zip(&groups)
        .map(|(ex, g)| score_question(ex, g, &grader))
        .collect();
    let secs = started.elapsed().as_secs_f64();
    let metrics = summarize(&results, k);
    let summary = serde_json::json!({
        "metrics": metrics,
        "model": lm.source,
        "data": a.data,
        "template": a.template,
        "temperature": temperature,
        "top_p": a.top_p,
        "max_new_tokens": a.max_new_tokens,
        "greedy": a.greedy,
        "seed": a.seed,
        "seconds": secs,
    });
    write_jsonl(&out_dir.join("questions.jsonl"), &results)?;
    write_json(&out_dir.join("summary.json"), &summary)?;
    if metrics.reference_errors > 0 {
        eprintln!(
            "warning: {} questions have an unusable reference (scored wrong); see {}",
            metrics.reference_errors,
            out_dir.join("questions.jsonl").display()
        );
    }
    println!("{}", metrics.line(secs));
    eprintln!("wrote {}", out_dir.display());
    Ok(())
}

/// Shared by `eval` and `sample`: the sampling flags make sense.
pub fn check_sampling(n: usize, temperature: f64, top_p: f64) -> Result<()> {
    if n == 0 {
        bail!("need at least one sample per question");
    }
    if !(top_p > 0.0 && top_p <= 1.0) {
        bail!("--top-p must be in (0, 1], got {top_p}");
    }
    if temperature < 0.0 || !temperature.is_finite() {
        bail!("--temperature must be >= 0, got {temperature}");
    }
    Ok(())
}

/// A token progress bar on stderr (hidden for tiny runs), as `generate` draws it.
pub fn progress_bar(questions: usize, k: usize, max_new_tokens: usize) -> ProgressBar {
    let total = (questions * k * max_new_tokens) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} tokens (max) {per_sec} {elapsed} {msg}")
            .unwrap(),
    );
    if total < 512 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

fn default_dir(data: &std::path::Path) -> PathBuf {
    let stem = data
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    PathBuf::from(format!("eval-{stem}"))
}
