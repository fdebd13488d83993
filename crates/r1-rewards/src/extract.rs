//! Final-answer extraction from a model's output (and from references).
//!
//! Rules, in priority order (the first that matches wins, and is reported):
//! 1. `answer_tag`: the last `<answer>…</answer>` (R1-Zero's template); a `\boxed{}`
//!    inside it is unwrapped;
//! 2. `boxed`: the last complete `\boxed{…}` / `\fbox{…}` (nested braces handled;
//!    an unbalanced one is skipped, never guessed);
//! 3. `gsm8k`: the last `#### 42` line;
//! 4. `answer_is`: the last "the answer is …" / "Answer: …";
//! 5. `bare`: the whole output when it looks like a bare answer (`\frac12`, `x=3`);
//! 6. `last_number`: the last number in the text (configurable, off for references).
//!
//! When the output contains `</think>`, only the text after it is searched by
//! default: the chain of thought is scratch work, not the answer.
//!
//! All scans are linear (with a bounded number of retries), so megabyte outputs are
//! handled in milliseconds.

use serde::{Deserialize, Serialize};

use crate::math;

/// Which rule found the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    AnswerTag,
    Boxed,
    Gsm8k,
    AnswerIs,
    Bare,
    LastNumber,
}

impl Rule {
    /// Stable name used in logs and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::AnswerTag => "answer_tag",
            Rule::Boxed => "boxed",
            Rule::Gsm8k => "gsm8k",
            Rule::AnswerIs => "answer_is",
            Rule::Bare => "bare",
            Rule::LastNumber => "last_number",
        }
    }
}

/// An extracted answer and the rule that found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extracted {
    pub answer: String,
    pub rule: Rule,
}

/// Extraction options (serde: all fields optional).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractOptions {
    /// Search only after the last `think_close` tag when present.
    pub after_think: bool,
    pub think_close: String,
    pub answer_open: String,
    pub answer_close: String,
    /// Fall back to the last number in the text. Lenient (GSM8K style); turn off to
    /// require an explicit answer.
    pub fallback_last_number: bool,
    /// Accept the whole output when it is short and looks like a bare answer.
    pub allow_bare: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            after_think: true,
            think_close: "</think>".into(),
            answer_open: "<answer>".into(),
            answer_close: "</answer>".into(),
            fallback_last_number: true,
            allow_bare: true,
        }
    }
}

/// How many `\boxed` candidates (from the end) are tried before giving up; bounds
/// the work on inputs with thousands of unbalanced `\boxed{`.
const MAX_BOXED_TRIES: usize = 16;

/// Bare answers are at most this long.
const MAX_BARE_CHARS: usize = 200;

/// Extracts the final answer from a model output; `None` if no rule matched.
pub fn extract_answer(text: &str, opts: &ExtractOptions) -> Option<Extracted> {
    let mut region = text;
    if opts.after_think && !opts.think_close.is_empty() {
        if let Some(k) = text.rfind(&opts.think_close) {
            region = &text[k + opts.think_close.len()..];
        }
    }
    if let Some(a) = answer_tag(region, opts) {
        return Some(Extracted {
            answer: a,
            rule: Rule::AnswerTag,
        });
    }
    if let Some(a) = last_boxed(region) {
        return Some(Extracted {
            answer: a.to_string(),
            rule: Rule::Boxed,
        });
    }
    if let Some(a) = gsm8k(region) {
        return Some(Extracted {
            answer: a,
            rule: Rule::Gsm8k,
        });
    }
    if let Some(a) = answer_is(region) {
        return Some(Extracted {
            answer: a,
            rule: Rule::AnswerIs,
        });
    }
    if opts.allow_bare && looks_bare(region) {
        return Some(Extracted {
            answer: region.trim().to_string(),
            rule: Rule::Bare,
        });
    }
    if opts.fallback_last_number {
        if let Some(n) = last_number(region) {
            return Some(Extracted {
                answer: n.to_string(),
                rule: Rule::LastNumber,
            });
        }
    }
    None
}

/// Why a reference answer was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReferenceError {
    #[error("reference is empty")]
    Empty,
    #[error("reference has an unbalanced \\boxed{{")]
    UnbalancedBoxed,
    #[error("reference cannot be parsed: {0}")]
    Unparseable(#[from] math::MathError),
}

