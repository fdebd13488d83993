//! Equivalence of two answers.
//!
//! Numbers are compared exactly as rationals when both sides are exact, so large
//! integers never collide; decimal literals and irrational values use a relative
//! tolerance. Expressions with variables are equal as functions: both are evaluated
//! at fixed pseudo-random rational points (exactly where possible). Structures
//! (tuples, sets, intervals, matrices, equations) are compared element by element.
//!
//! Symmetry is by construction: every asymmetric rule is tried both ways round.

use std::collections::BTreeSet;

use num_rational::BigRational;
use serde::{Deserialize, Serialize};

use super::answer::{normalize, parse_answer, text_key, Answer, MAX_PARSE_CHARS};
use super::expr::Expr;
use super::number;

/// Options for [`equivalent`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EquivOptions {
    /// Relative tolerance when either side is a decimal literal (which may be
    /// rounded): `3.14159` vs `\pi` fails at 1e-6, `0.333333` vs `1/3` passes.
    pub rel_tol: f64,
    /// Accept `50\%` for a reference of `50` (and `0.5`, always).
    pub percent_lenient: bool,
}

impl Default for EquivOptions {
    fn default() -> Self {
        Self {
            rel_tol: 1e-6,
            percent_lenient: true,
        }
    }
}

/// Tolerance for floating-point evaluation of exact-looking expressions (`\sqrt2`,
/// `\pi`): only rounding error is forgiven.
const FLOAT_TOL: f64 = 1e-9;

/// Number of evaluation points for expressions with variables.
const POINTS: u64 = 10;

/// Are two answer strings (already extracted, e.g. the contents of `\boxed{}`)
/// mathematically equivalent? Symmetric; never panics; bounded in time.
pub fn equivalent(a: &str, b: &str, opts: &EquivOptions) -> bool {
    let (ta, tb) = (a.trim(), b.trim());
    if ta.is_empty() || tb.is_empty() {
        return false;
    }
    if ta == tb {
        return true;
    }
    let (Ok(na), Ok(nb)) = (normalize(ta), normalize(tb)) else {
        // Too long or too deep to parse: only identical strings match (above).
        return false;
    };
    if na.is_empty() || nb.is_empty() {
        return false;
    }
    if na == nb {
        return true;
    }
    // Plain words (`Yes`, `Monday`, `(B)`) compare case-insensitively.
    let wordy = |s: &str| {
        s.chars()
            .all(|c| c.is_alphabetic() || c == ' ' || c == '(' || c == ')')
    };
    if wordy(&na) && wordy(&nb) && text_key(&na) == text_key(&nb) {
        return true;
    }
    let (Ok(pa), Ok(pb)) = (parse_answer(&na), parse_answer(&nb)) else {
        return false;
    };
    answers_equal(&pa, &pb, opts)
}

/// Parses a raw answer string into a structured [`Answer`]; used to validate
/// references (an unparseable reference is an error, never a pass).
pub fn parse(raw: &str) -> Result<Answer, super::MathError> {
    if raw.chars().count() > MAX_PARSE_CHARS {
        return Err(super::MathError::TooLong);
    }
    parse_answer(&normalize(raw)?)
}

/// Structural comparison, symmetric.
pub fn answers_equal(a: &Answer, b: &Answer, o: &EquivOptions) -> bool {
    one_way(a, b, o) || one_way(b, a, o)
}

fn ordered(xs: &[Answer], ys: &[Answer], o: &EquivOptions) -> bool {
    xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| answers_equal(x, y, o))
}

fn unordered(xs: &[Answer], ys: &[Answer], o: &EquivOptions) -> bool {
    if xs.len() != ys.len() {
        return false;
    }
    let mut used = vec![false; ys.len()];
    xs.iter().all(|x| {
        for (j, y) in ys.iter().enumerate() {
            if !used[j] && answers_equal(x, y, o) {
                used[j] = true;
                return true;
            }
        }
        false
    })
}

