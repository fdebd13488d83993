//! Counting reflective phrases: the "aha moment" signal of R1-Zero training.
//!
//! Matching is case-insensitive and on word boundaries: the character before a
//! phrase and the one after it must not be a letter or digit, so "waiter",
//! "await", "verification", "verified" and "actually's"… do not count as
//! "wait"/"verify"/"actually" (derived words describe checking rather than
//! being a moment of reflection, and counting them inflates the signal). A
//! phrase ending in `-` ("let me re-") has no boundary check at its end, so it
//! matches "let me re-check", "let me re-derive", .... A space in a phrase
//! matches any run of whitespace, and "hmm" also matches "hmmm…".
//!
//! Occurrences are non-overlapping, scanning left to right and preferring the
//! longest phrase at each position: "let me verify" counts once, not as
//! "let me verify" plus "verify".

/// The reflective phrases counted, lowercase.
pub const REFLECTION_PHRASES: &[&str] = &[
    "wait",
    "hmm",
    "aha",
    "actually",
    "mistake",
    "verify",
    "recheck",
    "re-check",
    "double-check",
    "double check",
    "check again",
    "let me check",
    "let me verify",
    "let me re-",
    "re-evaluate",
    "reevaluate",
    "re-examine",
    "reexamine",
    "reconsider",
    "rethink",
    "on second thought",
    "i made an error",
    "that's not right",
    "that is not right",
];

/// Number of non-overlapping reflective phrases in `text`.
pub fn count_reflections(text: &str) -> usize {
    let lower: Vec<char> = text.to_lowercase().chars().collect();
    let mut phrases: Vec<Vec<char>> = REFLECTION_PHRASES
        .iter()
        .map(|p| p.chars().collect())
        .collect();
    // Longest first, so a phrase that contains another wins at the same start.
    phrases.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut count = 0;
    let mut i = 0;
    while i < lower.len() {
        let at_boundary = i == 0 || !lower[i - 1].is_alphanumeric();
        let matched = if at_boundary {
            phrases.iter().find_map(|p| match_at(&lower, i, p))
        } else {
            None
        };
        match matched {
            Some(end) => {
                count += 1;
                i = end;
            }
            None => i += 1,
        }
    }
    count
}

/// Whether `text` has at least one reflective phrase.
pub fn has_reflection(text: &str) -> bool {
    count_reflections(text) > 0
}

/// If `phrase` matches `text` at `start`, the index just past the match.
fn match_at(text: &[char], start: usize, phrase: &[char]) -> Option<usize> {
    let mut i = start;
    for &c in phrase {
        if c == ' ' {
            // Any run of whitespace stands for a space.
            let ws_start = i;
            while i < text.len() && text[i].is_whitespace() {
                i += 1;
            }
            if i == ws_start {
                return None;
            }
        } else if text.get(i) == Some(&c) || (c == '\'' && text.get(i) == Some(&'’')) {
            i += 1;
        } else {
            return None;
        }
    }
    if phrase == ['h', 'm', 'm'] {
        while text.get(i) == Some(&'m') {
            i += 1;
        }
    }
    let ends_in_word = phrase.last().is_some_and(|c| c.is_alphanumeric());
    if ends_in_word && text.get(i).is_some_and(|c| c.is_alphanumeric()) {
        return None;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let cases: &[(&str, usize)] = &[
            ("Wait, let me check that again.", 2),
            ("WAIT. Wait... wait", 3),
            ("The waiter will await the verification.", 0),
            ("It was verified.", 0),
            ("Let me verify: 2+2=4. Verify again.", 2),
            ("Hmm. Hmmm, hmmmm", 3),
            ("hm, ohmm", 0),
            ("Let me re-check. Let me recheck. I should re-evaluate.", 3),
            ("let me re-derive this", 1),
            ("Let me double-check. Double  check.\nDouble\ncheck", 3),
            ("On second thought, that's not right. That’s not right.", 3),
            ("Actually I made a mistake.", 2),
            ("I made an error here", 1),
            ("Aha! That's an aha moment.", 2),
            ("reconsidering, rethinking, mistaken", 0),
            ("", 0),
            ("The answer is 42.", 0),
            ("wait-and-see", 1),
        ];
        for (text, want) in cases {
            assert_eq!(count_reflections(text), *want, "{text:?}");
        }
        assert!(has_reflection("…wait"));
        assert!(!has_reflection("<think>2+2=4</think><answer>4</answer>"));
    }
}
