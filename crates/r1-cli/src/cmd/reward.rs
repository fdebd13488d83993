//! `r1 reward`: score a JSONL file of completions with the configured reward functions.

use anyhow::{Context, Result};
use r1_rewards::{reward_jsonl, CompositeReward, RewardJsonlOptions, RewardsConfig};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// JSONL of completions (`prompt`, `completion`, `answer`/`solution`, ...); default stdin.
    #[arg(long)]
    input: Option<PathBuf>,
    /// TOML file with `[[rewards]]` tables (default: R1-Zero's accuracy + format).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Reward names to use instead of a config, comma separated (weight 1 each).
    #[arg(long)]
    rewards: Option<String>,
    /// Generation limit assumed by length-aware rewards when a line gives none.
    #[arg(long, default_value_t = 1024)]
    max_completion_tokens: usize,
}

pub fn run(a: Args) -> Result<bool> {
    let cfg = match (&a.config, &a.rewards) {
        (Some(p), _) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
            toml::from_str::<RewardsConfig>(&text).with_context(|| format!("{}", p.display()))?
        }
        (None, Some(names)) => {
            let toml_text: String = names
                .split(',')
                .map(|n| format!("[[rewards]]\nname = \"{}\"\n", n.trim()))
                .collect();
            toml::from_str(&toml_text).context("--rewards")?
        }
        (None, None) => RewardsConfig::r1_zero(),
    };
    let reward = CompositeReward::from_config(&cfg)?;
    let opts = RewardJsonlOptions {
        max_completion_tokens: a.max_completion_tokens,
    };
    let summary = reward_jsonl(
        super::verify::open_input(&a.input)?,
        std::io::stdout().lock(),
        &reward,
        &opts,
    )?;
    eprintln!(
        "scored {} lines: mean total {:.4}, {} errors",
        summary.lines,
        summary.total_sum / (summary.lines - summary.errors).max(1) as f64,
        summary.errors
    );
    Ok(summary.ok())
}
