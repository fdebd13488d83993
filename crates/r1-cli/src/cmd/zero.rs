//! `r1 zero`: R1-Zero — GRPO with rule-based rewards straight on a model, on built-in
//! procedural tasks (offline) or any JSONL dataset. Writes metrics, sampled completions,
//! charts and resumable checkpoints to the output folder.

use crate::cmd::bench::peak_rss_mib;
use crate::run_config::{load_toml, Template};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use r1_metrics::{count_reflections, has_reflection, MetricsWriter, Sample, SamplesWriter};
use r1_model::Message;
use r1_rewards::{CompositeReward, RewardInput, RewardSpec, RewardsConfig};
use r1_rollout::{LocalEngine, RolloutEngine, SamplingParams};
use r1_tasks::{load_task, DataCursor, Example, TaskSpec};
use r1_train::checkpoint::{self, TrainerState};
use r1_train::grpo::{GrpoConfig, GrpoItem, GrpoTrainer};
use r1_train::Trainable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything `r1 zero` reads from its TOML file. See `configs/zero-*.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZeroConfig {
    /// A model folder, a .gguf file or a cache name (default: SmolLM2-135M-Instruct).
    pub model: Option<String>,
    /// `chat`: the model's chat template with `system_prompt`; `r1-zero`: the paper's
    /// plain-text template (for base models).
    pub template: Template,
    /// System message in `chat` mode (default: asks for <think>/<answer> tags).
    pub system_prompt: Option<String>,
    /// The data: `task = "arithmetic" | "countdown" | "linear" | "jsonl"` and its options.
    pub task: TaskSpec,
    /// GRPO hyper-parameters (TRL names).
    pub grpo: GrpoConfig,
    /// Reward functions and weights (`[[rewards]]` tables).
    pub rewards: Vec<RewardSpec>,
    /// Held-out evaluation.
    pub eval: EvalSettings,
    /// Train LoRA adapters instead of all weights (`[lora]`: r, lora_alpha,
    /// lora_dropout, target_modules). The saved model has the adapters merged.
    pub lora: Option<r1_train::LoraConfig>,
    /// `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// `f32`, `bf16`, `f16`.
    pub dtype: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSettings {
    /// Held-out prompts evaluated (at most the task's eval set).
    pub size: usize,
    /// Also measure accuracy of one sample per prompt at the training temperature.
    pub sampled: bool,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self {
            size: 50,
            sampled: true,
        }
    }
}

