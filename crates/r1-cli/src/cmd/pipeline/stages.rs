//! The four stages. Each writes into `DIR/stageN-name/`, takes the previous stage's
//! model as input, is evaluated, and ends by writing its marker `stage.json` (last,
//! atomically): a stage with a marker is complete and skipped on re-runs; one
//! without resumes from its own checkpoints.

use super::config::{default_rewards, PipelineConfig};
use super::evaluate::{evaluate, StageEval};
use crate::cmd::rejection::{read_candidates, sample_candidates, write_kept, write_rows};
use crate::cmd::zero::{self, EvalSettings, Overrides, ZeroConfig};
use anyhow::{anyhow, bail, Context, Result};
use r1_eval::output::{write_atomic, write_json};
use r1_rewards::{
    build_reward, build_rewards, CompositeReward, RewardFn, RewardInput, RewardSpec, RewardsConfig,
    Score,
};
use r1_tasks::{Example, TaskData};
use r1_train::checkpoint;
use r1_train::reward_model::RewardModel;
use r1_train::route_reward::RoutedReward;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const MARKER: &str = "stage.json";

/// What a completed stage recorded (its marker's content).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    pub name: String,
    /// The model this stage produced.
    pub model_dir: PathBuf,
    pub train_seconds: f64,
    pub eval: StageEval,
    /// Charts, relative to the run folder.
    pub charts: Vec<String>,
}

pub struct Ctx<'a> {
    pub cfg: &'a PipelineConfig,
    pub dir: PathBuf,
    pub device: candle_core::Device,
    pub dtype: candle_core::DType,
    pub task: TaskData,
    pub eval: Vec<Example>,
}

/// The stages in order: folder name and label.
pub const STAGES: [(&str, &str); 5] = [
    ("stage0-base", "base model"),
    ("stage1-cold-start", "1 cold-start SFT"),
    ("stage2-reasoning-rl", "2 reasoning RL"),
    ("stage3-rejection-sft", "3 rejection sampling + SFT"),
    ("stage4-all-scenarios", "4 RL, all scenarios"),
];

