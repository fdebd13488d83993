//! The `r1 pipeline` TOML file: the base model, the data of each stage and each
//! stage's trainer settings. See `configs/pipeline-tiny.toml`.

use crate::cmd::rejection::SampleSpec;
use crate::run_config::Template;
use r1_eval::FilterOptions;
use r1_judge::JudgeConfig;
use r1_rewards::{RewardSpec, RewardsConfig};
use r1_tasks::TaskSpec;
use r1_train::grpo::GrpoConfig;
use r1_train::reward_model::RewardModelConfig;
use r1_train::sft::SftConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// The base model (folder, .gguf or cache name; default SmolLM2-135M-Instruct).
    pub model: Option<String>,
    /// Prompt template for RL, sampling and evaluation: `chat`, `r1-zero`, `raw`.
    pub template: Template,
    /// Reasoning prompts with answers: stage 2's RL data, stage 3's sampling prompts
    /// and (without `[eval] data`) the evaluation set.
    pub task: TaskSpec,
    pub eval: EvalSpec,
    pub cold_start: ColdStart,
    pub reasoning_rl: ReasoningRl,
    pub rejection: Rejection,
    pub all_scenarios: AllScenarios,
    pub device: String,
    pub dtype: String,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            model: None,
            template: Template::Chat,
            task: TaskSpec::default(),
            eval: EvalSpec::default(),
            cold_start: ColdStart::default(),
            reasoning_rl: ReasoningRl::default(),
            rejection: Rejection::default(),
            all_scenarios: AllScenarios::default(),
            device: "cpu".into(),
            dtype: "f32".into(),
        }
    }
}

/// The evaluation run after every stage (and on the base model).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSpec {
    /// A JSONL benchmark; default: the task's eval set.
    pub data: Option<PathBuf>,
    /// Questions evaluated (at most).
    pub size: usize,
    /// Samples per question for pass@1 (0: greedy only).
    pub samples: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub max_new_tokens: usize,
    pub seed: u64,
}

impl Default for EvalSpec {
    fn default() -> Self {
        Self {
            data: None,
            size: 50,
            samples: 4,
            temperature: 0.6,
            top_p: 0.95,
            max_new_tokens: 256,
            seed: 0,
        }
    }
}

/// Stage 1: SFT on long, readable chains of thought.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ColdStart {
    /// The cold-start JSONL (required).
    pub data: Option<PathBuf>,
    /// Trainer settings (`model` and `data` are set by the pipeline).
    pub sft: SftConfig,
}

/// Stage 2: GRPO with accuracy + language consistency.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReasoningRl {
    pub grpo: GrpoConfig,
    /// Rewards; `language_consistency` is added when missing.
    pub rewards: Vec<RewardSpec>,
    /// Weight of the added `language_consistency` reward.
    pub language_consistency_weight: f64,
}

impl Default for ReasoningRl {
    fn default() -> Self {
        Self {
            grpo: GrpoConfig::default(),
            rewards: default_rewards(),
            language_consistency_weight: 0.1,
        }
    }
}

/// Accuracy (last number counts) + format, as `r1 zero`'s defaults.
pub fn default_rewards() -> Vec<RewardSpec> {
    let r: RewardsConfig = toml::from_str(
        "[[rewards]]\nname = \"accuracy\"\nweight = 1.0\n[rewards.extract]\nfallback_last_number = true\n\
         [[rewards]]\nname = \"format\"\nweight = 0.5\n",
    )
    .expect("built-in rewards parse");
    r.rewards
}

/// Stage 3: rejection sampling from the stage-2 model, then SFT of the base model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rejection {
    /// Prompts sampled (the first of the task's train set).
    pub prompts: usize,
    pub sampling: SampleSpec,
    pub filters: FilterOptions,
    /// General (non-reasoning) SFT data mixed in, JSONL.
    pub general_data: Option<PathBuf>,
    pub sft: SftConfig,
}

impl Default for Rejection {
    fn default() -> Self {
        Self {
            prompts: 100,
            sampling: SampleSpec::default(),
            filters: FilterOptions::default(),
            general_data: None,
            sft: SftConfig {
                num_train_epochs: 2.0,
                ..Default::default()
            },
        }
    }
}

/// Stage 4: RL mixing rule-checked prompts with preference-scored ones.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AllScenarios {
    /// JSONL of prompts; rows with an `answer` get the rule reward, rows without one
    /// the judge or reward model. Default: the task's train set (rule rewards only).
    pub data: Option<PathBuf>,
    pub grpo: GrpoConfig,
    /// Rewards added on top of the routed one (e.g. format).
    pub rewards: Vec<RewardSpec>,
    /// An OpenAI-compatible judge for prompts without an answer.
    pub judge: Option<JudgeConfig>,
    /// Or a local `*ForSequenceClassification` reward model.
    pub reward_model: Option<RewardModelConfig>,
}
