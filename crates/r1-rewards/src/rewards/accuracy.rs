//! `accuracy`: 1 if the extracted answer equals the reference, else 0 (R1's
//! rule-based accuracy reward for math).

use crate::verify::{verify, VerifyOptions};
use crate::{RewardFn, RewardInput, Score};

/// Scores math answers against `RewardInput::answer`.
pub struct Accuracy {
    pub opts: VerifyOptions,
}

impl RewardFn for Accuracy {
    fn name(&self) -> &str {
        "accuracy"
    }

    fn score(&self, input: &RewardInput) -> Score {
        let Some(gold) = input.answer else {
            return Score::new(0.0, "error: no reference answer");
        };
        let v = verify(input.completion, gold, &self.opts);
        if let Some(e) = v.error {
            return Score::new(0.0, format!("error: {e}"));
        }
        match (&v.pred, v.pred_rule) {
            (None, _) => Score::new(0.0, "no answer found"),
            (Some(p), Some(rule)) => Score::new(
                if v.correct { 1.0 } else { 0.0 },
                format!(
                    "{} ({}: {})",
                    if v.correct { "correct" } else { "wrong" },
                    rule.as_str(),
                    crate::truncate_chars(p, 60)
                ),
            ),
            (Some(_), None) => Score::new(0.0, "no answer found"),
        }
    }
}