pub fn completed(dir: &Path) -> Option<StageRecord> {
    let text = std::fs::read_to_string(dir.join(MARKER)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The input file of stage `stage`, which must exist.
pub fn need(stage: &str, what: &str, path: &Path) -> Result<()> {
    if !path.exists() {
        bail!("stage {stage}: missing input {what} {}", path.display());
    }
    Ok(())
}

impl Ctx<'_> {
    fn stage_dir(&self, i: usize) -> PathBuf {
        self.dir.join(STAGES[i].0)
    }

    /// The model stage `i` produced (stage 0: the base model).
    pub fn model_of(&self, i: usize) -> Result<PathBuf> {
        if i == 0 {
            return r1_model::registry::resolve(self.cfg.model.as_deref());
        }
        let rec = completed(&self.stage_dir(i)).ok_or_else(|| {
            anyhow!(
                "stage {i} has not completed ({} missing)",
                self.stage_dir(i).join(MARKER).display()
            )
        })?;
        Ok(rec.model_dir)
    }

    /// Evaluates the stage's model, writes the marker, returns the record.
    fn finish(
        &self,
        i: usize,
        model_dir: PathBuf,
        train_seconds: f64,
        chart_dir: &Path,
    ) -> Result<StageRecord> {
        let lm = r1_model::load_path(&model_dir, &self.device, self.dtype)?;
        let eval = evaluate(&lm, &self.eval, self.cfg.template.into(), &self.cfg.eval)?;
        let charts = ["charts.png"]
            .iter()
            .map(|f| chart_dir.join(f))
            .filter(|p| p.exists())
            .filter_map(|p| {
                p.strip_prefix(&self.dir)
                    .ok()
                    .map(|r| r.display().to_string())
            })
            .collect();
        let rec = StageRecord {
            name: STAGES[i].1.into(),
            model_dir,
            train_seconds,
            eval,
            charts,
        };
        write_json(&self.stage_dir(i).join(MARKER), &rec)?;
        eprintln!(
            "pipeline: {} done: greedy accuracy {:.3}{} (train {:.1} s)",
            STAGES[i].1,
            rec.eval.greedy_accuracy,
            rec.eval
                .pass_at_1
                .map_or(String::new(), |p| format!(", pass@1 {p:.3}")),
            train_seconds
        );
        Ok(rec)
    }

    /// Runs stage `i` unless complete; returns its record.
    pub fn run(&self, i: usize) -> Result<StageRecord> {
        let sdir = self.stage_dir(i);
        if let Some(rec) = completed(&sdir) {
            eprintln!("pipeline: {} complete, skipped", STAGES[i].1);
            return Ok(rec);
        }
        std::fs::create_dir_all(&sdir).with_context(|| format!("{}", sdir.display()))?;
        eprintln!("pipeline: {} -> {}", STAGES[i].1, sdir.display());
        let start = Instant::now();
        let (model, charts) = match i {
            0 => (self.model_of(0)?, sdir.clone()),
            1 => (self.cold_start(&sdir)?, sdir.clone()),
            2 => (self.reasoning_rl(&sdir)?, sdir.clone()),
            3 => (self.rejection(&sdir)?, sdir.join("sft")),
            _ => (self.all_scenarios(&sdir)?, sdir.clone()),
        };
        self.finish(i, model, start.elapsed().as_secs_f64(), &charts)
    }

    fn sft(
        &self,
        mut sft: r1_train::sft::SftConfig,
        model: Option<String>,
        data: PathBuf,
        dir: &Path,
    ) -> Result<PathBuf> {
        sft.model = model;
        sft.data = Some(data);
        sft.device = self.cfg.device.clone();
        sft.dtype = self.cfg.dtype.clone();
        if sft.system_prompt.is_none() && self.cfg.template == crate::run_config::Template::Chat {
            // RL and evaluation prompt with this system message; SFT matches them.
            sft.system_prompt = Some(r1_tasks::DEFAULT_SYSTEM_PROMPT.into());
        }
        let resume = checkpoint::find(dir).is_ok();
        Ok(crate::cmd::sft::train(&sft, dir, resume)?.model_dir)
    }

    fn cold_start(&self, sdir: &Path) -> Result<PathBuf> {
        let data = self
            .cfg
            .cold_start
            .data
            .clone()
            .context("stage 1 (cold start): no `[cold_start] data` configured")?;
        need("1 (cold start)", "data file", &data)?;
        self.sft(
            self.cfg.cold_start.sft.clone(),
            self.cfg.model.clone(),
            data,
            sdir,
        )
    }

    fn zero_config(
        &self,
        model: &Path,
        grpo: &r1_train::grpo::GrpoConfig,
        rewards: Vec<RewardSpec>,
    ) -> ZeroConfig {
        ZeroConfig {
            model: Some(model.display().to_string()),
            template: self.cfg.template,
            system_prompt: None,
            task: self.cfg.task.clone(),
            grpo: grpo.clone(),
            rewards,
            eval: EvalSettings {
                size: self.cfg.eval.size,
                sampled: false,
            },
            lora: None,
            device: self.cfg.device.clone(),
            dtype: self.cfg.dtype.clone(),
        }
    }

    fn reasoning_rl(&self, sdir: &Path) -> Result<PathBuf> {
        let input = self.model_of(1)?;
        need("2 (reasoning RL)", "model", &input)?;
        let rl = &self.cfg.reasoning_rl;
        let mut rewards = if rl.rewards.is_empty() {
            default_rewards()
        } else {
            rl.rewards.clone()
        };
        if !rewards.iter().any(|r| r.name == "language_consistency") {
            rewards.push(RewardSpec {
                name: "language_consistency".into(),
                weight: rl.language_consistency_weight,
                label: None,
                options: Default::default(),
            });
        }
        let z = self.zero_config(&input, &rl.grpo, rewards);
        let resume = checkpoint::find(sdir).is_ok();
        zero::train_with(
            z,
            sdir,
            resume,
            Overrides {
                rewards: None,
                data: Some(self.task.clone()),
            },
        )?;
        Ok(checkpoint::checkpoint_path(sdir).join("model"))
    }

    fn rejection(&self, sdir: &Path) -> Result<PathBuf> {
        let input = self.model_of(2)?;
        need("3 (rejection sampling)", "model", &input)?;
        let rj = &self.cfg.rejection;
        let samples = sdir.join("samples.jsonl");
        let kept_path = sdir.join("kept.jsonl");
        let train = sdir.join("train.jsonl");
        if !samples.exists() {
            let lm = r1_model::load_path(&input, &self.device, self.dtype)?;
            let prompts: Vec<Example> = self.task.train.iter().take(rj.prompts).cloned().collect();
            let all = sample_candidates(&lm, &prompts, self.cfg.template.into(), &rj.sampling)?;
            write_rows(&samples, &all)?;
        }
        if !train.exists() {
            let (kept, counts) = r1_eval::select(read_candidates(&samples)?, &rj.filters);
            write_json(&sdir.join("kept.summary.json"), &counts)?;
            write_kept(&kept_path, &kept, &input.display().to_string())?;
            eprintln!(
                "pipeline: kept {} of {} sampled answers",
                counts.kept, counts.generated
            );
            let mut buf = std::fs::read(&kept_path)?;
            if let Some(g) = &rj.general_data {
                need("3 (rejection sampling)", "general_data file", g)?;
                buf.extend(std::fs::read(g).with_context(|| format!("{}", g.display()))?);
                if !buf.ends_with(b"\n") {
                    buf.push(b'\n');
                }
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                bail!(
                    "stage 3 (rejection sampling): no sample passed the filters and no general_data is configured; nothing to fine-tune on (see {})",
                    sdir.join("kept.summary.json").display()
                );
            }
            write_atomic(&train, &buf)?;
        }
        // R1 fine-tunes the *base* model on the kept samples.
        self.sft(
            rj.sft.clone(),
            self.cfg.model.clone(),
            train,
            &sdir.join("sft"),
        )
    }

    fn all_scenarios(&self, sdir: &Path) -> Result<PathBuf> {
        let input = self.model_of(3)?;
        need("4 (all scenarios)", "model", &input)?;
        let al = &self.cfg.all_scenarios;
        let train = match &al.data {
            Some(p) => {
                need("4 (all scenarios)", "data file", p)?;
                load_mixed(p)?
            }
            None => self.task.train.clone(),
        };
        let open = train.iter().filter(|e| e.answer.trim().is_empty()).count();
        let preference: Box<dyn RewardFn> = match (&al.judge, &al.reward_model) {
            (Some(j), _) => Box::new(r1_judge::Judge::new(j.clone())?),
            (None, Some(rm)) => {
                need("4 (all scenarios)", "reward model", &rm.path)?;
                Box::new(RewardModel::load(rm, &self.device)?)
            }
            (None, None) if open > 0 => bail!(
                "stage 4 (all scenarios): {open} prompts have no answer; configure [all_scenarios.judge] or [all_scenarios.reward_model]"
            ),
            (None, None) => Box::new(NoPreference),
        };
        let correctness = self
            .cfg
            .reasoning_rl
            .rewards
            .iter()
            .chain(default_rewards().iter())
            .find(|s| ["accuracy", "countdown", "code", "code_pass"].contains(&s.name.as_str()))
            .cloned()
            .expect("default rewards hold accuracy");
        let mut parts: Vec<(Box<dyn RewardFn>, f64)> = vec![(
            Box::new(RoutedReward {
                verifiable: build_reward(&correctness)?,
                preference,
            }),
            1.0,
        )];
        if !al.rewards.is_empty() {
            parts.extend(build_rewards(&RewardsConfig {
                rewards: al.rewards.clone(),
            })?);
        }
        let z = self.zero_config(&input, &al.grpo, vec![correctness]);
        let resume = checkpoint::find(sdir).is_ok();
        let data = TaskData {
            train,
            eval: self.eval.clone(),
        };
        zero::train_with(
            z,
            sdir,
            resume,
            Overrides {
                rewards: Some(CompositeReward::new(parts)),
                data: Some(data),
            },
        )?;
        Ok(checkpoint::checkpoint_path(sdir).join("model"))
    }
}

/// Scores 0: the preference side when every prompt has an answer.
struct NoPreference;

impl RewardFn for NoPreference {
    fn name(&self) -> &str {
        "no_preference"
    }
    fn score(&self, _: &RewardInput) -> Score {
        Score::new(0.0, "no judge or reward model configured")
    }
}

/// Stage 4's prompts: JSONL as for `r1 eval`, but the answer column is optional
/// (rows without one are scored by the preference reward).
pub fn load_mixed(path: &Path) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |e: anyhow::Error| anyhow!("{}:{}: {e}", path.display(), i + 1);
        let mut v: serde_json::Value = serde_json::from_str(line).map_err(|e| at(e.into()))?;
        if let Some(o) = v.as_object_mut() {
            if !["answer", "solution", "reference"]
                .iter()
                .any(|k| o.contains_key(*k))
            {
                o.insert("answer".into(), "".into());
            }
        }
        out.push(r1_tasks::jsonl::parse_line(&v.to_string(), &stem, i + 1).map_err(at)?);
    }
    if out.is_empty() {
        bail!("{}: dataset has no examples", path.display());
    }
    Ok(out)
}
