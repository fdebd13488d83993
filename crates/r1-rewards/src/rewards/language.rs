//! `language_consistency`: R1 stage 2's language-consistency reward, the share of the
//! chain of thought's words that are in the target language.
//!
//! Method (no model, no data files, deterministic):
//! 1. Words are maximal runs of letters of one Unicode script. Chinese and Japanese
//!    are written without spaces, so each Han/kana character counts as one word.
//!    LaTeX commands (`\frac`), text inside `$…$` and code blocks, and single Latin
//!    letters (math variables) are ignored: they belong to no language.
//! 2. A word's script (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai,
//!    Hangul, kana, Han) decides its language for non-Latin targets (Japanese accepts
//!    Han and kana, Korean Hangul and Han).
//! 3. Latin-script languages share a script, so for them a Latin word counts as the
//!    target unless it is a function word (stop word) of another Latin language that
//!    is not also one of the target's (`the` is foreign in a French chain of thought;
//!    `de` in an English one). Content words cannot be told apart without a
//!    dictionary, so this measures mixing of grammar, which is what language mixing
//!    looks like in practice.
//! 4. The target is configured (`target = "en"`) or detected from the prompt: a
//!    non-Latin script holding at least 25% of the prompt's words wins (so an
//!    English template around a Chinese question is Chinese); otherwise the Latin
//!    language with the most stop words, English on ties.

use serde::{Deserialize, Serialize};

use crate::rewards::split_think;
use crate::{RewardFn, RewardInput, Score};

/// Unicode script classes used for words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Latin,
    Cyrillic,
    Greek,
    Arabic,
    Hebrew,
    Devanagari,
    Thai,
    Hangul,
    Kana,
    Han,
    Other,
}

/// The script of a letter.
pub fn script_of(c: char) -> Script {
    match c as u32 {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF => Script::Latin,
        0x370..=0x3FF | 0x1F00..=0x1FFF => Script::Greek,
        0x400..=0x52F => Script::Cyrillic,
        0x590..=0x5FF => Script::Hebrew,
        0x600..=0x6FF | 0x750..=0x77F => Script::Arabic,
        0x900..=0x97F => Script::Devanagari,
        0xE00..=0xE7F => Script::Thai,
        0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => Script::Hangul,
        0x3040..=0x30FF => Script::Kana,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF => Script::Han,
        _ => Script::Other,
    }
}

const STOP_WORDS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "the", "and", "is", "are", "of", "to", "that", "this", "with", "for", "we", "it", "be",
            "have", "not", "which", "so", "then", "was", "what", "there", "from", "by", "can",
            "will", "let", "but", "if", "or", "an", "now", "need", "wait", "first", "since",
        ],
    ),
    (
        "fr",
        &[
            "le", "la", "les", "des", "est", "et", "une", "un", "du", "que", "qui", "dans", "pour",
            "pas", "nous", "avec", "sur", "sont", "donc", "ce", "cette", "il", "au", "aux", "par",
            "mais", "ou", "alors", "faut", "peut",
        ],
    ),
    (
        "de",
        &[
            "der", "die", "das", "und", "ist", "nicht", "ein", "eine", "zu", "den", "dem", "mit",
            "sich", "des", "auf", "für", "wir", "es", "sind", "auch", "dass", "wenn", "oder",
            "also", "aber", "von", "wird", "ich", "jetzt",
        ],
    ),
    (
        "es",
        &[
            "el", "los", "las", "es", "y", "que", "de", "en", "un", "una", "por", "con", "para",
            "del", "se", "al", "lo", "como", "pero", "sus", "está", "son", "entonces", "si",
            "tenemos", "ahora",
        ],
    ),
    (
        "it",
        &[
            "il", "lo", "gli", "le", "di", "che", "è", "e", "un", "una", "per", "con", "non",
            "sono", "della", "del", "questo", "quindi", "abbiamo", "allora", "ora",
        ],
    ),
    (
        "pt",
        &[
            "o", "os", "as", "de", "que", "e", "do", "da", "em", "um", "uma", "para", "com", "não",
            "é", "se", "por", "mais", "dos", "das", "então", "temos", "agora",
        ],
    ),
    (
        "nl",
        &[
            "de", "het", "een", "en", "van", "is", "dat", "niet", "op", "te", "zijn", "met",
            "voor", "er", "maar", "ook", "dan", "wij", "we",
        ],
    ),
];

