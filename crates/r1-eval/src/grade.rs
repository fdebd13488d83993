//! Grading one completion against one example: rule-based math verification, or the
//! sandboxed `code` reward when the example carries tests.

use r1_rewards::rewards::code::{extract_code, Code, CodeOptions};
use r1_rewards::{equivalent, verify, RewardFn, RewardInput, VerifyOptions};
use r1_tasks::Example;
use serde::Serialize;

/// What grading found for one completion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graded {
    /// The extracted final answer (for code tasks: the last code block, trimmed);
    /// `None` when nothing could be extracted.
    pub answer: Option<String>,
    pub correct: bool,
    /// 1/0 for math; the fraction of tests passed for code.
    pub score: f64,
    /// Why, in a few words (extraction rule, reference problem, tests passed).
    pub reason: String,
    /// Set when the reference itself is unusable: the item can never pass.
    pub reference_error: Option<String>,
}

/// Grades completions: math by [`verify`], code (examples with `tests`, `test` or
/// `inputs`/`outputs` in `extra`) by the `code` reward, correct only if all tests pass.
pub struct Grader {
    pub verify: VerifyOptions,
    code: Code,
}

impl Default for Grader {
    fn default() -> Self {
        Self::new(VerifyOptions::default(), CodeOptions::default())
    }
}

/// Does this example carry code tests?
pub fn is_code_task(ex: &Example) -> bool {
    let x = &ex.extra;
    x.get("tests").is_some() || x.get("test").is_some() || x.get("inputs").is_some()
}

impl Grader {
    /// A grader with the given verification and sandbox options.
    pub fn new(verify: VerifyOptions, code: CodeOptions) -> Self {
        Self {
            verify,
            code: Code {
                opts: code,
                pass_only: false,
            },
        }
    }

    /// Grades `completion` for `ex`. `truncated` and `tokens` are passed on to the
    /// code reward's input for completeness; they do not change correctness.
    pub fn grade(&self, ex: &Example, completion: &str, tokens: usize, truncated: bool) -> Graded {
        if is_code_task(ex) {
            let input = RewardInput {
                prompt: &ex.question,
                completion,
                answer: Some(&ex.answer),
                completion_tokens: tokens,
                max_completion_tokens: tokens.max(1),
                truncated,
                extra: &ex.extra,
            };
            let s = self.code.score(&input);
            return Graded {
                answer: extract_code(completion).map(|c| c.trim().to_string()),
                correct: s.value >= 1.0,
                score: s.value,
                reason: s.reason,
                reference_error: None,
            };
        }
        let v = verify(completion, &ex.answer, &self.verify);
        let reason = match (&v.error, v.pred_rule) {
            (Some(e), _) => e.clone(),
            (None, Some(rule)) => format!("answer by {}", rule.as_str()),
            (None, None) => "no answer found".to_string(),
        };
        Graded {
            answer: v.pred,
            correct: v.correct,
            score: if v.correct { 1.0 } else { 0.0 },
            reason,
            reference_error: v.error,
        }
    }

    /// Whether two extracted answers vote together in a majority vote: math
    /// equivalence, or identical code for code tasks.
    pub fn same_answer(&self, code_task: bool, a: &str, b: &str) -> bool {
        if code_task {
            a == b
        } else {
            equivalent(a, b, &self.verify.equiv)
        }
    }
}
