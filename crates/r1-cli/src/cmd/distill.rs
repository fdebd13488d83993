//! `r1 distill`: R1's distillation in one resumable command. A teacher samples
//! answers to a prompt set, r1-eval's filters keep the correct and clean ones, and
//! the student is fine-tuned on them by the SFT trainer.
//!
//! Stages write into the output folder: `traces.jsonl` (every graded answer),
//! `kept.jsonl` (SFT records) with `kept.summary.json`, and `sft/`. A stage whose
//! output exists complete is skipped (files are written via temp + rename; `sft/` is
//! complete once it holds `done.json`, and is resumed from its checkpoint otherwise),
//! so re-running the same command continues where it stopped.

use super::rejection::{read_candidates, sample_candidates, write_kept, write_rows, SampleSpec};
use super::sft::{finished, DONE_FILE};
use crate::run_config::{load_toml, Template};
use anyhow::{Context, Result};
use r1_eval::output::write_json;
use r1_eval::{select, FilterOptions};
use r1_train::checkpoint;
use r1_train::sft::SftConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    /// The model that writes the traces (folder, .gguf or cache name).
    pub teacher: Option<String>,
    /// The model fine-tuned on them.
    pub student: Option<String>,
    /// Prompts with reference answers (JSONL, as for `r1 eval`).
    pub data: Option<PathBuf>,
    /// How the teacher's prompts are written: `chat`, `r1-zero` or `raw`.
    pub template: Template,
    /// Sampling (`n` answers per prompt, temperature, ...).
    pub sampling: SampleSpec,
    /// Which traces are kept.
    pub filters: FilterOptions,
    /// The student's SFT (its `model` and `data` are set by distill).
    pub sft: SftConfig,
    pub device: String,
    pub dtype: String,
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            teacher: None,
            student: None,
            data: None,
            template: Template::Chat,
            sampling: SampleSpec::default(),
            filters: FilterOptions::default(),
            sft: SftConfig {
                // The teacher's chat prompts carry this system message; the student
                // learns under the same one.
                system_prompt: Some(r1_tasks::DEFAULT_SYSTEM_PROMPT.into()),
                num_train_epochs: 2.0,
                ..Default::default()
            },
            device: "cpu".into(),
            dtype: "f32".into(),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// TOML config (see configs/distill-*.toml); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    teacher: Option<String>,
    #[arg(long)]
    student: Option<String>,
    /// Prompts with references (JSONL).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Answers sampled per prompt.
    #[arg(long)]
    n: Option<usize>,
    /// Output folder; run the same command again to resume.
    #[arg(long, default_value = "runs/distill")]
    output: PathBuf,
    /// SFT optimizer steps (-1: from the epochs).
    #[arg(long, allow_negative_numbers = true)]
    max_steps: Option<i64>,
    #[command(flatten)]
    dev: crate::device::DeviceOverride,
}

pub fn run(a: Args) -> Result<()> {
    let saved = a.output.join("config.toml");
    let mut cfg: DistillConfig = match (&a.config, saved.exists()) {
        (Some(p), _) => load_toml(p)?,
        (None, true) => load_toml(&saved)?,
        (None, false) => DistillConfig::default(),
    };
    if a.teacher.is_some() {
        cfg.teacher = a.teacher.clone();
    }
    if a.student.is_some() {
        cfg.student = a.student.clone();
    }
    if a.data.is_some() {
        cfg.data = a.data.clone();
    }
    if let Some(n) = a.n {
        cfg.sampling.n = n;
    }
    if let Some(s) = a.max_steps {
        cfg.sft.max_steps = s;
    }
    a.dev.apply(&mut cfg.device, &mut cfg.dtype);
    // A device or dtype this build cannot use fails before anything is written.
    let on = crate::device::from_config(&cfg.device, &cfg.dtype)?;
    std::fs::create_dir_all(&a.output).with_context(|| format!("{}", a.output.display()))?;
    crate::run_config::save_toml(&saved, &cfg)?;
    distill(&cfg, &a.output, on)
}