/// The left of `lhs = rhs` is a label when it is a lone variable (`x = 3`,
/// `y = 2x+1`) or when it has variables and the right has none (`a+b = 7`).
fn is_label(lhs: &Expr, rhs: &Expr) -> bool {
    if matches!(lhs, Expr::Var(_)) {
        return true;
    }
    let (mut l, mut r) = (BTreeSet::new(), BTreeSet::new());
    lhs.vars(&mut l);
    rhs.vars(&mut r);
    !l.is_empty() && r.is_empty()
}

fn one_way(a: &Answer, b: &Answer, o: &EquivOptions) -> bool {
    use Answer::*;
    match (a, b) {
        (Expr(x), Expr(y)) => exprs_equal(x, y, o),
        (Equation(ps), Equation(qs)) => equations_equal(ps, qs, o),
        (Equation(ps), other) if !matches!(other, Equation(_)) => {
            ps.len() >= 2
                && ps.last().is_some_and(|last| {
                    is_label(&ps[0], last) && answers_equal(&Expr(last.clone()), other, o)
                })
        }
        (
            Seq {
                open: o1,
                close: c1,
                items: x,
            },
            Seq {
                open: o2,
                close: c2,
                items: y,
            },
        ) => o1 == o2 && c1 == c2 && ordered(x, y, o),
        (
            Set {
                braced: b1,
                items: x,
            },
            Set {
                braced: b2,
                items: y,
            },
        ) => {
            let _ = (b1, b2);
            unordered(x, y, o)
        }
        (
            Set {
                braced: false,
                items: x,
            },
            Seq {
                open: '(',
                items: y,
                ..
            },
        ) => ordered(x, y, o),
        (
            Set {
                braced: true,
                items: x,
            },
            other,
        ) if x.len() == 1 => answers_equal(&x[0], other, o),
        (Matrix(x), Matrix(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(r, s)| ordered(r, s, o))
        }
        (Matrix(rows), Seq { items, .. })
        | (
            Matrix(rows),
            Set {
                braced: false,
                items,
            },
        ) => {
            let flat: Vec<Answer> = if rows.iter().all(|r| r.len() == 1) {
                rows.iter().map(|r| r[0].clone()).collect()
            } else if rows.len() == 1 {
                rows[0].clone()
            } else {
                return false;
            };
            ordered(&flat, items, o)
        }
        (Union(x), Union(y)) => unordered(x, y, o),
        (Text(x), Text(y)) => x == y,
        _ => false,
    }
}

fn equations_equal(ps: &[Expr], qs: &[Expr], o: &EquivOptions) -> bool {
    if ps.len() != qs.len() {
        return false;
    }
    if ps.iter().zip(qs).all(|(p, q)| exprs_equal(p, q, o)) {
        return true;
    }
    if ps.len() != 2 {
        return false;
    }
    if exprs_equal(&ps[0], &qs[1], o) && exprs_equal(&ps[1], &qs[0], o) {
        return true;
    }
    // Same solution set: lhs-rhs of one is a non-zero constant multiple of the
    // other's (`2x+y=3` vs `y=3-2x`).
    let d1 = Expr::Add(vec![ps[0].clone(), Expr::Neg(Box::new(ps[1].clone()))]);
    let d2 = Expr::Add(vec![qs[0].clone(), Expr::Neg(Box::new(qs[1].clone()))]);
    proportional(&d1, &d2)
}

fn all_vars(a: &Expr, b: &Expr) -> Vec<String> {
    let mut v = BTreeSet::new();
    a.vars(&mut v);
    b.vars(&mut v);
    v.into_iter().collect()
}

/// Deterministic pseudo-random generator (splitmix64) for evaluation points; fixed
/// so results are reproducible and symmetric.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The k-th evaluation point: small rationals p/q, positive for most points (so
/// `sqrt(x)` and `ln(x)` are defined), negative for the last few.
fn point(vars: &[String], k: u64) -> Vec<(String, BigRational)> {
    vars.iter()
        .enumerate()
        .map(|(j, v)| {
            let h = mix(k * 7919 + j as u64 * 104_729 + 17);
            let p = (h % 23 + 1) as i64;
            let q = ((h >> 20) % 11 + 1) as i64;
            let sign = if k >= POINTS - 3 { -1 } else { 1 };
            (v.clone(), BigRational::new((sign * p).into(), q.into()))
        })
        .collect()
}

