//! `r1 sample`: rejection sampling (R1 stage 3) — n answers per prompt, keep the
//! verified-correct, readable ones, write SFT-ready JSONL.

use super::eval::{check_sampling, progress_bar};
use crate::device::DeviceArgs;
use anyhow::Result;
use r1_eval::output::{write_atomic, write_json};
use r1_eval::{candidates, generate_all, select, sft_record, FilterOptions, Grader, Template};
use r1_rollout::{LocalEngine, SamplingParams};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A model folder, a .gguf file or a cache name (default: SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<String>,
    /// Prompts with references (JSONL, as for `r1 eval`).
    #[arg(long)]
    data: PathBuf,
    /// Answers sampled per prompt.
    #[arg(long, default_value_t = 4)]
    n: usize,
    /// Keep at most this many answers per prompt (0: all that pass).
    #[arg(long, default_value_t = 0)]
    keep: usize,
    #[arg(long, default_value_t = 0.7)]
    temperature: f64,
    #[arg(long, default_value_t = 0.95)]
    top_p: f64,
    #[arg(long, default_value_t = 512)]
    max_new_tokens: usize,
    /// SFT JSONL written here; counts go to FILE with `.summary.json` appended.
    #[arg(long)]
    output: PathBuf,
    /// r1-zero, chat or raw.
    #[arg(long, default_value = "chat")]
    template: Template,
    /// Drop chains of thought whose language consistency is below this.
    #[arg(long, default_value_t = 0.95)]
    min_language_consistency: f64,
    /// Keep mixed-language chains of thought.
    #[arg(long)]
    no_language_filter: bool,
    /// Drop answers with a paragraph longer than this many characters.
    #[arg(long, default_value_t = 1500)]
    max_paragraph_chars: usize,
    /// Keep answers with long paragraphs.
    #[arg(long)]
    no_paragraph_filter: bool,
    /// Keep answers with code blocks in non-code tasks.
    #[arg(long)]
    no_code_block_filter: bool,
    /// Keep duplicate answers.
    #[arg(long)]
    no_dedup: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sequences sampled together (prompts × n per batch).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[command(flatten)]
    dev: DeviceArgs,
}

pub fn run(a: Args) -> Result<()> {
    check_sampling(a.n, a.temperature, a.top_p)?;
    let examples = r1_tasks::load_jsonl(&a.data)?;
    let lm = r1_model::load(a.model.as_deref(), &a.dev.device()?, a.dev.dtype()?)?;
    let model = lm.model()?;
    let tok = &lm.tokenizer;
    let prompts = r1_eval::prompt::encode_all(tok, a.template, &examples)?;
    let params = SamplingParams {
        temperature: a.temperature,
        top_p: a.top_p,
        top_k: 0,
        max_new_tokens: a.max_new_tokens,
        min_new_tokens: 0,
        stop: vec![],
        seed: a.seed,
    };
    let bar = progress_bar(examples.len(), a.n, a.max_new_tokens);
    let on_tokens = |n: usize| bar.inc(n as u64);
    let mut engine = LocalEngine {
        model: &model,
        tokenizer: tok,
        on_tokens: Some(&on_tokens),
    };
    let groups = generate_all(
        &mut engine,
        &prompts,
        a.n,
        &params,
        a.batch_size,
        &mut |_| {},
    )?;
    bar.finish_and_clear();
    let grader = Grader::default();
    let all: Vec<_> = examples
        .iter()
        .zip(&groups)
        .flat_map(|(ex, g)| candidates(ex, g, &grader))
        .collect();
    let opts = FilterOptions {
        require_correct: true,
        min_language_consistency: (!a.no_language_filter).then_some(a.min_language_consistency),
        max_paragraph_chars: (!a.no_paragraph_filter).then_some(a.max_paragraph_chars),
        drop_code_blocks: !a.no_code_block_filter,
        dedup: !a.no_dedup,
        keep: a.keep,
    };
    let (kept, counts) = select(all, &opts);
    let model_name = lm.source.display().to_string();
    let mut buf = Vec::new();
    for c in &kept {
        serde_json::to_writer(&mut buf, &sft_record(c, &model_name))?;
        buf.push(b'\n');
    }
    write_atomic(&a.output, &buf)?;
    let mut summary_path = a.output.clone().into_os_string();
    summary_path.push(".summary.json");
    write_json(
        &PathBuf::from(summary_path),
        &serde_json::json!({"counts": counts, "filters": opts, "model": model_name, "data": a.data}),
    )?;
    println!(
        "generated {}  correct {}  dropped: incorrect {}, mixed language {}, long paragraph {}, code block {}, duplicate {}, over --keep {}  kept {}",
        counts.generated,
        counts.correct,
        counts.incorrect,
        counts.mixed_language,
        counts.long_paragraph,
        counts.code_block,
        counts.duplicate,
        counts.over_keep,
        counts.kept
    );
    Ok(())
}
