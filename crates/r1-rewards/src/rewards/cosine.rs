//! `cosine`: length-scaled correctness reward (open-r1's `cosine_scaled_reward`, from
//! "Demystifying Long Chain-of-Thought Reasoning in LLMs"). With progress
//! p = min(L, L_max) / L_max in tokens:
//!
//! `r = min + ½ (max − min)(1 + cos(π p))`
//!
//! where (min, max) = (min_value_correct, max_value_correct) for a correct answer,
//! so shorter correct answers earn more, and (max_value_wrong, min_value_wrong) for
//! a wrong one, so a wrong answer is penalised less the longer it thought.

use serde::{Deserialize, Serialize};

use crate::verify::{verify, VerifyOptions};
use crate::{RewardFn, RewardInput, Score};

/// Options for [`Cosine`] (defaults are open-r1's).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CosineOptions {
    pub min_value_wrong: f64,
    pub max_value_wrong: f64,
    pub min_value_correct: f64,
    pub max_value_correct: f64,
    /// L_max in tokens; `None` uses the input's `max_completion_tokens`.
    pub max_len: Option<usize>,
    pub extract: crate::ExtractOptions,
    pub equiv: crate::EquivOptions,
}

impl Default for CosineOptions {
    fn default() -> Self {
        Self {
            min_value_wrong: -1.0,
            max_value_wrong: -0.5,
            min_value_correct: 0.5,
            max_value_correct: 1.0,
            max_len: None,
            extract: Default::default(),
            equiv: Default::default(),
        }
    }
}

/// The cosine-scaled reward.
pub struct Cosine {
    pub opts: CosineOptions,
}

/// The schedule itself, exposed for tests and plots.
pub fn cosine_scaled(correct: bool, len: usize, max_len: usize, o: &CosineOptions) -> f64 {
    let p = len.min(max_len) as f64 / max_len.max(1) as f64;
    let cos = (p * std::f64::consts::PI).cos();
    let (lo, hi) = if correct {
        (o.min_value_correct, o.max_value_correct)
    } else {
        (o.max_value_wrong, o.min_value_wrong)
    };
    lo + 0.5 * (hi - lo) * (1.0 + cos)
}

impl RewardFn for Cosine {
    fn name(&self) -> &str {
        "cosine"
    }

    fn score(&self, input: &RewardInput) -> Score {
        let Some(gold) = input.answer else {
            return Score::new(0.0, "error: no reference answer");
        };
        let max_len = self.opts.max_len.unwrap_or(input.max_completion_tokens);
        if max_len == 0 {
            return Score::new(0.0, "error: no max length configured or given");
        }
        let vo = VerifyOptions {
            extract: self.opts.extract.clone(),
            equiv: self.opts.equiv.clone(),
        };
        let v = verify(input.completion, gold, &vo);
        if let Some(e) = v.error {
            return Score::new(0.0, format!("error: {e}"));
        }
        let r = cosine_scaled(v.correct, input.completion_tokens, max_len, &self.opts);
        Score::new(
            r,
            format!(
                "{} at {}/{} tokens",
                if v.correct { "correct" } else { "wrong" },
                input.completion_tokens,
                max_len
            ),
        )
    }
}