impl Default for ZeroConfig {
    fn default() -> Self {
        // Defaults chosen so SmolLM2-135M-Instruct gets reward from the start. Measured
        // starting accuracy (greedy / sampled at T 0.7): single-digit sums 0.30 / 0.25,
        // two-digit sums 0.05 / 0.05 — too little signal for groups of 4. The answer
        // counts wherever its last number is (the model rarely writes tags at first),
        // and the format reward teaches the tags on top.
        let rewards: RewardsConfig = toml::from_str(
            "[[rewards]]\nname = \"accuracy\"\nweight = 1.0\n[rewards.extract]\nfallback_last_number = true\n\
             [[rewards]]\nname = \"format\"\nweight = 0.5\n",
        )
        .expect("built-in rewards parse");
        let grpo = GrpoConfig {
            learning_rate: 2e-5,
            num_generations: 4,
            per_device_train_batch_size: 8,
            gradient_accumulation_steps: 2,
            temperature: 0.7,
            max_completion_length: 96,
            max_steps: 30,
            save_steps: 5,
            eval_steps: 10,
            ..Default::default()
        };
        Self {
            model: None,
            template: Template::Chat,
            system_prompt: None,
            task: TaskSpec::from_toml(
                "task = \"arithmetic\"\ndigits = 1\ntrain_size = 60\neval_size = 40",
            )
            .expect("built-in task parses"),
            grpo,
            rewards: rewards.rewards,
            eval: EvalSettings::default(),
            lora: None,
            device: "cpu".into(),
            dtype: "f32".into(),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// TOML config (see configs/); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    model: Option<String>,
    /// Output folder (metrics.jsonl, completions.jsonl, charts, checkpoint/).
    #[arg(long, default_value = "runs/zero")]
    output: PathBuf,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    #[arg(long)]
    max_steps: Option<usize>,
    #[arg(long)]
    learning_rate: Option<f64>,
    #[arg(long)]
    num_generations: Option<usize>,
    #[arg(long)]
    max_completion_length: Option<usize>,
    #[arg(long)]
    beta: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    save_steps: Option<usize>,
    #[arg(long)]
    eval_steps: Option<usize>,
    /// Built-in task: arithmetic, countdown or linear (default options).
    #[arg(long)]
    task: Option<String>,
    /// A JSONL dataset (`prompt`/`question` + `answer`/`solution`) instead of a built-in task.
    #[arg(long)]
    data: Option<PathBuf>,
    #[command(flatten)]
    dev: crate::device::DeviceOverride,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

const CONFIG_FILE: &str = "config.toml";

fn effective_config(a: &Args) -> Result<ZeroConfig> {
    let mut cfg: ZeroConfig = match (&a.resume, &a.config) {
        (Some(dir), _) => {
            // Say "nothing to resume" rather than "config.toml: not found".
            checkpoint::find(dir)?;
            load_toml(&dir.join(CONFIG_FILE))?
        }
        (None, Some(p)) => load_toml(p)?,
        (None, None) => ZeroConfig::default(),
    };
    if a.model.is_some() {
        cfg.model = a.model.clone();
    }
    a.dev.apply(&mut cfg.device, &mut cfg.dtype);
    let g = &mut cfg.grpo;
    if let Some(v) = a.max_steps {
        g.max_steps = v;
    }
    if let Some(v) = a.learning_rate {
        g.learning_rate = v;
    }
    if let Some(v) = a.num_generations {
        g.num_generations = v;
    }
    if let Some(v) = a.max_completion_length {
        g.max_completion_length = v;
    }
    if let Some(v) = a.beta {
        g.beta = v;
    }
    if let Some(v) = a.seed {
        g.seed = v;
    }
    if let Some(v) = a.save_steps {
        g.save_steps = v;
    }
    if let Some(v) = a.eval_steps {
        g.eval_steps = v;
    }
    if let Some(t) = &a.task {
        cfg.task = TaskSpec::from_toml(&format!("task = \"{t}\""))?;
    }
    if let Some(d) = &a.data {
        cfg.task = TaskSpec::from_toml(&format!(
            "task = \"jsonl\"\npath = {:?}",
            d.display().to_string()
        ))?;
    }
    cfg.grpo.validate()?;
    if let Some(l) = &cfg.lora {
        l.validate()?;
    }
    Ok(cfg)
}

/// The text a prompt becomes for the model.
pub fn render_prompt(
    ex: &Example,
    template: Template,
    system: &str,
    tok: &r1_model::Tokenizer,
) -> Result<String> {
    match template {
        Template::R1Zero => Ok(r1_tasks::r1_zero_prompt(&ex.question)),
        Template::Raw => Ok(ex.question.clone()),
        Template::Chat => {
            let mut msgs = vec![Message::new("system", system)];
            match &ex.messages {
                Some(m) => msgs.extend(m.iter().map(|(r, c)| Message::new(r, c))),
                None => msgs.push(Message::new("user", &ex.question)),
            }
            tok.apply_chat_template(&msgs, true)
        }
    }
}

/// The correctness reward among the configured ones (for accuracy and evaluation).
fn correctness_spec(specs: &[RewardSpec]) -> RewardSpec {
    specs
        .iter()
        .find(|s| ["accuracy", "countdown", "code_pass", "code"].contains(&s.name.as_str()))
        .cloned()
        .unwrap_or_else(|| RewardsConfig::r1_zero().rewards[0].clone())
}

struct Evaluator<'a> {
    items: Vec<GrpoItem>,
    correct: CompositeReward,
    cfg: &'a ZeroConfig,
}

impl Evaluator<'_> {
    /// Greedy (and sampled) accuracy on the held-out prompts.
    fn run(&self, policy: &Trainable, step: usize) -> Result<BTreeMap<String, f64>> {
        let model = policy.infer_model()?;
        let tok = &policy.tokenizer;
        let prompts: Vec<Vec<u32>> = self
            .items
            .iter()
            .map(|it| tok.encode(&it.prompt, false))
            .collect::<Result<_>>()?;
        let mut engine = LocalEngine {
            model: &model,
            tokenizer: tok,
            on_tokens: None,
        };
        let mut out = BTreeMap::new();
        let mut modes = vec![("greedy", 0.0)];
        if self.cfg.eval.sampled {
            modes.push(("sampled", self.cfg.grpo.temperature));
        }
        for (name, temperature) in modes {
            let p = SamplingParams {
                temperature,
                top_p: self.cfg.grpo.top_p,
                max_new_tokens: self.cfg.grpo.max_completion_length,
                seed: 7_000_000 + step as u64,
                ..Default::default()
            };
            let mut correct = 0usize;
            let mut length = 0usize;
            for chunk in (0..prompts.len()).collect::<Vec<_>>().chunks(32) {
                let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
                let res = engine.generate(&batch, 1, &p)?;
                for (&i, group) in chunk.iter().zip(res) {
                    let c = &group[0];
                    let it = &self.items[i];
                    let s = self.correct.score(&RewardInput {
                        prompt: &it.question,
                        completion: &c.text,
                        answer: it.answer.as_deref(),
                        completion_tokens: c.token_ids.len(),
                        max_completion_tokens: p.max_new_tokens,
                        truncated: c.finish_reason == r1_rollout::FinishReason::Length,
                        extra: &it.extra,
                    });
                    correct += (s.total >= 1.0) as usize;
                    length += c.token_ids.len();
                }
            }
            let n = prompts.len().max(1) as f64;
            out.insert(format!("eval/accuracy_{name}"), correct as f64 / n);
            out.insert(format!("eval/mean_length_{name}"), length as f64 / n);
        }
        Ok(out)
    }
}

fn to_item(
    ex: &Example,
    cfg: &ZeroConfig,
    system: &str,
    tok: &r1_model::Tokenizer,
) -> Result<GrpoItem> {
    Ok(GrpoItem {
        prompt: render_prompt(ex, cfg.template, system, tok)?,
        question: ex.question.clone(),
        answer: Some(ex.answer.clone()),
        extra: ex.extra.clone(),
    })
}

pub fn run(a: Args) -> Result<()> {
    let cfg = effective_config(&a)?;
    if a.print_config {
        print!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    let dir = a.resume.clone().unwrap_or_else(|| a.output.clone());
    train(cfg, &dir, a.resume.is_some())
}

/// What a caller (`r1 pipeline`) may put in place of the config's own choices.
#[derive(Default)]
pub struct Overrides {
    /// Rewards instead of the configured `[[rewards]]` (e.g. R1 stage 4's routing).
    pub rewards: Option<CompositeReward>,
    /// Train/eval examples instead of loading `[task]`.
    pub data: Option<r1_tasks::TaskData>,
}

/// Trains (or, with `resume`, continues) the run in `dir` with `cfg`.
pub fn train(cfg: ZeroConfig, dir: &Path, resume: bool) -> Result<()> {
    train_with(cfg, dir, resume, Overrides::default())
}

/// [`train`] with [`Overrides`].
pub fn train_with(cfg: ZeroConfig, dir: &Path, resume: bool, ov: Overrides) -> Result<()> {
    let dir = dir.to_path_buf();
    // A device or dtype this build cannot use fails before the output folder exists.
    let (device, dtype) = crate::device::from_config(&cfg.device, &cfg.dtype)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    // Model: the checkpoint when resuming, else the configured one.
    let (lm, state) = match resume.then_some(&dir) {
        Some(d) => {
            let (lm, ckpt, state) =
                checkpoint::resume(d, cfg.model.as_deref(), cfg.lora.is_some(), &device, dtype)?;
            crate::run_config::save_toml(&dir.join(CONFIG_FILE), &cfg)?;
            (lm, Some((ckpt, state)))
        }
        None => {
            if dir.join("checkpoint").exists() {
                bail!(
                    "{}: already holds a run; use --resume {} to continue it, or another --output",
                    dir.display(),
                    dir.display()
                );
            }
            crate::run_config::save_toml(&dir.join(CONFIG_FILE), &cfg)?;
            (r1_model::load(cfg.model.as_deref(), &device, dtype)?, None)
        }
    };
    let data = match ov.data {
        Some(d) => d,
        None => load_task(&cfg.task, cfg.grpo.seed)?,
    };
    let system = cfg
        .system_prompt
        .clone()
        .unwrap_or_else(|| r1_tasks::DEFAULT_SYSTEM_PROMPT.to_string());
    if cfg.template == Template::Chat && !lm.tokenizer.has_chat_template() {
        bail!(
            "template = \"chat\" but {} has no chat template; use template = \"r1-zero\"",
            lm.source.display()
        );
    }
    let rewards = match ov.rewards {
        Some(r) => r,
        None => CompositeReward::from_config(&RewardsConfig {
            rewards: cfg.rewards.clone(),
        })?,
    };
    let correct = CompositeReward::from_config(&RewardsConfig {
        rewards: vec![RewardSpec {
            weight: 1.0,
            ..correctness_spec(&cfg.rewards)
        }],
    })?;
    let policy = match &cfg.lora {
        Some(l) => Trainable::new_lora(lm, l.clone(), cfg.grpo.seed)?,
        None => Trainable::new(lm)?,
    };
    if let Some((ckpt, _)) = &state {
        if cfg.lora.is_some() {
            checkpoint::load_adapters(ckpt, &policy)?;
        }
    }
    let tok = policy.tokenizer.clone();
    let eval_items: Vec<GrpoItem> = data
        .eval
        .iter()
        .take(cfg.eval.size)
        .map(|ex| to_item(ex, &cfg, &system, &tok))
        .collect::<Result<_>>()?;
    let evaluator = Evaluator {
        items: eval_items,
        correct,
        cfg: &cfg,
    };
    let mut trainer = GrpoTrainer::new(cfg.grpo.clone(), policy, rewards)?;
    let mut cursor = DataCursor::new(cfg.grpo.seed);
    let resume_step = match &state {
        Some((ckpt, st)) => {
            checkpoint::load_optimizer(ckpt, &trainer.policy, &mut trainer.optimizer, st)?;
            trainer.step = st.step;
            trainer.updates = st.updates;
            cursor = serde_json::from_value(st.extra["cursor"].clone())
                .context("checkpoint state: data cursor")?;
            eprintln!("r1: resuming {} at step {}", dir.display(), st.step);
            Some(st.step as u64 + 1)
        }
        None => None,
    };
    let mut metrics = MetricsWriter::open(&dir, resume_step)?;
    let mut samples = SamplesWriter::open(&dir, resume_step)?;
    let max_steps = cfg.grpo.max_steps;
    eprintln!(
        "r1 zero: {} parameters, task {} ({} train / {} eval), {} steps of {} prompts x {} samples -> {}",
        trainer.policy.num_parameters(),
        cfg.task.source.name(),
        data.train.len(),
        evaluator.items.len(),
        max_steps,
        cfg.grpo.generation_batch_size() / cfg.grpo.num_generations,
        cfg.grpo.num_generations,
        dir.display()
    );
    let start = std::time::Instant::now();
    if resume_step.is_none() {
        let e = evaluator.run(&trainer.policy, 0)?;
        eprintln!("step 0 eval: {}", fmt_eval(&e));
        metrics.log(0, e)?;
    }
    let bar = ProgressBar::new(max_steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:25} {pos}/{len} steps {elapsed}<{eta} {msg}").unwrap(),
    );
    bar.set_position(trainer.step as u64);
    while trainer.step < max_steps {
        let mut next = |n: usize| -> Vec<GrpoItem> {
            cursor
                .next_batch(&data.train, n)
                .into_iter()
                .filter_map(|ex| to_item(ex, &cfg, &system, &tok).ok())
                .collect()
        };
        let out = trainer.train_step(&mut next)?;
        let step = trainer.step;
        let mut row = out.metrics;
        let refl: Vec<usize> = out
            .samples
            .iter()
            .map(|s| count_reflections(&s.completion))
            .collect();
        let n = refl.len().max(1) as f64;
        row.insert(
            "reflection/mean".into(),
            refl.iter().sum::<usize>() as f64 / n,
        );
        row.insert(
            "reflection/frac".into(),
            out.samples
                .iter()
                .filter(|s| has_reflection(&s.completion))
                .count() as f64
                / n,
        );
        row.insert("memory/peak_rss_mib".into(), peak_rss_mib());
        if (cfg.grpo.eval_steps > 0 && step % cfg.grpo.eval_steps == 0) || step == max_steps {
            let e = evaluator.run(&trainer.policy, step)?;
            bar.println(format!("step {step} eval: {}", fmt_eval(&e)));
            row.extend(e);
        }
        metrics.log(step as u64, row.clone())?;
        let recs: Vec<Sample> = out
            .samples
            .iter()
            .map(|s| {
                Sample::new(
                    step as u64,
                    &s.question,
                    &s.completion,
                    s.answer.as_deref().unwrap_or(""),
                    s.reward,
                    s.rewards.clone(),
                )
            })
            .collect();
        samples.write_all(&recs)?;
        bar.set_message(format!(
            "reward {:.3} acc {:.3} len {:.0} {:.0} tok/s",
            row["reward"],
            row.get("accuracy").copied().unwrap_or(f64::NAN),
            row["completions/mean_length"],
            row["tokens_per_second"]
        ));
        bar.set_position(step as u64);
        if (cfg.grpo.save_steps > 0 && step % cfg.grpo.save_steps == 0) || step == max_steps {
            let st = TrainerState {
                step,
                updates: trainer.updates,
                adam_t: trainer.optimizer.t,
                extra: serde_json::json!({ "cursor": cursor }),
            };
            checkpoint::save(&dir, &trainer.policy, &trainer.optimizer, &st)?;
        }
    }
    bar.finish();
    match r1_metrics::plot_run(&dir) {
        Ok(files) => eprintln!(
            "charts: {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => eprintln!("warning: charts not written: {e:#}"),
    }
    eprintln!(
        "done in {:.1} s; final model in {}",
        start.elapsed().as_secs_f64(),
        checkpoint::checkpoint_path(&dir).join("model").display()
    );
    Ok(())
}

fn fmt_eval(e: &BTreeMap<String, f64>) -> String {
    e.iter()
        .map(|(k, v)| format!("{k} {v:.3}"))
        .collect::<Vec<_>>()
        .join("  ")
}
