//! `arithmetic`: "What is 47 + 38?" with a few operands and `+ - *`.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::Example;

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "+", alias = "add")]
    Add,
    #[serde(rename = "-", alias = "sub")]
    Sub,
    #[serde(rename = "*", alias = "mul")]
    Mul,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
        }
    }
}

/// Options for the arithmetic task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArithmeticConfig {
    /// Digits per operand (1 → 0..=9, 2 → 10..=99, ...).
    pub digits: u32,
    /// Operands per question (at least 2).
    pub operands: u32,
    /// Operators to draw from, written `"+"`, `"-"`, `"*"`.
    pub ops: Vec<Op>,
}

impl Default for ArithmeticConfig {
    fn default() -> Self {
        Self {
            digits: 2,
            operands: 2,
            ops: vec![Op::Add],
        }
    }
}

impl ArithmeticConfig {
    /// Rejects settings that cannot generate questions or could overflow.
    pub fn validate(&self) -> Result<()> {
        if self.digits == 0 {
            bail!("arithmetic: `digits` must be at least 1");
        }
        if self.operands < 2 {
            bail!("arithmetic: `operands` must be at least 2");
        }
        // Worst case is a product of all operands: keep it inside i128 (10^38).
        if self.digits * self.operands > 36 {
            bail!("arithmetic: digits × operands must be at most 36 (results would overflow)");
        }
        if self.ops.is_empty() {
            bail!("arithmetic: `ops` must name at least one of \"+\", \"-\", \"*\"");
        }
        Ok(())
    }

    /// Draws one question (the caller assigns the id).
    pub fn sample(&self, rng: &mut impl Rng) -> Example {
        let lo = if self.digits == 1 {
            0
        } else {
            10i128.pow(self.digits - 1)
        };
        let hi = 10i128.pow(self.digits) - 1;
        let nums: Vec<i128> = (0..self.operands).map(|_| rng.gen_range(lo..=hi)).collect();
        let ops: Vec<Op> = (1..self.operands)
            .map(|_| *self.ops.choose(rng).expect("validated non-empty"))
            .collect();
        let mut text = nums[0].to_string();
        for (op, n) in ops.iter().zip(&nums[1..]) {
            text.push_str(&format!(" {} {n}", op.symbol()));
        }
        let value = evaluate(&nums, &ops);
        Example::new("", format!("What is {text}?"), value.to_string())
    }
}

/// Evaluates `nums[0] ops[0] nums[1] ...` with the usual precedence (`*` first).
pub fn evaluate(nums: &[i128], ops: &[Op]) -> i128 {
    // Sum of products: each `*` extends the current term, `+`/`-` start a new one.
    let mut total = 0i128;
    let mut term = nums[0];
    let mut sign = 1i128;
    for (op, &n) in ops.iter().zip(&nums[1..]) {
        match op {
            Op::Mul => term *= n,
            Op::Add | Op::Sub => {
                total += sign * term;
                sign = if *op == Op::Add { 1 } else { -1 };
                term = n;
            }
        }
    }
    total + sign * term
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        assert_eq!(evaluate(&[2, 3, 4], &[Op::Add, Op::Mul]), 14);
        assert_eq!(evaluate(&[2, 3, 4], &[Op::Mul, Op::Sub]), 2);
        assert_eq!(evaluate(&[10, 3, 4, 2], &[Op::Sub, Op::Mul, Op::Add]), 0);
    }

    #[test]
    fn ops_parse_from_symbols() {
        let c: ArithmeticConfig = toml::from_str("ops = [\"+\", \"-\", \"mul\"]").unwrap();
        assert_eq!(c.ops, vec![Op::Add, Op::Sub, Op::Mul]);
        assert!(toml::from_str::<ArithmeticConfig>("opz = []").is_err());
    }
}
