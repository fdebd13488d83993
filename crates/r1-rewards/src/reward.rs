//! The reward interface shared by every reward function and the trainer.

/// Everything a reward function may look at for one completion.
#[derive(Debug, Clone, Copy)]
pub struct RewardInput<'a> {
    /// Prompt text as the model saw it (or just the user question). Used to detect
    /// a pre-filled `<think>` and the target language.
    pub prompt: &'a str,
    /// Generated text.
    pub completion: &'a str,
    /// Reference answer, if the task has one.
    pub answer: Option<&'a str>,
    /// Completion length in tokens (the trainer knows it; drivers may estimate).
    pub completion_tokens: usize,
    /// The generation length limit, used by length-aware rewards by default.
    pub max_completion_tokens: usize,
    /// True when generation stopped at the length limit.
    pub truncated: bool,
    /// Task data: code tests, Countdown numbers/target, …; `Null` if none.
    pub extra: &'a serde_json::Value,
}

/// A reward value with a short human-readable reason (for logs and debugging
/// reward hacking).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Score {
    pub value: f64,
    pub reason: String,
}

impl Score {
    /// Convenience constructor.
    pub fn new(value: f64, reason: impl Into<String>) -> Self {
        Self {
            value,
            reason: reason.into(),
        }
    }
}

/// A named reward function. Thread-safe: the trainer scores in parallel.
pub trait RewardFn: Send + Sync {
    /// The name used in configs and logs.
    fn name(&self) -> &str;
    /// Scores one completion. Must not panic on any input.
    fn score(&self, input: &RewardInput) -> Score;
}