fn close(x: f64, y: f64, rel: f64) -> bool {
    let d = (x - y).abs();
    d <= rel * x.abs().max(y.abs()) || d <= 1e-12
}

/// Values of two expressions at one point: `Some(true/false)` for equal/unequal,
/// `None` when neither is defined there.
fn compare_at(a: &Expr, b: &Expr, env: &[(String, BigRational)], tol: f64) -> Option<bool> {
    if let (Some(x), Some(y)) = (a.eval_exact(env), b.eval_exact(env)) {
        if x == y {
            return Some(true);
        }
        if tol <= FLOAT_TOL {
            return Some(false);
        }
        return Some(close(number::to_f64(&x), number::to_f64(&y), tol));
    }
    let (x, y) = (a.eval_f64(env), b.eval_f64(env));
    match (x.is_finite(), y.is_finite()) {
        (true, true) => Some(close(x, y, tol)),
        // Undefined on one side only: a domain difference (`ln(x^2)` vs `2ln x` at
        // x < 0), not evidence either way. Constants never reach a verdict here.
        _ => None,
    }
}

fn strip_percent(e: &Expr) -> Option<&Expr> {
    match e {
        Expr::Percent(inner) => Some(inner),
        _ => None,
    }
}

/// Equality of expressions as numbers or as functions of their variables.
pub fn exprs_equal(a: &Expr, b: &Expr, o: &EquivOptions) -> bool {
    if exprs_equal_inner(a, b, o) {
        return true;
    }
    if o.percent_lenient {
        // `50%` against a reference of `50`.
        match (strip_percent(a), strip_percent(b)) {
            (Some(x), None) => return exprs_equal_inner(x, b, o),
            (None, Some(y)) => return exprs_equal_inner(a, y, o),
            _ => {}
        }
    }
    false
}

fn exprs_equal_inner(a: &Expr, b: &Expr, o: &EquivOptions) -> bool {
    let tol = if a.has_inexact() || b.has_inexact() {
        o.rel_tol.max(FLOAT_TOL)
    } else {
        FLOAT_TOL
    };
    if a.has_inf() || b.has_inf() {
        // Only ±infinity itself is comparable; `inf - 1` is not a number.
        let (x, y) = (a.eval_f64(&[]), b.eval_f64(&[]));
        return x.is_infinite() && x == y && all_vars(a, b).is_empty();
    }
    let vars = all_vars(a, b);
    if vars.is_empty() {
        return compare_at(a, b, &[], tol) == Some(true);
    }
    if vars.len() > 12 {
        return false;
    }
    let mut agreed = 0;
    for k in 0..POINTS {
        match compare_at(a, b, &point(&vars, k), tol) {
            Some(true) => agreed += 1,
            Some(false) => return false,
            None => {}
        }
    }
    agreed >= 2
}

/// Is `a` a non-zero constant multiple of `b` (as functions)?
fn proportional(a: &Expr, b: &Expr) -> bool {
    let vars = all_vars(a, b);
    if vars.is_empty() || vars.len() > 12 {
        return false;
    }
    let mut ratio: Option<f64> = None;
    let mut agreed = 0;
    for k in 0..POINTS {
        let env = point(&vars, k);
        let (x, y) = (a.eval_f64(&env), b.eval_f64(&env));
        if !x.is_finite() || !y.is_finite() {
            continue;
        }
        if y.abs() < 1e-12 || x.abs() < 1e-12 {
            if (y.abs() < 1e-12) != (x.abs() < 1e-12) {
                return false;
            }
            continue;
        }
        let r = x / y;
        match ratio {
            None => ratio = Some(r),
            Some(r0) if close(r0, r, FLOAT_TOL * 100.0) => {}
            Some(_) => return false,
        }
        agreed += 1;
    }
    agreed >= 2
}