/// Extracts and validates a reference (gold) answer. The same markers as
/// predictions are understood (`#### 42`, `\boxed{}`, `<answer>`, "the answer is"),
/// otherwise the whole string is the answer. A reference that cannot be parsed is an
/// error, so a broken data set never hands out free reward.
pub fn extract_reference(text: &str) -> Result<Extracted, ReferenceError> {
    let opts = ExtractOptions {
        after_think: false,
        fallback_last_number: false,
        allow_bare: false,
        ..ExtractOptions::default()
    };
    let ex = match extract_answer(text, &opts) {
        Some(ex) => ex,
        None => {
            if has_unbalanced_boxed(text) {
                return Err(ReferenceError::UnbalancedBoxed);
            }
            Extracted {
                answer: text.trim().to_string(),
                rule: Rule::Bare,
            }
        }
    };
    if ex.answer.trim().is_empty() {
        return Err(ReferenceError::Empty);
    }
    math::parse_answer(&ex.answer)?;
    Ok(ex)
}

fn answer_tag(text: &str, opts: &ExtractOptions) -> Option<String> {
    if opts.answer_open.is_empty() || opts.answer_close.is_empty() {
        return None;
    }
    let close = text.rfind(&opts.answer_close)?;
    let open = text[..close].rfind(&opts.answer_open)?;
    let inner = &text[open + opts.answer_open.len()..close];
    // Nested or repeated tags: drop any leftovers.
    let inner = inner
        .replace(&opts.answer_open, " ")
        .replace(&opts.answer_close, " ");
    let inner = inner.trim();
    if inner.is_empty() {
        return None;
    }
    if let Some(b) = last_boxed(inner) {
        return Some(b.to_string());
    }
    if let Some(a) = answer_is(inner) {
        return Some(a);
    }
    Some(inner.to_string())
}

/// Contents of the last complete `\boxed{…}` or `\fbox{…}` (or `\boxed 5`).
pub fn last_boxed(text: &str) -> Option<&str> {
    let mut starts: Vec<(usize, usize)> = Vec::new();
    for cmd in ["\\boxed", "\\fbox"] {
        starts.extend(
            text.rmatch_indices(cmd)
                .take(MAX_BOXED_TRIES)
                .map(|(i, m)| (i, i + m.len())),
        );
    }
    starts.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    for &(_, after) in starts.iter().take(MAX_BOXED_TRIES) {
        let rest = &text[after..];
        let trimmed = rest.trim_start();
        if let Some(body) = trimmed.strip_prefix('{') {
            if let Some(end) = matching_brace(body) {
                return Some(body[..end].trim());
            }
        } else if rest.starts_with(' ') {
            // `\boxed 5`: one token.
            let tok = trimmed
                .split(|c: char| c.is_whitespace() || c == '$')
                .next()
                .unwrap_or("");
            if !tok.is_empty() {
                return Some(tok);
            }
        }
    }
    None
}

fn has_unbalanced_boxed(text: &str) -> bool {
    (text.contains("\\boxed") || text.contains("\\fbox")) && last_boxed(text).is_none()
}

/// Byte index of the `}` closing a group whose `{` was just consumed; escaped braces
/// (`\{`) do not count. Iterative, so nesting depth is irrelevant.
fn matching_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 1usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn gsm8k(text: &str) -> Option<String> {
    let k = text.rfind("####")?;
    let rest = text[k..].trim_start_matches('#');
    let line = rest.lines().next().unwrap_or("").trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// Text after the last "the answer is" / "final answer:" / "Answer:" on its line.
fn answer_is(text: &str) -> Option<String> {
    // ASCII lower-casing keeps byte offsets, so indices map back to `text`.
    let lower = text.to_ascii_lowercase();
    let mut best: Option<usize> = None;
    for pat in [
        "answer is",
        "answer:",
        "answer :",
        "answer would be",
        "answer will be",
    ] {
        if let Some(k) = lower.rfind(pat) {
            let end = k + pat.len();
            if best.is_none_or(|b| end > b) {
                best = Some(end);
            }
        }
    }
    let rest = &text[best?..];
    let line = rest.lines().next().unwrap_or("");
    let line = line.trim_start_matches([':', ' ', '*', '\t']);
    if let Some(b) = last_boxed(line) {
        return Some(b.to_string());
    }
    // Cut at the end of the sentence ("… is 5. Done."); `3.5` has no space after
    // its point, so decimals survive.
    let line = match line.find(". ") {
        Some(k) => &line[..k],
        None => line,
    };
    let line = line
        .trim()
        .trim_end_matches(['.', '*', ' '])
        .trim_matches('$')
        .trim();
    (!line.is_empty()).then(|| line.to_string())
}

fn looks_bare(text: &str) -> bool {
    let t = text.trim();
    // An unbalanced `\boxed{` is a broken answer, not a bare one.
    if t.is_empty()
        || t.len() > MAX_BARE_CHARS
        || t.contains('\n')
        || t.contains("\\boxed")
        || t.contains("\\fbox")
    {
        return false;
    }
    if !t.contains(char::is_whitespace) {
        return true;
    }
    let bytes = t.as_bytes();
    let mut words = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let escaped = start > 0 && bytes[start - 1] == b'\\';
            let w = &t[start..i];
            if !escaped && w.len() >= 3 && !matches!(w, "sqrt" | "frac" | "pi" | "inf" | "text") {
                words += 1;
            }
        } else {
            i += 1;
        }
    }
    let numeric_start = t.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '$');
    words == 0 || (words == 1 && numeric_start)
}

