//! Prompt templates.

/// The R1-Zero training template, word for word from the DeepSeek-R1 paper
/// (Table 1); `{prompt}` is replaced by the question.
pub const R1_ZERO_TEMPLATE: &str = "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. User: {prompt}. Assistant:";

/// System prompt for chat-template mode (instruct models): same contract as the
/// R1-Zero template, so the same format and accuracy rewards apply.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant. When you answer a question, first think through the reasoning process step by step inside <think> </think> tags, then give the final answer inside <answer> </answer> tags, i.e., <think> reasoning process here </think> <answer> answer here </answer>.";

/// Fills [`R1_ZERO_TEMPLATE`] with `question`.
///
/// The paper's template puts a period after the prompt; a question that already
/// ends in `.`, `?` or `!` keeps its own mark instead, so it never reads `?.`.
pub fn r1_zero_prompt(question: &str) -> String {
    let q = question.trim();
    if q.ends_with(['.', '?', '!']) {
        R1_ZERO_TEMPLATE.replace("{prompt}.", q)
    } else {
        R1_ZERO_TEMPLATE.replace("{prompt}", q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_fills_prompt() {
        let p = r1_zero_prompt("What is 2 + 2?");
        assert!(p.starts_with("A conversation between User and Assistant."));
        assert!(p.ends_with("User: What is 2 + 2? Assistant:"));
        assert!(!p.contains("{prompt}"));
        assert!(r1_zero_prompt("Solve it.").ends_with("User: Solve it. Assistant:"));
        assert!(r1_zero_prompt("Add 1 and 2").ends_with("User: Add 1 and 2. Assistant:"));
    }
}
