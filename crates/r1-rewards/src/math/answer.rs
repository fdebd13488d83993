//! Answer structure: normalisation of the raw string and parsing into a tuple, set,
//! interval, matrix, equation, plain expression or text.
//!
//! Structure is decided on the plain string (after LaTeX conversion), looking only at
//! top-level brackets, so `f(1,2)` is an expression while `(1,2)` is a tuple.

use super::expr::{self, Expr};
use super::latex;
use super::number;
use super::MathError;

/// Longest answer (in chars) we parse; longer answers are only compared as strings.
/// Real answers are short; this bounds time and memory on hostile input.
pub const MAX_PARSE_CHARS: usize = 4_000;

/// A structured answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A single expression: `42`, `\frac{\sqrt3}{2}`, `2x+1`.
    Expr(Expr),
    /// `lhs = rhs (= …)`: `x = 3`, `y = 2x + 1`.
    Equation(Vec<Expr>),
    /// Ordered, bracketed: tuples `(1,2)`, intervals `[0, 1)`, lists `[1,2,3]`.
    Seq {
        open: char,
        close: char,
        items: Vec<Answer>,
    },
    /// Unordered: `\{1, 2\}` (braced) or a bare list `1, 2` (not braced). A bare
    /// list compared with a tuple is compared in order.
    Set { braced: bool, items: Vec<Answer> },
    /// Matrix rows (column vectors are n×1).
    Matrix(Vec<Vec<Answer>>),
    /// Union of intervals/sets, unordered.
    Union(Vec<Answer>),
    /// Anything else, normalised (lower case, no spaces).
    Text(String),
}

/// Strips math delimiters and LaTeX, units, trailing punctuation and thousands
/// separators: the first step for both the prediction and the reference.
pub fn normalize(raw: &str) -> Result<String, MathError> {
    let mut s = raw.trim();
    for (open, close) in [("\\[", "\\]"), ("\\(", "\\)"), ("$$", "$$")] {
        if let Some(inner) = s.strip_prefix(open).and_then(|t| t.strip_suffix(close)) {
            s = inner.trim();
        }
    }
    if s.chars().count() > MAX_PARSE_CHARS {
        return Err(MathError::TooLong);
    }
    let plain = latex::latex_to_plain(s)?;
    let mut t = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    // Trailing sentence punctuation; a trailing `...` is kept out of numbers too.
    loop {
        let trimmed = t.trim_end_matches(['.', ' ', ';', '!']);
        let trimmed = trimmed.strip_suffix(',').unwrap_or(trimmed);
        if trimmed.len() == t.len() {
            break;
        }
        t = trimmed.to_string();
    }
    // `5!` ends with `!` but is a factorial, so restore it when a digit precedes.
    if plain.trim_end().ends_with('!') && t.ends_with(|c: char| c.is_ascii_digit() || c == ')') {
        t.push('!');
    }
    t = strip_units(&t);
    t = t.trim_start_matches(['$', ' ']).to_string();
    if let Some(n) = number::strip_thousands(&t) {
        return Ok(n);
    }
    if let Some(m) = mixed_number(&t) {
        return Ok(m);
    }
    Ok(t)
}

/// Words that are never units (function names and constants).
fn reserved_word(w: &str) -> bool {
    matches!(
        w,
        "pi" | "inf"
            | "infty"
            | "sqrt"
            | "root"
            | "binom"
            | "sin"
            | "cos"
            | "tan"
            | "sec"
            | "csc"
            | "cot"
            | "ln"
            | "log"
            | "exp"
            | "abs"
            | "mat"
            | "in"
            | "arcsin"
            | "arccos"
            | "arctan"
            | "sinh"
            | "cosh"
            | "tanh"
    )
}

/// Units that may be written glued to the number (`5cm`, `60mph`).
const COMMON_UNITS: &[&str] = &[
    "cm", "mm", "km", "m", "kg", "mg", "g", "lb", "lbs", "oz", "ft", "in", "yd", "mi", "mph",
    "kph", "ml", "mL", "L", "l", "s", "sec", "min", "hr", "hrs", "h", "am", "pm", "cents",
    "dollars", "units", "degrees", "deg", "rad",
];

/// Removes trailing unit words after a number: `18 dollars`, `5 cm^(2)`,
/// `12 square feet`. Single letters are kept (they are variables), and nothing is
/// stripped unless a number remains.
fn strip_units(s: &str) -> String {
    let mut t = s.trim_end().to_string();
    for _ in 0..6 {
        let mut end = t.len();
        // optional `^(2)` / `^2` on the unit
        let stripped_pow = t
            .strip_suffix("^(2)")
            .or_else(|| t.strip_suffix("^(3)"))
            .or_else(|| t.strip_suffix("^2"))
            .or_else(|| t.strip_suffix("^3"));
        if let Some(p) = stripped_pow {
            end = p.len();
        }
        let head = t[..end].trim_end();
        let word_start = head
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphabetic())
            .last()
            .map(|(i, _)| i);
        let Some(ws) = word_start else { break };
        let word = &head[ws..];
        let before = &head[..ws];
        if word.chars().count() < 2 || reserved_word(word) {
            break;
        }
        let prev = before.chars().last();
        // Glued to a number (`5cm`) only for well-known units, because `6yx^2` is
        // a product of variables, not "6 yx squared".
        let glued_ok = matches!(prev, Some('0'..='9')) && COMMON_UNITS.contains(&word);
        if !(matches!(prev, Some(' ') | Some(')')) || glued_ok) {
            break;
        }
        if !before.chars().any(|c| c.is_ascii_digit()) {
            break;
        }
        t = before.trim_end().trim_end_matches(" per").to_string();
    }
    t
}