/// Fails before any work when an input the remaining stages need is missing or bad:
/// a missing student should not surface only after the teacher has sampled for hours.
fn check_inputs(cfg: &DistillConfig, sample: bool, fine_tune: bool) -> Result<()> {
    // `None` is the default model, installed on first use rather than here.
    let model = |role: &str, spec: &Option<String>| -> Result<()> {
        if let Some(s) = spec {
            r1_model::registry::resolve(Some(s)).with_context(|| format!("{role} model"))?;
        }
        Ok(())
    };
    if sample {
        model("teacher", &cfg.teacher)?;
        let data = cfg
            .data
            .as_ref()
            .context("no prompts: set `data` in the config or pass --data")?;
        r1_tasks::load_jsonl(data)?;
    }
    if fine_tune {
        model("student", &cfg.student)?;
        cfg.sft.validate().context("[sft]")?;
    }
    Ok(())
}

/// Runs the stages whose output is missing, on `dev` in `dtype` (parsed from the
/// config's keys by the caller).
pub fn distill(
    cfg: &DistillConfig,
    dir: &Path,
    (dev, dtype): (candle_core::Device, candle_core::DType),
) -> Result<()> {
    let traces = dir.join("traces.jsonl");
    let kept_path = dir.join("kept.jsonl");
    let sft_dir = dir.join("sft");
    check_inputs(cfg, !traces.exists(), finished(&sft_dir).is_none())?;
    if !traces.exists() {
        let data = cfg
            .data
            .clone()
            .context("no prompts: set `data` in the config or pass --data")?;
        let examples = r1_tasks::load_jsonl(&data)?;
        let teacher =
            r1_model::load(cfg.teacher.as_deref(), &dev, dtype).context("teacher model")?;
        eprintln!(
            "distill 1/3: {} samples {} answers to each of {} prompts",
            teacher.source.display(),
            cfg.sampling.n,
            examples.len()
        );
        let t = std::time::Instant::now();
        let all = sample_candidates(&teacher, &examples, cfg.template.into(), &cfg.sampling)?;
        write_rows(&traces, &all)?;
        eprintln!(
            "wrote {} ({:.1} s)",
            traces.display(),
            t.elapsed().as_secs_f64()
        );
    } else {
        eprintln!("distill 1/3: {} exists, skipped", traces.display());
    }
    if !kept_path.exists() {
        let all = read_candidates(&traces)?;
        let (kept, counts) = select(all, &cfg.filters);
        write_json(
            &dir.join("kept.summary.json"),
            &serde_json::json!({"counts": counts, "filters": cfg.filters}),
        )?;
        let teacher = cfg.teacher.clone().unwrap_or_else(|| "default".into());
        write_kept(&kept_path, &kept, &teacher)?;
        eprintln!(
            "distill 2/3: kept {} of {} answers ({} correct) -> {}",
            counts.kept,
            counts.generated,
            counts.correct,
            kept_path.display()
        );
        if kept.is_empty() {
            anyhow::bail!(
                "distill: no answer passed the filters (see {}); nothing to fine-tune on",
                dir.join("kept.summary.json").display()
            );
        }
    } else {
        eprintln!("distill 2/3: {} exists, skipped", kept_path.display());
    }
    match finished(&sft_dir) {
        Some(o) => eprintln!(
            "distill 3/3: {} exists, skipped; student in {}",
            sft_dir.join(DONE_FILE).display(),
            o.model_dir.display()
        ),
        None => {
            let mut sft = cfg.sft.clone();
            sft.model = cfg.student.clone();
            sft.data = Some(kept_path.clone());
            sft.device = cfg.device.clone();
            sft.dtype = cfg.dtype.clone();
            let resume = checkpoint::find(&sft_dir).is_ok();
            eprintln!(
                "distill 3/3: fine-tuning the student on {}",
                kept_path.display()
            );
            let o = super::sft::train(&sft, &sft_dir, resume)?;
            eprintln!(
                "distill done: loss {:.4} -> {:.4}; student in {}",
                o.first_loss,
                o.last_loss,
                o.model_dir.display()
            );
        }
    }
    Ok(())
}