/// The last number in the text: `-1,234.5`, `3/4`, `.5`.
pub fn last_number(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let last_digit = bytes.iter().rposition(u8::is_ascii_digit)?;
    let mut start = last_digit;
    while start > 0 {
        let c = bytes[start - 1];
        let grouping_comma = c == b',' && start >= 2 && bytes[start - 2].is_ascii_digit();
        if c.is_ascii_digit() || c == b'.' || c == b'/' || grouping_comma {
            start -= 1;
        } else {
            break;
        }
    }
    if start > 0 && bytes[start - 1] == b'-' {
        start -= 1;
    }
    let num = text[start..=last_digit].trim_start_matches(['.', '/', ',']);
    // Validate thousands grouping; otherwise keep only the part after the last comma.
    if num.contains(',') && math::number::strip_thousands(num).is_none() {
        return num.rsplit(',').next();
    }
    Some(num)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<(String, Rule)> {
        extract_answer(s, &ExtractOptions::default()).map(|e| (e.answer, e.rule))
    }

    #[test]
    fn rules() {
        assert_eq!(
            ex("so \\boxed{\\frac{1}{2}}."),
            Some(("\\frac{1}{2}".into(), Rule::Boxed))
        );
        assert_eq!(
            ex("\\boxed{1} then \\boxed{2}"),
            Some(("2".into(), Rule::Boxed))
        );
        assert_eq!(
            ex("<think>\\boxed{9}</think><answer>5</answer>"),
            Some(("5".into(), Rule::AnswerTag))
        );
        assert_eq!(ex("blah\n#### 1,234"), Some(("1,234".into(), Rule::Gsm8k)));
        assert_eq!(
            ex("So the answer is $42$."),
            Some(("42".into(), Rule::AnswerIs))
        );
        assert_eq!(
            ex("\\frac{1}{2}"),
            Some(("\\frac{1}{2}".into(), Rule::Bare))
        );
        assert_eq!(
            ex("I bought 3 apples and then 4 more, 7 total"),
            Some(("7".into(), Rule::LastNumber))
        );
        assert_eq!(
            ex("\\boxed{\\{1,2\\}}"),
            Some(("\\{1,2\\}".into(), Rule::Boxed))
        );
        assert_eq!(
            ex("<answer><answer>5</answer></answer>"),
            Some(("5".into(), Rule::AnswerTag))
        );
    }

    #[test]
    fn unbalanced_boxed_falls_through() {
        assert_eq!(
            ex("\\boxed{3} and \\boxed{4"),
            Some(("3".into(), Rule::Boxed))
        );
        assert!(extract_reference("\\boxed{4").is_err());
    }

    #[test]
    fn references() {
        assert_eq!(extract_reference("#### 42").unwrap().answer, "42");
        assert_eq!(extract_reference("1/2").unwrap().answer, "1/2");
        assert!(extract_reference("   ").is_err());
    }

    #[test]
    fn last_numbers() {
        assert_eq!(last_number("total 1,234 dollars"), Some("1,234"));
        assert_eq!(last_number("it is -3.5."), Some("-3.5"));
        assert_eq!(last_number("ratio 3/4"), Some("3/4"));
        assert_eq!(last_number("none"), None);
    }
}