/// `3 1/2` → `(3+1/2)` (GSM8K-style mixed numbers written in plain text).
fn mixed_number(s: &str) -> Option<String> {
    let (sign, body) = match s.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", s),
    };
    let (whole, frac) = body.split_once(' ')?;
    let (n, d) = frac.split_once('/')?;
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    (digits(whole) && digits(n) && digits(d)).then(|| format!("{sign}({whole}+{n}/{d})"))
}

/// Splits at top-level occurrences of any of `seps` (outside all brackets).
fn split_top<'a>(s: &'a str, seps: &[char]) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut depth: i64 = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            c if depth == 0 && seps.contains(&c) => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// If `s` is wholly wrapped by one bracket pair (of any kind, so `[0,1)` counts),
/// returns the open/close characters and the inner text.
fn outer_brackets(s: &str) -> Option<(char, char, &str)> {
    let first = s.chars().next()?;
    let last = s.chars().last()?;
    if !matches!(first, '(' | '[' | '{') || !matches!(last, ')' | ']' | '}') || s.len() < 2 {
        return None;
    }
    let mut depth = 0i64;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 && i + c.len_utf8() != s.len() {
                    return None;
                }
            }
            _ => {}
        }
    }
    (depth == 0).then(|| (first, last, &s[1..s.len() - 1]))
}

/// Parses a normalised plain string into an [`Answer`].
pub fn parse_answer(s: &str) -> Result<Answer, MathError> {
    parse_depth(s, 0)
}

