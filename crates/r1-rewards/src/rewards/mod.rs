//! The reward functions. Each has an options struct (serde, all fields optional,
//! unknown fields rejected) and implements [`crate::RewardFn`].

pub mod accuracy;
pub mod code;
pub mod cosine;
pub mod countdown;
pub mod format;
pub mod language;
pub mod overlong;
pub mod repetition;
pub mod tag_count;

/// Splits a completion into (chain of thought, rest) at the last `close` tag.
/// The chain of thought starts after `open` if present (it may have been pre-filled
/// by the chat template). Without a closing tag, everything is thought.
pub(crate) fn split_think<'a>(completion: &'a str, open: &str, close: &str) -> (&'a str, &'a str) {
    match completion.rfind(close) {
        Some(k) => {
            let head = &completion[..k];
            let start = head.find(open).map_or(0, |i| i + open.len());
            (&head[start..], &completion[k + close.len()..])
        }
        None => {
            let start = completion.find(open).map_or(0, |i| i + open.len());
            (&completion[start..], "")
        }
    }
}