fn latin_lang(code: &str) -> bool {
    STOP_WORDS.iter().any(|(c, _)| *c == code)
}

fn stop_words(code: &str) -> &'static [&'static str] {
    STOP_WORDS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(&[], |(_, w)| *w)
}

/// The scripts a target language is written in.
fn target_scripts(code: &str) -> &'static [Script] {
    match code {
        "zh" => &[Script::Han],
        "ja" => &[Script::Han, Script::Kana],
        "ko" => &[Script::Hangul, Script::Han],
        "ru" | "uk" | "bg" | "sr" => &[Script::Cyrillic],
        "el" => &[Script::Greek],
        "ar" | "fa" | "ur" => &[Script::Arabic],
        "he" => &[Script::Hebrew],
        "hi" | "mr" | "ne" => &[Script::Devanagari],
        "th" => &[Script::Thai],
        _ => &[Script::Latin],
    }
}

/// Words of a text with their scripts, skipping LaTeX, math, code and single Latin
/// letters (see the module docs).
pub fn words(text: &str) -> Vec<(String, Script)> {
    let mut out = Vec::new();
    let mut in_math = false;
    let mut in_code = false;
    let mut cur = String::new();
    let mut cur_script = Script::Other;
    let mut escaped = false;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let flush = |cur: &mut String, s: Script, escaped: bool, out: &mut Vec<(String, Script)>| {
        if !cur.is_empty() {
            let single_latin = s == Script::Latin && cur.chars().count() == 1;
            if !escaped && !single_latin {
                out.push((std::mem::take(cur), s));
            }
            cur.clear();
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '`' && chars.get(i + 1) == Some(&'`') && chars.get(i + 2) == Some(&'`') {
            flush(&mut cur, cur_script, escaped, &mut out);
            in_code = !in_code;
            i += 3;
            continue;
        }
        if c == '$' {
            flush(&mut cur, cur_script, escaped, &mut out);
            in_math = !in_math;
            i += 1;
            continue;
        }
        if in_math || in_code {
            i += 1;
            continue;
        }
        let s = if c.is_alphabetic() {
            script_of(c)
        } else {
            Script::Other
        };
        if s == Script::Other {
            flush(&mut cur, cur_script, escaped, &mut out);
            escaped = c == '\\';
        } else if matches!(s, Script::Han | Script::Kana) {
            flush(&mut cur, cur_script, escaped, &mut out);
            escaped = false;
            out.push((c.to_string(), s));
        } else {
            if !cur.is_empty() && s != cur_script {
                flush(&mut cur, cur_script, escaped, &mut out);
                escaped = false;
            }
            cur_script = s;
            cur.extend(c.to_lowercase());
        }
        i += 1;
    }
    flush(&mut cur, cur_script, escaped, &mut out);
    out
}

/// Detects the language of a prompt (ISO 639-1 code), as described in the module docs.
pub fn detect_language(text: &str) -> &'static str {
    let ws = words(text);
    if ws.is_empty() {
        return "en";
    }
    let count = |s: Script| ws.iter().filter(|(_, w)| *w == s).count();
    let total = ws.len();
    let han = count(Script::Han);
    let kana = count(Script::Kana);
    let candidates: [(&str, usize); 10] = [
        ("ja", if kana > 0 { han + kana } else { 0 }),
        ("zh", if kana == 0 { han } else { 0 }),
        ("ko", count(Script::Hangul)),
        ("ru", count(Script::Cyrillic)),
        ("el", count(Script::Greek)),
        ("ar", count(Script::Arabic)),
        ("he", count(Script::Hebrew)),
        ("hi", count(Script::Devanagari)),
        ("th", count(Script::Thai)),
        ("", 0),
    ];
    if let Some((code, n)) = candidates.iter().max_by_key(|(_, n)| *n) {
        if *n * 4 >= total && *n > 0 {
            return code;
        }
    }
    let mut best = ("en", 0usize);
    for (code, list) in STOP_WORDS {
        let n = ws
            .iter()
            .filter(|(w, _)| list.contains(&w.as_str()))
            .count();
        if n > best.1 {
            best = (code, n);
        }
    }
    best.0
}