fn parse_depth(s: &str, depth: usize) -> Result<Answer, MathError> {
    if depth > 8 {
        return Err(MathError::TooDeep);
    }
    let s = s.trim();
    if s.is_empty() {
        return Err(MathError::Empty);
    }
    // `x in [1, 2]` → `[1, 2]`
    if let Some((lhs, rhs)) = s.split_once(" in ") {
        if lhs.trim().chars().all(|c| c.is_alphanumeric() || c == '_') {
            return parse_depth(rhs, depth + 1);
        }
    }
    let union: Vec<&str> = split_top(s, &['U']);
    if union.len() > 1 && union.iter().all(|p| outer_brackets(p.trim()).is_some()) {
        let items = union
            .iter()
            .map(|p| parse_depth(p, depth + 1))
            .collect::<Result<_, _>>()?;
        return Ok(Answer::Union(items));
    }
    if let Some(inner) = s.strip_prefix("mat(").and_then(|t| t.strip_suffix(')')) {
        let mut rows = Vec::new();
        for row in split_top(inner, &[';']) {
            let cells = split_top(row, &[','])
                .into_iter()
                .map(|c| parse_depth(c, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            rows.push(cells);
        }
        let width = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != width) {
            return Err(MathError::Syntax("ragged matrix".into()));
        }
        return Ok(Answer::Matrix(rows));
    }
    if let Some((open, close, inner)) = outer_brackets(s) {
        if open == '{' && close == '}' {
            let items = if inner.trim().is_empty() {
                Vec::new()
            } else {
                split_top(inner, &[',', ';'])
                    .into_iter()
                    .map(|p| parse_depth(p, depth + 1))
                    .collect::<Result<_, _>>()?
            };
            return Ok(Answer::Set {
                braced: true,
                items,
            });
        }
        let parts = split_top(inner, &[',', ';']);
        if parts.len() > 1 {
            let items = parts
                .into_iter()
                .map(|p| parse_depth(p, depth + 1))
                .collect::<Result<_, _>>()?;
            return Ok(Answer::Seq { open, close, items });
        }
    }
    let parts = split_top(s, &[',', ';']);
    if parts.len() > 1 {
        let items = parts
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| parse_depth(p, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        if items.len() == 1 {
            return Ok(items
                .into_iter()
                .next()
                .unwrap_or(Answer::Text(String::new())));
        }
        return Ok(Answer::Set {
            braced: false,
            items,
        });
    }
    // `a ± b` → the set {a + b, a - b}.
    let pm = split_top(s, &['±']);
    if pm.len() == 2 {
        let a = if pm[0].trim().is_empty() { "0" } else { pm[0] };
        let plus = expr::parse(&format!("({a})+({})", pm[1]))?;
        let minus = expr::parse(&format!("({a})-({})", pm[1]))?;
        return Ok(Answer::Set {
            braced: true,
            items: vec![Answer::Expr(plus), Answer::Expr(minus)],
        });
    }
    if let Some(ans) = inequality(s)? {
        return Ok(ans);
    }
    let eq = split_equals(s);
    // `(x, y) = (1, 2)`: a tuple of names on the left labels the value on the right.
    if eq.len() == 2 && eq[0].trim().starts_with('(') && eq[0].contains(',') {
        return parse_depth(eq[1], depth + 1);
    }
    if eq.len() > 1 {
        let exprs = eq
            .iter()
            .map(|p| expr::parse(p))
            .collect::<Result<Vec<_>, _>>();
        return Ok(match exprs {
            Ok(e) => Answer::Equation(e),
            Err(_) => Answer::Text(text_key(s)),
        });
    }
    match expr::parse(s) {
        Ok(e) => Ok(Answer::Expr(e)),
        Err(MathError::TooDeep) => Err(MathError::TooDeep),
        Err(_) => Ok(Answer::Text(text_key(s))),
    }
}

/// Splits on `=` that is not part of `<=`, `>=`, `!=`.
fn split_equals(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut depth = 0i64;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'=' if depth == 0 => {
                let prev = if i > 0 { bytes[i - 1] } else { b' ' };
                if !matches!(prev, b'<' | b'>' | b'!') {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `x > 3` → `(3, inf)`, `-1 <= x < 2` → `[-1, 2)`: inequalities on one variable
/// are compared as intervals.
fn inequality(s: &str) -> Result<Option<Answer>, MathError> {
    let mut parts = Vec::new();
    let mut ops = Vec::new();
    let mut rest = s;
    loop {
        let pos = rest.find(['<', '>', '≤', '≥']);
        let Some(p) = pos else {
            parts.push(rest);
            break;
        };
        let c = rest[p..].chars().next().unwrap_or('<');
        let mut len = c.len_utf8();
        let mut strict = matches!(c, '<' | '>');
        if strict && rest[p + len..].starts_with('=') {
            len += 1;
            strict = false;
        }
        let less = matches!(c, '<' | '≤');
        parts.push(&rest[..p]);
        ops.push((less, strict));
        rest = &rest[p + len..];
    }
    if ops.is_empty() {
        return Ok(None);
    }
    let is_var = |t: &str| {
        let t = t.trim();
        !t.is_empty() && t.chars().all(|c| c.is_alphabetic() || c == '_') && t.chars().count() <= 3
    };
    let inf = || Answer::Expr(Expr::Inf);
    let neg_inf = || Answer::Expr(Expr::Neg(Box::new(Expr::Inf)));
    let val = |t: &str| expr::parse(t).map(Answer::Expr);
    let interval = |lo: Answer, lo_closed: bool, hi: Answer, hi_closed: bool| Answer::Seq {
        open: if lo_closed { '[' } else { '(' },
        close: if hi_closed { ']' } else { ')' },
        items: vec![lo, hi],
    };
    Ok(match (parts.as_slice(), ops.as_slice()) {
        ([v, a], [(less, strict)]) if is_var(v) => Some(if *less {
            interval(neg_inf(), false, val(a)?, !strict)
        } else {
            interval(val(a)?, !strict, inf(), false)
        }),
        ([a, v], [(less, strict)]) if is_var(v) => Some(if *less {
            interval(val(a)?, !strict, inf(), false)
        } else {
            interval(neg_inf(), false, val(a)?, !strict)
        }),
        ([a, v, b], [(l1, s1), (l2, s2)]) if is_var(v) && l1 == l2 => Some(if *l1 {
            interval(val(a)?, !s1, val(b)?, !s2)
        } else {
            interval(val(b)?, !s2, val(a)?, !s1)
        }),
        _ => Some(Answer::Text(text_key(s))),
    })
}

/// Canonical text for answers that are not math: lower case, no spaces or quotes.
pub fn text_key(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '`' | '*'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalize("$1,234$").unwrap(), "1234");
        assert_eq!(normalize("18 dollars.").unwrap(), "18");
        assert_eq!(normalize("5 \\text{ cm}^2").unwrap(), "5");
        assert_eq!(normalize("3 1/2").unwrap(), "(3+1/2)");
        assert_eq!(normalize("5!").unwrap(), "5!");
    }

    #[test]
    fn structures() {
        assert!(matches!(parse_answer("(1,2)").unwrap(), Answer::Seq { .. }));
        assert!(matches!(
            parse_answer("{1,2}").unwrap(),
            Answer::Set { braced: true, .. }
        ));
        assert!(matches!(parse_answer("x=3").unwrap(), Answer::Equation(_)));
        assert!(matches!(
            parse_answer("mat(1,2;3,4)").unwrap(),
            Answer::Matrix(_)
        ));
        assert!(matches!(parse_answer("x > 3").unwrap(), Answer::Seq { .. }));
        assert!(matches!(
            parse_answer("hello world!?").unwrap(),
            Answer::Text(_)
        ));
    }
}
