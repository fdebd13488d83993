//! `tag_count`: partial format credit, 0.25 per well-placed tag (open-r1's
//! `tag_count_reward`). A denser signal than `format` early in training.
//!
//! Each tag earns 0.25 when it occurs exactly once and in its place: the opening
//! think tag at the start (or pre-filled by the prompt, which earns it too), the
//! closing think tag after it, the answer tags after that, and the closing answer tag
//! at the end.

use crate::rewards::format::FormatOptions;
use crate::{RewardFn, RewardInput, Score};

/// The tag-count reward.
pub struct TagCount {
    pub opts: FormatOptions,
}

impl RewardFn for TagCount {
    fn name(&self) -> &str {
        "tag_count"
    }

    fn score(&self, input: &RewardInput) -> Score {
        let o = &self.opts;
        let c = input.completion;
        let count = |t: &str| {
            if t.is_empty() {
                0
            } else {
                c.matches(t).count()
            }
        };
        let pos = |t: &str| c.find(t);
        let mut credit = 0.0;
        let mut missing = Vec::new();
        let prefilled = o.is_prefilled(input.prompt, c);
        let open_ok = if prefilled {
            count(&o.think_open) == 0
        } else {
            count(&o.think_open) == 1 && c.trim_start().starts_with(&o.think_open)
        };
        let mut grade = |ok: bool, name: &str| {
            if ok {
                credit += 0.25;
            } else {
                missing.push(name.to_string());
            }
        };
        grade(open_ok, &o.think_open);
        let close_ok = count(&o.think_close) == 1
            && pos(&o.think_close) >= pos(&o.think_open).map(|p| p + o.think_open.len());
        grade(close_ok, &o.think_close);
        let aopen_ok = count(&o.answer_open) == 1
            && pos(&o.answer_open) > pos(&o.think_close)
            && pos(&o.think_close).is_some();
        grade(aopen_ok, &o.answer_open);
        let aclose_ok = count(&o.answer_close) == 1
            && pos(&o.answer_close) > pos(&o.answer_open)
            && c.trim_end().ends_with(&o.answer_close);
        grade(aclose_ok, &o.answer_close);
        let reason = if missing.is_empty() {
            "all tags well placed".to_string()
        } else {
            format!("misplaced or missing: {}", missing.join(" "))
        };
        Score::new(credit, reason)
    }
}
