//! # r1-rewards
//!
//! Rule-based rewards for training language models the DeepSeek-R1 way (GRPO):
//! answer extraction, math answer equivalence, format/tag/language/length/repetition
//! rewards, sandboxed code execution, Countdown, weighted composition, and the
//! line-oriented JSONL drivers behind `r1 verify` and `r1 reward`.
//!
//! No tensor library: this crate builds and tests in seconds.

pub mod compose;
pub mod extract;
pub mod jsonl;
pub mod math;
mod reward;
pub mod rewards;
pub mod sandbox;
pub mod verify;

pub use compose::{
    build_reward, build_rewards, Component, CompositeReward, CompositeScore, RewardSpec,
    RewardsConfig, REWARD_NAMES,
};
pub use extract::{extract_answer, extract_reference, ExtractOptions, Extracted, Rule};
pub use jsonl::{reward_jsonl, verify_jsonl, RewardJsonlOptions, Summary};
pub use math::{equivalent, EquivOptions};
pub use reward::{RewardFn, RewardInput, Score};
pub use verify::{verify, Verdict, VerifyOptions};

/// First `n` characters of `s` (with `…` when cut), for short log reasons.
pub(crate) fn truncate_chars(s: &str, n: usize) -> String {
    let mut it = s.chars();
    let head: String = it.by_ref().take(n).collect();
    if it.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}
