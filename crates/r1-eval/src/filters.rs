//! Rejection-sampling selection (R1 stage 3): keep correct answers, drop chains of
//! thought with mixed languages, very long paragraphs or code blocks, deduplicate,
//! and keep at most `keep` per prompt. Shared by `r1 sample` and `r1 distill`.

use std::collections::{BTreeMap, HashSet};

use r1_rewards::rewards::language::{detect_language, language_share};
use serde::{Deserialize, Serialize};

/// One sampled answer to select from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The example's id.
    pub prompt_id: String,
    /// The user question (what goes into the SFT `user` message).
    pub prompt: String,
    /// The example's chat turns `(role, content)` when its dataset gave a conversation
    /// (`prompt` is then the last user turn): the SFT record keeps them all.
    pub conversation: Option<Vec<(String, String)>>,
    pub sample_index: usize,
    pub completion: String,
    /// Verified correct against the reference.
    pub correct: bool,
    /// A code task (code blocks are expected there, so that filter skips it).
    pub code_task: bool,
    /// Scores for provenance (`accuracy` or `code`, `language_consistency`, …).
    pub scores: BTreeMap<String, f64>,
}

/// Which filters run. `None` / `false` switches a filter off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterOptions {
    /// Drop incorrect samples (off only for data without references).
    pub require_correct: bool,
    /// Drop when the share of chain-of-thought words in the prompt's language is
    /// below this. Default 0.95: about one foreign function word in twenty; the
    /// measure counts stop words of other languages, so a single borrowed term
    /// (`de Moivre`) in a long English chain of thought stays well above it.
    pub min_language_consistency: Option<f64>,
    /// Drop when one paragraph (text between blank lines) is longer than this many
    /// characters. Default 1500.
    pub max_paragraph_chars: Option<usize>,
    /// Drop completions containing a fenced code block (```) in non-code tasks.
    pub drop_code_blocks: bool,
    /// Drop a completion whose normalised text (lower case, whitespace collapsed)
    /// equals an earlier kept one for the same prompt.
    pub dedup: bool,
    /// Keep at most this many per prompt, the first in sample order (0: no cap).
    pub keep: usize,
}

impl Default for FilterOptions {
    fn default() -> Self {
        Self {
            require_correct: true,
            min_language_consistency: Some(0.95),
            max_paragraph_chars: Some(1500),
            drop_code_blocks: true,
            dedup: true,
            keep: 0,
        }
    }
}

/// How many candidates each stage saw or dropped. Each dropped candidate is counted
/// once, by the first filter (in field order) that drops it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterCounts {
    pub generated: usize,
    pub correct: usize,
    pub incorrect: usize,
    pub mixed_language: usize,
    pub long_paragraph: usize,
    pub code_block: usize,
    pub duplicate: usize,
    pub over_keep: usize,
    pub kept: usize,
}

/// The chain of thought: text before the last `</think>` (after `<think>` when
/// present); everything when there is no closing tag.
pub fn chain_of_thought(completion: &str) -> &str {
    let head = match completion.rfind("</think>") {
        Some(k) => &completion[..k],
        None => completion,
    };
    match head.find("<think>") {
        Some(i) => &head[i + "<think>".len()..],
        None => head,
    }
}

/// Share of chain-of-thought words in the prompt's language (detected from the
/// prompt, as the `language_consistency` reward does); `None` when the chain of
/// thought has no words to measure (numbers only), which is not mixing.
pub fn language_consistency(prompt: &str, completion: &str) -> Option<f64> {
    let (share, words) = language_share(chain_of_thought(completion), detect_language(prompt));
    (words > 0).then_some(share)
}

/// The longest paragraph, in characters; paragraphs are separated by blank lines.
pub fn longest_paragraph(text: &str) -> usize {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .map(|p| p.trim().chars().count())
        .max()
        .unwrap_or(0)
}

/// Whether `text` has a fenced code block.
pub fn has_code_block(text: &str) -> bool {
    text.contains("```")
}

