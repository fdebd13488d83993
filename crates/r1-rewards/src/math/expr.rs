//! Expressions: tokenizer, recursive-descent parser and two evaluators (exact
//! rational, and `f64` as a fallback for `pi`, `sin`, irrational roots).
//!
//! The parser reads the plain syntax produced by [`super::latex::latex_to_plain`].
//! Sums and products are n-ary (`Add(vec)`, `Mul(vec)`) so a long flat input like
//! `1+1+…+1` builds a shallow tree, and nesting depth is capped, so evaluation never
//! recurses deeply.

use std::collections::BTreeSet;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};

use super::number::{self, bounded};
use super::MathError;

/// Maximum nesting of parentheses/unary operators accepted by the parser.
const MAX_DEPTH: usize = 100;

/// Functions the parser knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Sqrt,
    /// `root(x, n)`: the n-th root of x.
    Root,
    Binom,
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Ln,
    /// `log(x)` is base 10; `log_b(x)` carries the base as a second argument.
    Log,
    Exp,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Abs,
}

fn func_by_name(s: &str) -> Option<Func> {
    Some(match s {
        "sqrt" => Func::Sqrt,
        "root" => Func::Root,
        "binom" => Func::Binom,
        "sin" => Func::Sin,
        "cos" => Func::Cos,
        "tan" => Func::Tan,
        "sec" => Func::Sec,
        "csc" => Func::Csc,
        "cot" => Func::Cot,
        "ln" => Func::Ln,
        "log" => Func::Log,
        "exp" => Func::Exp,
        "arcsin" => Func::Asin,
        "arccos" => Func::Acos,
        "arctan" => Func::Atan,
        "sinh" => Func::Sinh,
        "cosh" => Func::Cosh,
        "tanh" => Func::Tanh,
        "abs" => Func::Abs,
        _ => return None,
    })
}

const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Pi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
];

/// Multi-letter names recognised inside a run of letters (`2pir` = 2·pi·r).
fn known_names() -> impl Iterator<Item = &'static str> {
    [
        "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sqrt", "root", "binom", "sin",
        "cos", "tan", "sec", "csc", "cot", "ln", "log", "exp", "abs", "pi", "inf", "infty",
    ]
    .into_iter()
    .chain(GREEK.iter().copied())
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number; `inexact` is true for decimal literals (which may be rounded).
    Num {
        value: BigRational,
        inexact: bool,
    },
    Var(String),
    Pi,
    E,
    Inf,
    Add(Vec<Expr>),
    Mul(Vec<Expr>),
    Neg(Box<Expr>),
    Recip(Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    Func(Func, Vec<Expr>),
    /// `x%`; evaluates to x/100 (comparison also tries plain x).
    Percent(Box<Expr>),
    Fact(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Ident(String),
    Sym(char),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, MathError> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            // Scientific notation: `1.5e3`, `2E-4` (but `3e` alone is 3·e).
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let lit: String = chars[start..i].iter().collect();
            if lit.matches('.').count() > 1 {
                return Err(MathError::Syntax("number with two decimal points".into()));
            }
            toks.push(Tok::Num(lit));
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            let mut names = split_letters(&run);
            // A subscript (`x_1`, `a_n`, `log_2`) attaches to the last name.
            if i + 1 < chars.len() && chars[i] == '_' && chars[i + 1].is_ascii_alphanumeric() {
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_ascii_alphanumeric() {
                    j += 1;
                }
                let sub: String = chars[i + 1..j].iter().collect();
                if let Some(last) = names.last_mut() {
                    last.push('_');
                    last.push_str(&sub);
                }
                i = j;
            }
            toks.extend(names.into_iter().map(Tok::Ident));
        } else {
            i += 1;
            let two = chars.get(i).copied();
            let sym = match (c, two) {
                ('*', Some('*')) => {
                    i += 1;
                    '^'
                }
                ('!', Some('=')) => {
                    i += 1;
                    '≠'
                }
                ('<', Some('=')) => {
                    i += 1;
                    '≤'
                }
                ('>', Some('=')) => {
                    i += 1;
                    '≥'
                }
                (':', _) => '/', // ratios like 3:4 compare as 3/4
                _ => c,
            };
            toks.push(Tok::Sym(sym));
        }
    }
    Ok(toks)
}

