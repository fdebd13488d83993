//! `countdown`: reach a target from given numbers with `+ - * /`, each number used
//! exactly once (the game TinyZero used to show R1-Zero behaviour on small models).
//!
//! A question is made by drawing the numbers, then combining them in a random
//! order with random operators (subtraction only when it stays positive, division
//! only when exact) until one value is left: that value is the target, so every
//! question has a solution. Targets outside `target_min..=target_max` are redrawn.

use anyhow::{bail, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Example;

/// Options for the Countdown task; ranges are inclusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CountdownConfig {
    /// How many numbers each question gives (all must be used).
    pub count: usize,
    /// Range of the given numbers.
    pub min: i64,
    pub max: i64,
    /// Range of the target.
    pub target_min: i64,
    pub target_max: i64,
}

impl Default for CountdownConfig {
    fn default() -> Self {
        Self {
            count: 3,
            min: 1,
            max: 99,
            target_min: 1,
            target_max: 999,
        }
    }
}

/// Draws per question before giving up (only reachable with odd target ranges).
const MAX_TRIES: usize = 10_000;

impl CountdownConfig {
    /// Rejects settings that cannot generate questions.
    pub fn validate(&self) -> Result<()> {
        if !(2..=6).contains(&self.count) {
            bail!("countdown: `count` must be between 2 and 6");
        }
        if self.min < 1 || self.min > self.max || self.max > 10_000 {
            bail!("countdown: need 1 <= `min` <= `max` <= 10000");
        }
        if self.target_min > self.target_max {
            bail!("countdown: `target_min` is greater than `target_max`");
        }
        Ok(())
    }

    /// Draws one question (the caller assigns the id).
    pub fn sample(&self, rng: &mut impl Rng) -> Result<Example> {
        for _ in 0..MAX_TRIES {
            let nums: Vec<i64> = (0..self.count)
                .map(|_| rng.gen_range(self.min..=self.max))
                .collect();
            let target = random_combination(&nums, rng);
            if (self.target_min..=self.target_max).contains(&target) {
                let list = nums
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let question = format!(
                    "Using the numbers [{list}], create an equation that equals {target}. \
                     You can use basic arithmetic operations (+, -, *, /) and each number \
                     must be used exactly once."
                );
                let mut ex = Example::new("", question, target.to_string());
                // Field names read by r1-rewards' `countdown` reward.
                ex.extra = json!({ "nums": nums, "target": target });
                return Ok(ex);
            }
        }
        bail!(
            "countdown: no target in {}..={} after {MAX_TRIES} draws; widen the target range",
            self.target_min,
            self.target_max
        )
    }
}

/// Folds `nums` into one value by combining random pairs with random operators.
fn random_combination(nums: &[i64], rng: &mut impl Rng) -> i64 {
    let mut pool = nums.to_vec();
    while pool.len() > 1 {
        let a = pool.swap_remove(rng.gen_range(0..pool.len()));
        let b = pool.swap_remove(rng.gen_range(0..pool.len()));
        let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
        // Only operations that keep values positive integers: the game's rules.
        let mut options = vec![a + b, a * b];
        if hi > lo {
            options.push(hi - lo);
        }
        if lo > 1 && hi % lo == 0 {
            options.push(hi / lo);
        }
        pool.push(options[rng.gen_range(0..options.len())]);
    }
    pool[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn extra_has_reward_fields() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let ex = CountdownConfig::default().sample(&mut rng).unwrap();
        assert_eq!(ex.extra["nums"].as_array().unwrap().len(), 3);
        assert_eq!(ex.extra["target"].as_i64().unwrap().to_string(), ex.answer);
    }

    #[test]
    fn impossible_target_range_errors() {
        let c = CountdownConfig {
            count: 2,
            min: 1,
            max: 2,
            target_min: 500,
            target_max: 600,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert!(c.sample(&mut rng).is_err());
    }
}