/// Text normalised for deduplication: lower case, whitespace runs made one space.
pub fn normalize_for_dedup(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Applies the filters in order (correctness, language, paragraph length, code
/// blocks, duplicates, per-prompt cap) and returns the kept candidates in input
/// order with the counts. The language score is recorded in each candidate's
/// `scores` as `language_consistency` when measured.
pub fn select(samples: Vec<Candidate>, opts: &FilterOptions) -> (Vec<Candidate>, FilterCounts) {
    let mut counts = FilterCounts {
        generated: samples.len(),
        ..Default::default()
    };
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut per_prompt: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept = Vec::new();
    for mut c in samples {
        if c.correct {
            counts.correct += 1;
        } else if opts.require_correct {
            counts.incorrect += 1;
            continue;
        }
        if let Some(min) = opts.min_language_consistency {
            if let Some(share) = language_consistency(&c.prompt, &c.completion) {
                c.scores.insert("language_consistency".into(), share);
                if share < min {
                    counts.mixed_language += 1;
                    continue;
                }
            }
        }
        if let Some(max) = opts.max_paragraph_chars {
            if longest_paragraph(&c.completion) > max {
                counts.long_paragraph += 1;
                continue;
            }
        }
        if opts.drop_code_blocks && !c.code_task && has_code_block(&c.completion) {
            counts.code_block += 1;
            continue;
        }
        if opts.dedup && !seen.insert((c.prompt_id.clone(), normalize_for_dedup(&c.completion))) {
            counts.duplicate += 1;
            continue;
        }
        let n = per_prompt.entry(c.prompt_id.clone()).or_default();
        if opts.keep > 0 && *n >= opts.keep {
            counts.over_keep += 1;
            continue;
        }
        *n += 1;
        kept.push(c);
    }
    counts.kept = kept.len();
    (kept, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str, i: usize, text: &str, correct: bool) -> Candidate {
        Candidate {
            prompt_id: id.into(),
            prompt: "What is the sum of two and three?".into(),
            conversation: None,
            sample_index: i,
            completion: text.into(),
            correct,
            code_task: false,
            scores: BTreeMap::new(),
        }
    }

    const GOOD: &str = "<think>We add the two numbers and get five.</think> <answer>5</answer>";

    #[test]
    fn each_filter_counts_once() {
        let long = format!("<think>{}</think> <answer>5</answer>", "add ".repeat(500));
        let samples = vec![
            cand("a", 0, GOOD, true),
            cand("a", 1, "<think>wrong</think> <answer>6</answer>", false),
            cand(
                "a",
                2,
                "<think>We add 然后 得到 数字 相加 five</think> <answer>5</answer>",
                true,
            ),
            cand("a", 3, &long, true),
            cand(
                "a",
                4,
                "<think>We run code.\n```\nprint(5)\n```</think> <answer>5</answer>",
                true,
            ),
            // Same text as sample 0 up to case and spacing.
            cand(
                "a",
                5,
                "<think>We  add the two numbers and GET five.</think> <answer>5</answer>",
                true,
            ),
            cand(
                "a",
                6,
                "<think>We add them, which gives five.</think> <answer>5</answer>",
                true,
            ),
            cand("b", 0, GOOD, true),
        ];
        let opts = FilterOptions {
            keep: 1,
            ..Default::default()
        };
        let (kept, c) = select(samples, &opts);
        let ids: Vec<(&str, usize)> = kept
            .iter()
            .map(|k| (k.prompt_id.as_str(), k.sample_index))
            .collect();
        // Same text for another prompt is not a duplicate.
        assert_eq!(ids, vec![("a", 0), ("b", 0)]);
        assert_eq!(
            c,
            FilterCounts {
                generated: 8,
                correct: 7,
                incorrect: 1,
                mixed_language: 1,
                long_paragraph: 1,
                code_block: 1,
                duplicate: 1,
                over_keep: 1,
                kept: 2,
            }
        );
        assert_eq!(kept[0].scores["language_consistency"], 1.0);
    }

    #[test]
    fn filters_switch_off() {
        let samples = vec![
            cand("a", 0, "<think>x\n```\ny\n```</think>5", false),
            cand("a", 1, "<think>x\n```\ny\n```</think>5", true),
        ];
        let opts = FilterOptions {
            require_correct: false,
            min_language_consistency: None,
            max_paragraph_chars: None,
            drop_code_blocks: false,
            dedup: false,
            keep: 0,
        };
        let (kept, c) = select(samples, &opts);
        assert_eq!((kept.len(), c.correct, c.kept), (2, 1, 2));
    }

    #[test]
    fn code_tasks_keep_code_blocks_and_numbers_are_not_mixing() {
        let mut c = cand(
            "a",
            0,
            "<think>def f</think>\n```python\nprint(5)\n```",
            true,
        );
        c.code_task = true;
        let n = cand("b", 0, "<think>2 + 3 = 5</think> 5", true);
        let (kept, _) = select(vec![c, n], &FilterOptions::default());
        assert_eq!(kept.len(), 2);
        assert_eq!(language_consistency("What?", "<think>2 + 3</think>"), None);
    }

    #[test]
    fn paragraphs() {
        assert_eq!(longest_paragraph("ab\n\nabcd\r\n\r\nx"), 4);
        assert_eq!(chain_of_thought("<think>abc</think>d"), "abc");
        assert_eq!(chain_of_thought("abc"), "abc");
    }
}