/// Share of `text`'s words in language `target`, and the word count.
pub fn language_share(text: &str, target: &str) -> (f64, usize) {
    let ws = words(text);
    if ws.is_empty() {
        return (0.0, 0);
    }
    let scripts = target_scripts(target);
    let own = stop_words(target);
    let in_target = ws
        .iter()
        .filter(|(w, s)| {
            if !scripts.contains(s) {
                return false;
            }
            if *s != Script::Latin || !latin_lang(target) {
                return true;
            }
            let foreign = STOP_WORDS
                .iter()
                .any(|(c, list)| *c != target && list.contains(&w.as_str()));
            !foreign || own.contains(&w.as_str())
        })
        .count();
    (in_target as f64 / ws.len() as f64, ws.len())
}

/// Which part of the completion is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LanguageScope {
    /// The chain of thought (R1's definition).
    #[default]
    Think,
    /// The whole completion.
    All,
}

/// Options for [`LanguageConsistency`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LanguageOptions {
    /// ISO 639-1 code (`en`, `zh`, `fr`, …) or `auto` to detect from the prompt.
    pub target: String,
    pub scope: LanguageScope,
    pub think_open: String,
    pub think_close: String,
}

impl Default for LanguageOptions {
    fn default() -> Self {
        Self {
            target: "auto".into(),
            scope: LanguageScope::Think,
            think_open: "<think>".into(),
            think_close: "</think>".into(),
        }
    }
}

/// The language-consistency reward.
pub struct LanguageConsistency {
    pub opts: LanguageOptions,
}

impl RewardFn for LanguageConsistency {
    fn name(&self) -> &str {
        "language_consistency"
    }

    fn score(&self, input: &RewardInput) -> Score {
        let target: &str = if self.opts.target == "auto" {
            detect_language(input.prompt)
        } else {
            &self.opts.target
        };
        let text = match self.opts.scope {
            LanguageScope::All => input.completion,
            LanguageScope::Think => {
                split_think(
                    input.completion,
                    &self.opts.think_open,
                    &self.opts.think_close,
                )
                .0
            }
        };
        let (share, n) = language_share(text, target);
        if n == 0 {
            return Score::new(0.0, format!("no words to measure (target {target})"));
        }
        Score::new(
            share,
            format!("{:.0}% of {n} words in {target}", share * 100.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        assert_eq!(detect_language("What is the sum of 2 and 3?"), "en");
        assert_eq!(detect_language("求 2 和 3 的和。"), "zh");
        assert_eq!(detect_language("Quelle est la somme de 2 et 3 ?"), "fr");
        assert_eq!(detect_language("Was ist die Summe von 2 und 3?"), "de");
        assert_eq!(detect_language("Сколько будет 2 плюс 3?"), "ru");
        assert_eq!(detect_language("2たす3はいくつですか"), "ja");
    }

    #[test]
    fn shares() {
        assert_eq!(
            language_share("We add the numbers and get five", "en").0,
            1.0
        );
        let (s, _) = language_share("We add 然后 得到 five", "en");
        assert!(s > 0.2 && s < 0.7, "{s}");
        assert_eq!(language_share("我们 把 数字 相加", "zh").0, 1.0);
        // Latin math symbols and LaTeX do not count against Chinese.
        assert_eq!(language_share("设 x 为 $\\frac{a}{b}$ 的值", "zh").0, 1.0);
        // French function words in an English chain of thought are foreign.
        let (s, _) = language_share("the sum est la somme des nombres", "en");
        assert!(s < 0.6, "{s}");
    }
}
