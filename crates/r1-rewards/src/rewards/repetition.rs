//! `repetition`: n-gram repetition penalty (open-r1's `repetition_penalty_reward`,
//! from "Demystifying Long Chain-of-Thought Reasoning in LLMs"):
//! `max_penalty × (1 − unique n-grams / total n-grams)`, so 0 for no repetition and
//! `max_penalty` (≤ 0) for a completion that is one n-gram repeated.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::{RewardFn, RewardInput, Score};

/// What an n-gram is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NgramUnit {
    /// Lower-cased whitespace-separated words (open-r1's default).
    #[default]
    Words,
    /// Characters, for languages written without spaces (Chinese, Japanese).
    Chars,
}

/// Options for [`Repetition`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RepetitionOptions {
    pub ngram_size: usize,
    /// Must be ≤ 0 (checked when the reward is built).
    pub max_penalty: f64,
    pub unit: NgramUnit,
}

impl Default for RepetitionOptions {
    fn default() -> Self {
        Self {
            ngram_size: 3,
            max_penalty: -1.0,
            unit: NgramUnit::Words,
        }
    }
}

/// The repetition penalty.
pub struct Repetition {
    pub opts: RepetitionOptions,
}

/// Fraction of repeated n-grams (1 − unique/total); 0 when there are none.
pub fn repeated_fraction(text: &str, n: usize, unit: NgramUnit) -> f64 {
    let lower = text.to_lowercase();
    let toks: Vec<&str> = match unit {
        NgramUnit::Words => lower.split_whitespace().collect(),
        NgramUnit::Chars => lower
            .char_indices()
            .filter(|(_, c)| !c.is_whitespace())
            .map(|(i, c)| &lower[i..i + c.len_utf8()])
            .collect(),
    };
    if n == 0 || toks.len() < n {
        return 0.0;
    }
    let total = toks.len() - n + 1;
    let unique: HashSet<&[&str]> = toks.windows(n).collect();
    1.0 - unique.len() as f64 / total as f64
}

impl RewardFn for Repetition {
    fn name(&self) -> &str {
        "repetition"
    }

    fn score(&self, input: &RewardInput) -> Score {
        let f = repeated_fraction(input.completion, self.opts.ngram_size, self.opts.unit);
        Score::new(
            f * self.opts.max_penalty,
            format!("{:.0}% repeated {}-grams", f * 100.0, self.opts.ngram_size),
        )
    }
}
