//! `soft_overlong`: DAPO's soft overlong punishment. With L the completion length,
//! L_max the limit and L_cache the soft band: 0 when L ≤ L_max − L_cache, falling
//! linearly to −1 at L_max, and −1 beyond. It discourages running into the limit
//! without the noise of punishing every truncated sample to the full.

use serde::{Deserialize, Serialize};

use crate::{RewardFn, RewardInput, Score};

/// Options for [`SoftOverlong`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SoftOverlongOptions {
    /// L_max in tokens; `None` uses the input's `max_completion_tokens`.
    pub max_len: Option<usize>,
    /// L_cache: width of the soft band (clipped to L_max). DAPO used 4096 of 20480.
    pub cache_len: usize,
}

impl Default for SoftOverlongOptions {
    fn default() -> Self {
        Self {
            max_len: None,
            cache_len: 4096,
        }
    }
}

/// The soft overlong punishment.
pub struct SoftOverlong {
    pub opts: SoftOverlongOptions,
}

/// The DAPO formula, exposed for tests and the trainer.
pub fn soft_overlong(len: usize, max_len: usize, cache_len: usize) -> f64 {
    let cache = cache_len.min(max_len);
    let start = max_len - cache;
    if len <= start {
        0.0
    } else if len <= max_len {
        -((len - start) as f64) / cache.max(1) as f64
    } else {
        -1.0
    }
}

impl RewardFn for SoftOverlong {
    fn name(&self) -> &str {
        "soft_overlong"
    }

    fn score(&self, input: &RewardInput) -> Score {
        let max_len = self.opts.max_len.unwrap_or(input.max_completion_tokens);
        if max_len == 0 {
            return Score::new(0.0, "error: no max length configured or given");
        }
        let v = soft_overlong(input.completion_tokens, max_len, self.opts.cache_len);
        Score::new(
            v,
            format!("{} of {} tokens", input.completion_tokens, max_len),
        )
    }
}
