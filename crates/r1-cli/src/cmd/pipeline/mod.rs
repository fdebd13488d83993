//! `r1 pipeline`: DeepSeek-R1's four stages from one TOML file — cold-start SFT,
//! reasoning RL with the language-consistency reward, rejection sampling + SFT of the
//! base model, RL for all scenarios (rule rewards where an answer exists, a judge or
//! reward model elsewhere). Each stage writes `DIR/stageN-name/`, is evaluated, and
//! is skipped on re-runs once complete; `DIR/report.md` compares the stages.

pub mod config;
pub mod evaluate;
pub mod report;
pub mod stages;

use crate::run_config::load_toml;
use anyhow::{bail, Context, Result};
use config::PipelineConfig;
use stages::{need, Ctx, StageRecord, STAGES};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline TOML (see configs/pipeline-tiny.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder; run again with --resume DIR to continue.
    #[arg(long, default_value = "runs/pipeline")]
    output: PathBuf,
    /// Continue the run in this folder (its saved config.toml).
    #[arg(long)]
    resume: Option<PathBuf>,
    #[command(flatten)]
    dev: crate::device::DeviceOverride,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

pub fn run(a: Args) -> Result<()> {
    let (mut cfg, dir): (PipelineConfig, PathBuf) = match (&a.resume, &a.config) {
        (Some(d), _) => (load_toml(&d.join("config.toml"))?, d.clone()),
        (None, Some(p)) => (load_toml(p)?, a.output.clone()),
        (None, None) => bail!("r1 pipeline needs --config FILE (or --resume DIR)"),
    };
    a.dev.apply(&mut cfg.device, &mut cfg.dtype);
    if a.print_config {
        print!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    if a.resume.is_none() && dir.join("config.toml").exists() {
        bail!(
            "{}: already holds a pipeline run; use --resume {} to continue it, or another --output",
            dir.display(),
            dir.display()
        );
    }
    check_inputs(&cfg)?;
    // A device or dtype this build cannot use fails before anything is written.
    let on = crate::device::from_config(&cfg.device, &cfg.dtype)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    // Saved on resume too, so a run continued with --device/--dtype records them.
    crate::run_config::save_toml(&dir.join("config.toml"), &cfg)?;
    pipeline(&cfg, &dir, on)
}

/// Fails before any work when a configured input file is missing.
pub fn check_inputs(cfg: &PipelineConfig) -> Result<()> {
    match &cfg.cold_start.data {
        Some(p) => need("1 (cold start)", "data file", p)?,
        None => bail!("stage 1 (cold start): no `[cold_start] data` configured"),
    }
    if let Some(p) = &cfg.rejection.general_data {
        need("3 (rejection sampling)", "general_data file", p)?;
    }
    if let Some(p) = &cfg.all_scenarios.data {
        need("4 (all scenarios)", "data file", p)?;
    }
    if let Some(rm) = &cfg.all_scenarios.reward_model {
        need("4 (all scenarios)", "reward model", &rm.path)?;
    }
    if let Some(j) = &cfg.all_scenarios.judge {
        j.validate()
            .context("stage 4 (all scenarios): [all_scenarios.judge]")?;
    }
    if let Some(p) = &cfg.eval.data {
        need("evaluation", "data file", p)?;
    }
    cfg.cold_start.sft.validate().context("[cold_start.sft]")?;
    cfg.rejection.sft.validate().context("[rejection.sft]")?;
    cfg.reasoning_rl
        .grpo
        .validate()
        .context("[reasoning_rl.grpo]")?;
    cfg.all_scenarios
        .grpo
        .validate()
        .context("[all_scenarios.grpo]")?;
    Ok(())
}

/// Runs every stage not yet complete on `device` in `dtype` (parsed from the config's
/// keys by the caller), then writes the report.
pub fn pipeline(
    cfg: &PipelineConfig,
    dir: &Path,
    (device, dtype): (candle_core::Device, candle_core::DType),
) -> Result<()> {
    let task = r1_tasks::load_task(&cfg.task, cfg.reasoning_rl.grpo.seed)?;
    let mut eval = match &cfg.eval.data {
        Some(p) => r1_tasks::load_jsonl(p)?,
        None => task.eval.clone(),
    };
    eval.truncate(cfg.eval.size.max(1));
    let ctx = Ctx {
        cfg,
        dir: dir.to_path_buf(),
        device,
        dtype,
        task,
        eval,
    };
    let start = std::time::Instant::now();
    let mut records: Vec<StageRecord> = Vec::new();
    for i in 0..STAGES.len() {
        records.push(ctx.run(i)?);
        // The report is rewritten after every stage, so a stopped run has one too.
        r1_eval::output::write_atomic(
            &dir.join("report.md"),
            report::render(&records, dir).as_bytes(),
        )?;
    }
    eprintln!(
        "pipeline done in {:.1} s; report in {}",
        start.elapsed().as_secs_f64(),
        dir.join("report.md").display()
    );
    Ok(())
}
