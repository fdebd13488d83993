//! R1 stage 4's reward routing: a prompt with a reference answer gets the rule-based
//! correctness reward; one without gets the preference reward (judge or reward model).

use r1_rewards::{RewardFn, RewardInput, Score};

pub struct RoutedReward {
    pub verifiable: Box<dyn RewardFn>,
    pub preference: Box<dyn RewardFn>,
}

/// An answer counts when present and not blank (JSONL rows without one are loaded
/// with an empty answer).
pub fn has_answer(input: &RewardInput) -> bool {
    input.answer.is_some_and(|a| !a.trim().is_empty())
}

impl RewardFn for RoutedReward {
    fn name(&self) -> &str {
        "routed"
    }

    fn score(&self, input: &RewardInput) -> Score {
        let (kind, f) = if has_answer(input) {
            ("rule", &self.verifiable)
        } else {
            ("preference", &self.preference)
        };
        let s = f.score(input);
        Score::new(s.value, format!("{kind} ({}): {}", f.name(), s.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, f64);
    impl RewardFn for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn score(&self, _: &RewardInput) -> Score {
            Score::new(self.1, "")
        }
    }

    #[test]
    fn routes_on_the_answer() {
        let r = RoutedReward {
            verifiable: Box::new(Fixed("rule", 1.0)),
            preference: Box::new(Fixed("pref", 0.25)),
        };
        let extra = serde_json::Value::Null;
        let mk = |answer| RewardInput {
            prompt: "q",
            completion: "c",
            answer,
            completion_tokens: 1,
            max_completion_tokens: 8,
            truncated: false,
            extra: &extra,
        };
        assert_eq!(r.score(&mk(Some("4"))).value, 1.0);
        assert_eq!(r.score(&mk(Some("  "))).value, 0.25);
        assert_eq!(r.score(&mk(None)).value, 0.25);
    }
}
