//! `r1 sft`: supervised fine-tuning on JSONL (`prompt`/`completion` or chat
//! `messages`), loss on the completion tokens only. Writes `metrics.jsonl`, charts
//! and resumable checkpoints to the output folder, as `r1 zero` does. Full
//! fine-tuning, or LoRA with a `[lora]` table. Also the SFT stage of `r1 distill`
//! and `r1 pipeline` (see [`train`]).

use crate::cmd::bench::peak_rss_mib;
use crate::run_config::load_toml;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use r1_metrics::MetricsWriter;
use r1_train::checkpoint::{self, TrainerState};
use r1_train::sft::{load_sft_jsonl, sft_policy, tokenize_all, SftConfig, SftTemplate, SftTrainer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// TOML config (see configs/sft-*.toml); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    model: Option<String>,
    /// Training data (JSONL).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder (metrics.jsonl, charts, checkpoint/).
    #[arg(long, default_value = "runs/sft")]
    output: PathBuf,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Optimizer steps (-1: from --num-train-epochs).
    #[arg(long, allow_negative_numbers = true)]
    max_steps: Option<i64>,
    #[arg(long)]
    num_train_epochs: Option<f64>,
    #[arg(long)]
    learning_rate: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    save_steps: Option<usize>,
    #[command(flatten)]
    dev: crate::device::DeviceOverride,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

pub const CONFIG_FILE: &str = "config.toml";
/// Written last by [`train`]: the run is complete.
pub const DONE_FILE: &str = "done.json";

fn effective_config(a: &Args) -> Result<SftConfig> {
    let mut cfg: SftConfig = match (&a.resume, &a.config) {
        (Some(dir), _) => load_toml(&dir.join(CONFIG_FILE))?,
        (None, Some(p)) => load_toml(p)?,
        (None, None) => SftConfig::default(),
    };
    if a.model.is_some() {
        cfg.model = a.model.clone();
    }
    if a.data.is_some() {
        cfg.data = a.data.clone();
    }
    if let Some(v) = a.max_steps {
        cfg.max_steps = v;
    }
    if let Some(v) = a.num_train_epochs {
        cfg.num_train_epochs = v;
    }
    if let Some(v) = a.learning_rate {
        cfg.learning_rate = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.save_steps {
        cfg.save_steps = v;
    }
    a.dev.apply(&mut cfg.device, &mut cfg.dtype);
    cfg.validate()?;
    Ok(cfg)
}

pub fn run(a: Args) -> Result<()> {
    let cfg = effective_config(&a)?;
    if a.print_config {
        print!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    let dir = a.resume.clone().unwrap_or_else(|| a.output.clone());
    let out = train(&cfg, &dir, a.resume.is_some())?;
    eprintln!(
        "done in {:.1} s: loss {:.4} -> {:.4} over {} steps; final model in {}",
        out.seconds,
        out.first_loss,
        out.last_loss,
        out.steps,
        out.model_dir.display()
    );
    Ok(())
}

/// What a finished SFT run reports.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SftOutcome {
    pub model_dir: PathBuf,
    pub steps: usize,
    /// Training loss of the first and last logged steps.
    pub first_loss: f64,
    pub last_loss: f64,
    /// Wall time of this invocation.
    pub seconds: f64,
}

/// The outcome of a finished run in `dir`, if it finished.
pub fn finished(dir: &Path) -> Option<SftOutcome> {
    let text = std::fs::read_to_string(dir.join(DONE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Trains (or, with `resume`, continues) the SFT run in `dir`.
pub fn train(cfg: &SftConfig, dir: &Path, resume: bool) -> Result<SftOutcome> {
    cfg.validate()?;
    let data_path = cfg
        .data
        .clone()
        .context("no training data: set `data` in the config or pass --data")?;
    // Read the data before loading the model: a bad line fails in a second.
    let examples = load_sft_jsonl(&data_path)?;
    // A device or dtype this build cannot use fails before the output folder exists.
    let (device, dtype) = crate::device::from_config(&cfg.device, &cfg.dtype)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (lm, state) = if resume {
        let (lm, ckpt, st) = checkpoint::resume(
            dir,
            cfg.model.as_deref(),
            cfg.lora.is_some(),
            &device,
            dtype,
        )?;
        crate::run_config::save_toml(&dir.join(CONFIG_FILE), cfg)?;
        (lm, Some((ckpt, st)))
    } else {
        if dir.join(checkpoint::CHECKPOINT_DIR).exists() {
            bail!(
                "{}: already holds a run; use --resume {} to continue it, or another --output",
                dir.display(),
                dir.display()
            );
        }
        crate::run_config::save_toml(&dir.join(CONFIG_FILE), cfg)?;
        (r1_model::load(cfg.model.as_deref(), &device, dtype)?, None)
    };
    if cfg.template == SftTemplate::Chat && !lm.tokenizer.has_chat_template() {
        bail!(
            "template = \"chat\" but {} has no chat template; use template = \"raw\"",
            lm.source.display()
        );
    }
    let (data, dropped) = tokenize_all(
        &lm.tokenizer,
        &examples,
        cfg.template,
        cfg.system_prompt.as_deref(),
        cfg.max_length,
    )
    .with_context(|| format!("{}", data_path.display()))?;
    if dropped > 0 {
        eprintln!(
            "warning: {dropped} of {} examples skipped: the prompt alone reaches max_length = {}",
            examples.len(),
            cfg.max_length
        );
    }
    let policy = sft_policy(cfg, lm)?;
    let mut trainer = SftTrainer::new(cfg.clone(), policy, data)?;
    let resume_step = match &state {
        Some((ckpt, st)) => {
            if cfg.lora.is_some() {
                checkpoint::load_adapters(ckpt, &trainer.policy)?;
            }
            checkpoint::load_optimizer(ckpt, &trainer.policy, &mut trainer.optimizer, st)?;
            trainer.step = st.step;
            eprintln!("r1: resuming {} at step {}", dir.display(), st.step);
            Some(st.step as u64 + 1)
        }
        None => None,
    };
    let mut metrics = MetricsWriter::open(dir, resume_step)?;
    let total = trainer.total_steps;
    let what = match &cfg.lora {
        Some(l) => format!("LoRA r = {} on {}", l.r, l.target_modules.join(", ")),
        None => "full fine-tuning".into(),
    };
    eprintln!(
        "r1 sft: {} trainable parameters ({what}), {} examples, {} steps of {} x {} sequences -> {}",
        trainer.policy.num_parameters(),
        trainer.data.len(),
        total,
        cfg.per_device_train_batch_size,
        cfg.gradient_accumulation_steps,
        dir.display()
    );
    let start = Instant::now();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:25} {pos}/{len} steps {elapsed}<{eta} {msg}").unwrap(),
    );
    bar.set_position(trainer.step as u64);
    while trainer.step < total {
        let s = trainer.train_step()?;
        let step = trainer.step;
        let row: BTreeMap<String, f64> = [
            ("loss", s.loss),
            ("learning_rate", s.learning_rate),
            ("grad_norm", s.grad_norm),
            ("tokens_per_second", s.tokens_per_second),
            ("tokens", s.tokens as f64),
            ("epoch", s.epoch),
            ("memory/peak_rss_mib", peak_rss_mib()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        metrics.log(step as u64, row)?;
        if !s.applied {
            bar.println(format!("step {step}: non-finite gradient, update skipped"));
        }
        bar.set_message(format!(
            "loss {:.4} lr {:.2e} epoch {:.2} {:.0} tok/s",
            s.loss, s.learning_rate, s.epoch, s.tokens_per_second
        ));
        bar.set_position(step as u64);
        if (cfg.save_steps > 0 && step % cfg.save_steps == 0) || step == total {
            let st = TrainerState {
                step,
                updates: step,
                adam_t: trainer.optimizer.t,
                extra: serde_json::json!({}),
            };
            checkpoint::save(dir, &trainer.policy, &trainer.optimizer, &st)?;
        }
    }
    bar.finish();
    if let Err(e) = r1_metrics::plot_run(dir) {
        eprintln!("warning: charts not written: {e:#}");
    }
    let losses: Vec<f64> = r1_metrics::read_metrics(&dir.join(r1_metrics::METRICS_FILE))?
        .iter()
        .filter_map(|r| r.values.get("loss").copied())
        .collect();
    let out = SftOutcome {
        model_dir: checkpoint::checkpoint_path(dir).join("model"),
        steps: total,
        first_loss: losses.first().copied().unwrap_or(f64::NAN),
        last_loss: losses.last().copied().unwrap_or(f64::NAN),
        seconds: start.elapsed().as_secs_f64(),
    };
    r1_eval::output::write_json(&dir.join(DONE_FILE), &out)?;
    Ok(out)
}
