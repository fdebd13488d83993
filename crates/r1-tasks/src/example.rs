//! The unit of data every task produces.

use serde::{Deserialize, Serialize};

/// One training or evaluation problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Stable identifier (e.g. `countdown-train-17`, or the dataset's `id` column).
    pub id: String,
    /// The user-facing problem text (goes into the prompt template).
    pub question: String,
    /// The gold answer, as text the `r1-rewards` verifier parses (a GSM8K
    /// `... #### 42` solution is kept whole: the verifier extracts the number).
    pub answer: String,
    /// Task data for rewards that need more than the answer, e.g. Countdown's
    /// `{"nums": [..], "target": n}` or a code task's `tests`; `Null` otherwise.
    pub extra: serde_json::Value,
    /// The chat messages `(role, content)` when the dataset gave a conversation
    /// instead of plain text; `question` is then the last user message.
    pub messages: Option<Vec<(String, String)>>,
}

impl Example {
    /// A plain-text example with no task data and no chat messages.
    pub fn new(
        id: impl Into<String>,
        question: impl Into<String>,
        answer: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            question: question.into(),
            answer: answer.into(),
            extra: serde_json::Value::Null,
            messages: None,
        }
    }
}
