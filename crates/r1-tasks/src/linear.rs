//! `linear`: solve `a*x + b = c` for an integer `x`.

use anyhow::{bail, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::Example;

/// Options for the linear-equation task; all ranges are inclusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearConfig {
    /// Range of the coefficient `a` (0 is never drawn).
    pub a_min: i64,
    pub a_max: i64,
    /// Range of the constant `b`.
    pub b_min: i64,
    pub b_max: i64,
    /// Range of the solution `x`.
    pub x_min: i64,
    pub x_max: i64,
}

impl Default for LinearConfig {
    fn default() -> Self {
        Self {
            a_min: -10,
            a_max: 10,
            b_min: -20,
            b_max: 20,
            x_min: -20,
            x_max: 20,
        }
    }
}

const LIMIT: i64 = 1_000_000_000;

impl LinearConfig {
    /// Rejects empty ranges, an `a` range of only zero, and values whose
    /// products could overflow.
    pub fn validate(&self) -> Result<()> {
        for (name, lo, hi) in [
            ("a", self.a_min, self.a_max),
            ("b", self.b_min, self.b_max),
            ("x", self.x_min, self.x_max),
        ] {
            if lo > hi {
                bail!("linear: `{name}_min` ({lo}) is greater than `{name}_max` ({hi})");
            }
            if lo.abs() > LIMIT || hi.abs() > LIMIT {
                bail!("linear: `{name}` range must stay within ±{LIMIT}");
            }
        }
        if self.a_min == 0 && self.a_max == 0 {
            bail!("linear: the `a` range must contain a non-zero value");
        }
        Ok(())
    }

    /// Draws one equation (the caller assigns the id).
    pub fn sample(&self, rng: &mut impl Rng) -> Example {
        let a = loop {
            let a = rng.gen_range(self.a_min..=self.a_max);
            if a != 0 {
                break a;
            }
        };
        let b = rng.gen_range(self.b_min..=self.b_max);
        let x = rng.gen_range(self.x_min..=self.x_max);
        let c = a * x + b;
        let question = format!(
            "Solve for x: {} = {c}. Give the value of x as an integer.",
            lhs(a, b)
        );
        Example::new("", question, x.to_string())
    }
}

/// Writes `a*x + b` the way people do: `3x - 5`, `-x + 2`, `x`.
fn lhs(a: i64, b: i64) -> String {
    let ax = match a {
        1 => "x".to_string(),
        -1 => "-x".to_string(),
        a => format!("{a}x"),
    };
    match b {
        0 => ax,
        b if b > 0 => format!("{ax} + {b}"),
        b => format!("{ax} - {}", -b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lhs_reads_naturally() {
        assert_eq!(lhs(3, -5), "3x - 5");
        assert_eq!(lhs(-1, 2), "-x + 2");
        assert_eq!(lhs(1, 0), "x");
    }

    #[test]
    fn bad_ranges_rejected() {
        let c = LinearConfig {
            a_min: 0,
            a_max: 0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = LinearConfig {
            x_min: 5,
            x_max: 1,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("x_min"));
    }
}