/// Splits a run of letters into known names and single-letter variables.
fn split_letters(run: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = run;
    'outer: while !rest.is_empty() {
        // Longest known name first.
        let mut best: Option<&str> = None;
        for name in known_names() {
            if rest.starts_with(name) && best.is_none_or(|b| name.len() > b.len()) {
                best = Some(name);
            }
        }
        if let Some(name) = best {
            out.push(name.to_string());
            rest = &rest[name.len()..];
            continue 'outer;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c.to_string());
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Parses a plain-syntax expression.
pub fn parse(s: &str) -> Result<Expr, MathError> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err(MathError::Empty);
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.expr(0)?;
    if p.pos != p.toks.len() {
        return Err(MathError::Syntax(format!("unexpected {:?}", p.toks[p.pos])));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Sym(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, MathError> {
        if depth > MAX_DEPTH {
            return Err(MathError::TooDeep);
        }
        let mut terms = vec![self.term(depth)?];
        loop {
            if self.eat('+') {
                terms.push(self.term(depth)?);
            } else if self.eat('-') {
                terms.push(Expr::Neg(Box::new(self.term(depth)?)));
            } else {
                break;
            }
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap_or(Expr::Inf)
        } else {
            Expr::Add(terms)
        })
    }

    fn starts_primary(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_)) | Some(Tok::Ident(_)) => true,
            Some(Tok::Sym(c)) => matches!(c, '(' | '['),
            None => false,
        }
    }

    fn term(&mut self, depth: usize) -> Result<Expr, MathError> {
        let mut factors = vec![self.unary(depth + 1)?];
        loop {
            if self.eat('*') {
                factors.push(self.unary(depth + 1)?);
            } else if self.eat('/') {
                factors.push(Expr::Recip(Box::new(self.unary(depth + 1)?)));
            } else if self.starts_primary() {
                // Implicit multiplication: `2x`, `3\sqrt{2}`, `(x+1)(x-1)`.
                factors.push(self.power(depth + 1)?);
            } else {
                break;
            }
        }
        Ok(if factors.len() == 1 {
            factors.pop().unwrap_or(Expr::Inf)
        } else {
            Expr::Mul(factors)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, MathError> {
        if depth > MAX_DEPTH {
            return Err(MathError::TooDeep);
        }
        if self.eat('-') {
            return Ok(Expr::Neg(Box::new(self.unary(depth + 1)?)));
        }
        if self.eat('+') {
            return self.unary(depth + 1);
        }
        self.power(depth)
    }

    fn power(&mut self, depth: usize) -> Result<Expr, MathError> {
        let base = self.postfix(depth)?;
        if self.eat('^') {
            let exp = self.unary(depth + 1)?;
            let mut e = Expr::Pow(Box::new(base), Box::new(exp));
            // `2^3!` is rare; postfix after an exponent applies to the power.
            while self.eat('!') {
                e = Expr::Fact(Box::new(e));
            }
            return Ok(e);
        }
        Ok(base)
    }

    fn postfix(&mut self, depth: usize) -> Result<Expr, MathError> {
        let mut e = self.primary(depth)?;
        loop {
            if self.eat('!') {
                e = Expr::Fact(Box::new(e));
            } else if self.eat('%') {
                e = Expr::Percent(Box::new(e));
            } else if self.eat('\'') {
                // primes (f') are kept as part of the value only loosely; ignore.
            } else {
                break;
            }
        }
        Ok(e)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, MathError> {
        if depth > MAX_DEPTH {
            return Err(MathError::TooDeep);
        }
        let tok = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| MathError::Syntax("unexpected end".into()))?;
        self.pos += 1;
        match tok {
            Tok::Num(lit) => {
                let (value, inexact) = number::parse_decimal(&lit)
                    .ok_or_else(|| MathError::Syntax(format!("bad number {lit}")))?;
                Ok(Expr::Num { value, inexact })
            }
            Tok::Sym('(') | Tok::Sym('[') => {
                let close = if tok == Tok::Sym('(') { ')' } else { ']' };
                let e = self.expr(depth + 1)?;
                if !self.eat(close) {
                    return Err(MathError::Syntax("unclosed parenthesis".into()));
                }
                Ok(e)
            }
            Tok::Sym('|') => {
                let e = self.expr(depth + 1)?;
                if !self.eat('|') {
                    return Err(MathError::Syntax("unclosed |".into()));
                }
                Ok(Expr::Func(Func::Abs, vec![e]))
            }
            Tok::Ident(name) => self.ident(name, depth),
            Tok::Sym(c) => Err(MathError::Syntax(format!("unexpected '{c}'"))),
        }
    }

    fn ident(&mut self, name: String, depth: usize) -> Result<Expr, MathError> {
        match name.as_str() {
            "pi" => return Ok(Expr::Pi),
            "e" => return Ok(Expr::E),
            "inf" | "infty" => return Ok(Expr::Inf),
            _ => {}
        }
        let (fname, base) = match name.strip_prefix("log_") {
            Some(b) => ("log", Some(b.to_string())),
            None => (name.as_str(), None),
        };
        let Some(func) = func_by_name(fname) else {
            return Ok(Expr::Var(name));
        };
        // `\sin^2 x`: exponent written on the function name.
        let mut outer_pow = None;
        if self.eat('^') {
            outer_pow = Some(self.postfix(depth + 1)?);
        }
        let mut args = if self.peek() == Some(&Tok::Sym('(')) {
            self.pos += 1;
            let mut args = vec![self.expr(depth + 1)?];
            while self.eat(',') {
                args.push(self.expr(depth + 1)?);
            }
            if !self.eat(')') {
                return Err(MathError::Syntax("unclosed call".into()));
            }
            args
        } else {
            vec![self.power(depth + 1)?]
        };
        if let Some(b) = base {
            let (value, inexact) = number::parse_decimal(&b)
                .ok_or_else(|| MathError::Syntax("bad log base".into()))?;
            args.push(Expr::Num { value, inexact });
        }
        let arity_ok = match func {
            Func::Root | Func::Binom => args.len() == 2,
            Func::Log => args.len() <= 2,
            _ => args.len() == 1,
        };
        if !arity_ok {
            return Err(MathError::Syntax(format!("wrong arity for {name}")));
        }
        let call = Expr::Func(func, args);
        Ok(match outer_pow {
            Some(p) => Expr::Pow(Box::new(call), Box::new(p)),
            None => call,
        })
    }
}

/// Values bound to variables during evaluation.
pub type Env<'a> = &'a [(String, BigRational)];

impl Expr {
    /// Collects variable names.
    pub fn vars(&self, out: &mut BTreeSet<String>) {
        match self {
            Expr::Var(v) => {
                out.insert(v.clone());
            }
            Expr::Add(v) | Expr::Mul(v) | Expr::Func(_, v) => v.iter().for_each(|e| e.vars(out)),
            Expr::Neg(e) | Expr::Recip(e) | Expr::Percent(e) | Expr::Fact(e) => e.vars(out),
            Expr::Pow(a, b) => {
                a.vars(out);
                b.vars(out);
            }
            Expr::Num { .. } | Expr::Pi | Expr::E | Expr::Inf => {}
        }
    }

    /// True if any decimal literal appears (such answers may be rounded).
    pub fn has_inexact(&self) -> bool {
        match self {
            Expr::Num { inexact, .. } => *inexact,
            Expr::Add(v) | Expr::Mul(v) | Expr::Func(_, v) => v.iter().any(Expr::has_inexact),
            Expr::Neg(e) | Expr::Recip(e) | Expr::Percent(e) | Expr::Fact(e) => e.has_inexact(),
            Expr::Pow(a, b) => a.has_inexact() || b.has_inexact(),
            _ => false,
        }
    }

    /// True if infinity appears anywhere (then only symbolic ±inf comparison is sound).
    pub fn has_inf(&self) -> bool {
        match self {
            Expr::Inf => true,
            Expr::Add(v) | Expr::Mul(v) | Expr::Func(_, v) => v.iter().any(Expr::has_inf),
            Expr::Neg(e) | Expr::Recip(e) | Expr::Percent(e) | Expr::Fact(e) => e.has_inf(),
            Expr::Pow(a, b) => a.has_inf() || b.has_inf(),
            _ => false,
        }
    }

    /// Exact evaluation; `None` when the value is irrational, undefined, or too big.
    pub fn eval_exact(&self, env: Env) -> Option<BigRational> {
        match self {
            Expr::Num { value, .. } => Some(value.clone()),
            Expr::Var(v) => env.iter().find(|(n, _)| n == v).map(|(_, x)| x.clone()),
            Expr::Pi | Expr::E | Expr::Inf => None,
            Expr::Add(v) => {
                let mut acc = BigRational::zero();
                for e in v {
                    acc = bounded(acc + e.eval_exact(env)?)?;
                }
                Some(acc)
            }
            Expr::Mul(v) => {
                let mut acc = BigRational::from_integer(1.into());
                for e in v {
                    acc = bounded(acc * e.eval_exact(env)?)?;
                }
                Some(acc)
            }
            Expr::Neg(e) => Some(-e.eval_exact(env)?),
            Expr::Recip(e) => {
                let x = e.eval_exact(env)?;
                (!x.is_zero()).then(|| x.recip())
            }
            Expr::Pow(a, b) => {
                let b = b.eval_exact(env)?;
                let a = a.eval_exact(env)?;
                number::pow_rational(&a, &b)
            }
            Expr::Percent(e) => Some(e.eval_exact(env)? / BigRational::from_integer(100.into())),
            Expr::Fact(e) => number::factorial(&e.eval_exact(env)?),
            Expr::Func(f, args) => {
                let a = args.first()?.eval_exact(env)?;
                match f {
                    Func::Sqrt => number::root_exact(&a, 2),
                    Func::Root => {
                        let n = args.get(1)?.eval_exact(env)?;
                        if !n.is_integer() {
                            return None;
                        }
                        number::root_exact(&a, n.numer().to_u32()?)
                    }
                    Func::Binom => number::binomial(&a, &args.get(1)?.eval_exact(env)?),
                    Func::Abs => Some(a.abs()),
                    Func::Sin | Func::Tan | Func::Asin | Func::Atan | Func::Sinh | Func::Tanh
                        if a.is_zero() =>
                    {
                        Some(BigRational::zero())
                    }
                    Func::Log | Func::Ln => {
                        // log_b(b^k) = k exactly for integer k (common in contests).
                        let base = match (f, args.get(1)) {
                            (Func::Log, Some(b)) => b.eval_exact(env)?,
                            (Func::Log, None) => BigRational::from_integer(10.into()),
                            _ => return None,
                        };
                        exact_log(&a, &base)
                    }
                    _ => None,
                }
            }
        }
    }

    /// Floating-point evaluation; NaN when undefined.
    pub fn eval_f64(&self, env: Env) -> f64 {
        match self {
            Expr::Num { value, .. } => number::to_f64(value),
            Expr::Var(v) => env
                .iter()
                .find(|(n, _)| n == v)
                .map(|(_, x)| number::to_f64(x))
                .unwrap_or(f64::NAN),
            Expr::Pi => std::f64::consts::PI,
            Expr::E => std::f64::consts::E,
            Expr::Inf => f64::INFINITY,
            Expr::Add(v) => v.iter().map(|e| e.eval_f64(env)).sum(),
            Expr::Mul(v) => v.iter().map(|e| e.eval_f64(env)).product(),
            Expr::Neg(e) => -e.eval_f64(env),
            Expr::Recip(e) => 1.0 / e.eval_f64(env),
            Expr::Pow(a, b) => {
                let (x, y) = (a.eval_f64(env), b.eval_f64(env));
                if x < 0.0 && y.fract() != 0.0 {
                    // Odd roots of negatives: (-8)^(1/3) = -2.
                    let inv = 1.0 / y;
                    if (inv.round() - inv).abs() < 1e-9 && (inv.round() as i64) % 2 != 0 {
                        return -(-x).powf(y);
                    }
                }
                x.powf(y)
            }
            Expr::Percent(e) => e.eval_f64(env) / 100.0,
            Expr::Fact(e) => {
                let n = e.eval_f64(env);
                if n < 0.0 || n.fract() != 0.0 || n > 170.0 {
                    f64::NAN
                } else {
                    (1..=n as u64).map(|k| k as f64).product()
                }
            }
            Expr::Func(f, args) => {
                let a = args.first().map(|e| e.eval_f64(env)).unwrap_or(f64::NAN);
                let b = args.get(1).map(|e| e.eval_f64(env));
                match f {
                    Func::Sqrt => a.sqrt(),
                    Func::Root => {
                        let n = b.unwrap_or(f64::NAN);
                        if a < 0.0 && n.fract() == 0.0 && (n as i64) % 2 != 0 {
                            -(-a).powf(1.0 / n)
                        } else {
                            a.powf(1.0 / n)
                        }
                    }
                    Func::Binom => {
                        let n = a;
                        let k = b.unwrap_or(f64::NAN);
                        if k < 0.0 || k.fract() != 0.0 || k > 1000.0 {
                            f64::NAN
                        } else {
                            (0..k as u64)
                                .fold(1.0, |acc, i| acc * (n - i as f64) / (i as f64 + 1.0))
                        }
                    }
                    Func::Sin => a.sin(),
                    Func::Cos => a.cos(),
                    Func::Tan => a.tan(),
                    Func::Sec => 1.0 / a.cos(),
                    Func::Csc => 1.0 / a.sin(),
                    Func::Cot => 1.0 / a.tan(),
                    Func::Ln => a.ln(),
                    Func::Log => match b {
                        Some(base) => a.ln() / base.ln(),
                        None => a.log10(),
                    },
                    Func::Exp => a.exp(),
                    Func::Asin => a.asin(),
                    Func::Acos => a.acos(),
                    Func::Atan => a.atan(),
                    Func::Sinh => a.sinh(),
                    Func::Cosh => a.cosh(),
                    Func::Tanh => a.tanh(),
                    Func::Abs => a.abs(),
                }
            }
        }
    }
}

/// `log_base(x)` when it is an integer k with base^k == x.
fn exact_log(x: &BigRational, base: &BigRational) -> Option<BigRational> {
    if !x.is_positive() || !base.is_positive() || base == &BigRational::from_integer(1.into()) {
        return None;
    }
    let guess = (number::to_f64(x).ln() / number::to_f64(base).ln()).round();
    if !guess.is_finite() || guess.abs() > 10_000.0 {
        return None;
    }
    let k = BigInt::from(guess as i64);
    (number::pow_int(base, &k)? == *x).then(|| BigRational::from_integer(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> Option<BigRational> {
        parse(s).unwrap().eval_exact(&[])
    }

    fn r(n: i64, d: i64) -> BigRational {
        BigRational::new(n.into(), d.into())
    }

    #[test]
    fn arithmetic() {
        assert_eq!(ev("1+2*3"), Some(r(7, 1)));
        assert_eq!(ev("-2^2"), Some(r(-4, 1)));
        assert_eq!(ev("2^-1"), Some(r(1, 2)));
        assert_eq!(ev("((1)/(2))"), Some(r(1, 2)));
        assert_eq!(ev("2(3+4)"), Some(r(14, 1)));
        assert_eq!(ev("sqrt(16)"), Some(r(4, 1)));
        assert_eq!(ev("5!"), Some(r(120, 1)));
        assert_eq!(ev("binom((5),(2))"), Some(r(10, 1)));
        assert_eq!(ev("log_2(8)"), Some(r(3, 1)));
        assert_eq!(ev("50%"), Some(r(1, 2)));
        assert_eq!(ev("1.5e3"), Some(r(1500, 1)));
        assert_eq!(ev("sqrt(2)"), None);
    }

    #[test]
    fn letters_split() {
        let e = parse("2pir").unwrap();
        let mut v = BTreeSet::new();
        e.vars(&mut v);
        assert_eq!(v.into_iter().collect::<Vec<_>>(), vec!["r".to_string()]);
    }

    #[test]
    fn deep_input_is_rejected() {
        assert!(parse(&"-".repeat(10_000)).is_err());
        assert!(parse(&("(".repeat(5000) + "1" + &")".repeat(5000))).is_err());
    }
}
