//! Configuration and composition: a weighted sum of named rewards, every component
//! kept for logging.
//!
//! ```toml
//! [[rewards]]
//! name = "accuracy"
//! weight = 1.0
//! [rewards.extract]
//! fallback_last_number = false
//!
//! [[rewards]]
//! name = "format"
//! weight = 0.5
//! require_answer_tags = true
//! ```
//!
//! Options sit beside `name` and `weight` and are checked against the reward's
//! options struct (unknown options are errors, as are unknown reward names).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::rewards::{
    accuracy::Accuracy, code::Code, cosine::Cosine, countdown::Countdown, format::Format,
    language::LanguageConsistency, overlong::SoftOverlong, repetition::Repetition,
    tag_count::TagCount,
};
use crate::{RewardFn, RewardInput, Score};

/// Every reward name this crate provides.
pub const REWARD_NAMES: &[&str] = &[
    "accuracy",
    "format",
    "tag_count",
    "language_consistency",
    "cosine",
    "repetition",
    "soft_overlong",
    "code",
    "code_pass",
    "countdown",
];

/// One configured reward.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RewardSpec {
    /// One of [`REWARD_NAMES`].
    pub name: String,
    /// Weight in the total (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Name in logs when the same reward is used twice with different options.
    #[serde(default)]
    pub label: Option<String>,
    /// The reward's own options (fields of its options struct).
    #[serde(flatten)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

fn one() -> f64 {
    1.0
}

/// The reward section of a config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RewardsConfig {
    pub rewards: Vec<RewardSpec>,
}

impl RewardsConfig {
    /// R1-Zero's pair: accuracy + format, weight 1 each.
    pub fn r1_zero() -> Self {
        let spec = |n: &str| RewardSpec {
            name: n.into(),
            weight: 1.0,
            label: None,
            options: Default::default(),
        };
        Self {
            rewards: vec![spec("accuracy"), spec("format")],
        }
    }
}

fn opts<T: serde::de::DeserializeOwned>(spec: &RewardSpec) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(spec.options.clone()))
        .with_context(|| format!("options of reward '{}'", spec.name))
}

/// Builds one reward from its spec.
pub fn build_reward(spec: &RewardSpec) -> Result<Box<dyn RewardFn>> {
    Ok(match spec.name.as_str() {
        "accuracy" => Box::new(Accuracy { opts: opts(spec)? }),
        "format" => Box::new(Format { opts: opts(spec)? }),
        "tag_count" => Box::new(TagCount { opts: opts(spec)? }),
        "language_consistency" => Box::new(LanguageConsistency { opts: opts(spec)? }),
        "cosine" => Box::new(Cosine { opts: opts(spec)? }),
        "repetition" => {
            let o: crate::rewards::repetition::RepetitionOptions = opts(spec)?;
            if o.max_penalty > 0.0 {
                bail!(
                    "repetition: max_penalty must be <= 0, got {}",
                    o.max_penalty
                );
            }
            if o.ngram_size == 0 {
                bail!("repetition: ngram_size must be >= 1");
            }
            Box::new(Repetition { opts: o })
        }
        "soft_overlong" => Box::new(SoftOverlong { opts: opts(spec)? }),
        "code" => Box::new(Code {
            opts: opts(spec)?,
            pass_only: false,
        }),
        "code_pass" => Box::new(Code {
            opts: opts(spec)?,
            pass_only: true,
        }),
        "countdown" => Box::new(Countdown { opts: opts(spec)? }),
        other => bail!(
            "unknown reward '{other}' (known: {})",
            REWARD_NAMES.join(", ")
        ),
    })
}

/// Builds every configured reward with its weight. All unknown names are reported
/// together.
pub fn build_rewards(cfg: &RewardsConfig) -> Result<Vec<(Box<dyn RewardFn>, f64)>> {
    let unknown: Vec<&str> = cfg
        .rewards
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !REWARD_NAMES.contains(n))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "unknown reward name(s): {} (known: {})",
            unknown.join(", "),
            REWARD_NAMES.join(", ")
        );
    }
    if cfg.rewards.is_empty() {
        bail!("no rewards configured");
    }
    cfg.rewards
        .iter()
        .map(|s| {
            if !s.weight.is_finite() {
                bail!("reward '{}': weight must be finite", s.name);
            }
            Ok((build_reward(s)?, s.weight))
        })
        .collect()
}

/// One component of a composite score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    /// The reward's label (or name).
    pub name: String,
    pub weight: f64,
    pub score: Score,
}

/// A weighted total and every component, for logging.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompositeScore {
    pub total: f64,
    pub components: Vec<Component>,
}

/// A weighted sum of rewards. Thread-safe.
pub struct CompositeReward {
    parts: Vec<(String, Box<dyn RewardFn>, f64)>,
}

impl CompositeReward {
    /// Builds from a config (see [`build_rewards`] for the errors).
    pub fn from_config(cfg: &RewardsConfig) -> Result<Self> {
        let built = build_rewards(cfg)?;
        let parts = built
            .into_iter()
            .zip(&cfg.rewards)
            .map(|((f, w), spec)| {
                let name = spec.label.clone().unwrap_or_else(|| f.name().to_string());
                (name, f, w)
            })
            .collect();
        Ok(Self { parts })
    }

    /// Builds from already constructed rewards.
    pub fn new(parts: Vec<(Box<dyn RewardFn>, f64)>) -> Self {
        Self {
            parts: parts
                .into_iter()
                .map(|(f, w)| (f.name().to_string(), f, w))
                .collect(),
        }
    }

    /// Component names, in order (for log headers).
    pub fn names(&self) -> Vec<&str> {
        self.parts.iter().map(|(n, _, _)| n.as_str()).collect()
    }

    /// Scores one completion with every component.
    pub fn score(&self, input: &RewardInput) -> CompositeScore {
        let mut total = 0.0;
        let components = self
            .parts
            .iter()
            .map(|(name, f, w)| {
                let s = f.score(input);
                // A NaN from any component must not poison the advantage.
                let s = if s.value.is_finite() {
                    s
                } else {
                    Score::new(0.0, format!("non-finite value replaced by 0: {}", s.reason))
                };
                total += w * s.value;
                Component {
                    name: name.clone(),
                    weight: *w,
                    score: s,
                }
            })
            .collect();
        CompositeScore { total, components }
    }
}
