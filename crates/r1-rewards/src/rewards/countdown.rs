//! `countdown`: the Countdown arithmetic game (TinyZero's R1-Zero demo task): reach
//! `target` from `nums` with + − × ÷ and parentheses.
//!
//! The equation is taken from the last `<answer>…</answer>` (else the last non-empty
//! line), a trailing `= target` is allowed, and it is parsed by a tiny dedicated
//! parser (integers, `+ - * / ×÷`, parentheses; nothing is ever `eval`ed) with exact
//! rational arithmetic, so `6/4*2 = 3` is exact and division by zero is a plain
//! failure. Each given number may be used once: exactly once each by default
//! (TinyZero), or at most once with `use_all = false`.
//!
//! Task data in `extra`: `{"nums": [..], "target": n}` (`numbers` also accepted).

use num_rational::BigRational;
use num_traits::Zero;
use serde::{Deserialize, Serialize};

use crate::{RewardFn, RewardInput, Score};

/// Options for [`Countdown`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CountdownOptions {
    /// Every number must be used exactly once (else: at most once).
    pub use_all: bool,
    /// Score for a well-formed equation that misses (TinyZero used 0.1).
    pub format_score: f64,
    pub answer_open: String,
    pub answer_close: String,
}

impl Default for CountdownOptions {
    fn default() -> Self {
        Self {
            use_all: true,
            format_score: 0.0,
            answer_open: "<answer>".into(),
            answer_close: "</answer>".into(),
        }
    }
}

/// The Countdown reward.
pub struct Countdown {
    pub opts: CountdownOptions,
}

const MAX_EQ_CHARS: usize = 1_000;
const MAX_DEPTH: usize = 50;

struct P<'a> {
    b: &'a [u8],
    i: usize,
    used: Vec<i64>,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }
    fn expr(&mut self, d: usize) -> Result<BigRational, String> {
        let mut acc = self.term(d)?;
        while let Some(c @ (b'+' | b'-')) = self.peek() {
            self.i += 1;
            let t = self.term(d)?;
            acc = if c == b'+' { acc + t } else { acc - t };
        }
        Ok(acc)
    }
    fn term(&mut self, d: usize) -> Result<BigRational, String> {
        let mut acc = self.atom(d)?;
        while let Some(c @ (b'*' | b'/')) = self.peek() {
            self.i += 1;
            let t = self.atom(d)?;
            if c == b'*' {
                acc *= t;
            } else {
                if t.is_zero() {
                    return Err("division by zero".into());
                }
                acc /= t;
            }
        }
        Ok(acc)
    }
    fn atom(&mut self, d: usize) -> Result<BigRational, String> {
        if d > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                let v = self.expr(d + 1)?;
                if self.peek() != Some(b')') {
                    return Err("unclosed parenthesis".into());
                }
                self.i += 1;
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let s = std::str::from_utf8(&self.b[start..self.i]).map_err(|e| e.to_string())?;
                let n: i64 = s.parse().map_err(|_| format!("number too large: {s}"))?;
                self.used.push(n);
                Ok(BigRational::from_integer(n.into()))
            }
            Some(c) => Err(format!("unexpected '{}'", c as char)),
            None => Err("unexpected end".into()),
        }
    }
}

/// Evaluates a Countdown equation; returns its value and the numbers it used.
pub fn eval_equation(eq: &str) -> Result<(BigRational, Vec<i64>), String> {
    if eq.len() > MAX_EQ_CHARS {
        return Err("equation too long".into());
    }
    let norm: String = eq
        .chars()
        .map(|c| match c {
            '×' | 'x' | '·' => '*',
            '÷' => '/',
            '−' => '-',
            c => c,
        })
        .collect();
    let mut p = P {
        b: norm.as_bytes(),
        i: 0,
        used: Vec::new(),
    };
    let v = p.expr(0)?;
    if p.peek().is_some() {
        return Err(format!("unexpected trailing text at byte {}", p.i));
    }
    Ok((v, p.used))
}

fn find_equation<'a>(completion: &'a str, o: &CountdownOptions) -> Option<&'a str> {
    let region = match completion.rfind("</think>") {
        Some(k) => &completion[k + 8..],
        None => completion,
    };
    if let Some(close) = region.rfind(&o.answer_close) {
        if let Some(open) = region[..close].rfind(&o.answer_open) {
            return Some(region[open + o.answer_open.len()..close].trim());
        }
    }
    region.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

fn task(extra: &serde_json::Value) -> Option<(Vec<i64>, i64)> {
    let nums = extra
        .get("nums")
        .or_else(|| extra.get("numbers"))?
        .as_array()?;
    let nums: Option<Vec<i64>> = nums.iter().map(|v| v.as_i64()).collect();
    Some((nums?, extra.get("target")?.as_i64()?))
}

impl RewardFn for Countdown {
    fn name(&self) -> &str {
        "countdown"
    }

    fn score(&self, input: &RewardInput) -> Score {
        let Some((nums, target)) = task(input.extra) else {
            return Score::new(0.0, "error: extra needs nums (integers) and target");
        };
        let Some(eq) = find_equation(input.completion, &self.opts) else {
            return Score::new(0.0, "no equation found");
        };
        // `(1+2)*3 = 9`: judge the left side; a claimed right side is ignored.
        let lhs = eq.split('=').next().unwrap_or("").trim();
        let (value, mut used) = match eval_equation(lhs) {
            Ok(r) => r,
            Err(e) => return Score::new(0.0, format!("bad equation: {e}")),
        };
        let mut avail = nums.clone();
        avail.sort_unstable();
        used.sort_unstable();
        let numbers_ok = if self.opts.use_all {
            used == avail
        } else {
            let mut pool = avail.clone();
            used.iter().all(|u| match pool.iter().position(|a| a == u) {
                Some(k) => {
                    pool.swap_remove(k);
                    true
                }
                None => false,
            })
        };
        if !numbers_ok {
            return Score::new(
                self.opts.format_score,
                format!("numbers used {used:?} do not match {avail:?}"),
            );
        }
        if value != BigRational::from_integer(target.into()) {
            return Score::new(
                self.opts.format_score,
                format!("equation gives {value}, not {target}"),
            );
        }
        Score::new(1.0, "reaches the target")
    }
}
