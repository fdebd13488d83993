//! The paper's evaluation protocol over sampled completions: per-question results
//! (every sample graded, the majority answer) and the summary (pass@1 with a 95%
//! interval, cons@k, unbiased pass@k).

use std::collections::BTreeMap;

use r1_rollout::{Completion, FinishReason};
use r1_tasks::Example;
use serde::Serialize;

use crate::grade::{is_code_task, Grader};
use crate::metrics::{majority_vote, mean_ci95, pass_at_k, report_ks};

/// One graded sample.
#[derive(Debug, Clone, Serialize)]
pub struct SampleResult {
    pub index: usize,
    pub completion: String,
    /// Extracted final answer (`None`: nothing extracted, does not vote).
    pub extracted: Option<String>,
    pub correct: bool,
    pub score: f64,
    pub reason: String,
    pub finish_reason: FinishReason,
    pub num_tokens: usize,
}

/// Everything about one question.
#[derive(Debug, Clone, Serialize)]
pub struct QuestionResult {
    pub id: String,
    pub question: String,
    /// The reference as given.
    pub answer: String,
    pub samples: Vec<SampleResult>,
    /// The majority answer (`None` when no sample gave one).
    pub majority_answer: Option<String>,
    pub majority_votes: usize,
    /// Whether the majority answer is correct (cons@k for this question).
    pub majority_correct: bool,
    pub num_correct: usize,
    /// Mean correctness over the samples.
    pub pass_at_1: f64,
    /// Set when the reference could not be parsed: the question can never pass.
    pub reference_error: Option<String>,
}

/// Grades the completions of one question and takes the majority vote.
pub fn score_question(ex: &Example, completions: &[Completion], grader: &Grader) -> QuestionResult {
    let mut reference_error = None;
    let samples: Vec<SampleResult> = completions
        .iter()
        .map(|c| {
            let truncated = c.finish_reason == FinishReason::Length;
            let g = grader.grade(ex, &c.text, c.token_ids.len(), truncated);
            if g.reference_error.is_some() {
                reference_error = g.reference_error.clone();
            }
            SampleResult {
                index: c.sample_index,
                completion: c.text.clone(),
                extracted: g.answer,
                correct: g.correct,
                score: g.score,
                reason: g.reason,
                finish_reason: c.finish_reason,
                num_tokens: c.token_ids.len(),
            }
        })
        .collect();
    let code = is_code_task(ex);
    let answers: Vec<Option<&str>> = samples.iter().map(|s| s.extracted.as_deref()).collect();
    let vote = majority_vote(&answers, |a, b| grader.same_answer(code, a, b));
    let num_correct = samples.iter().filter(|s| s.correct).count();
    QuestionResult {
        id: ex.id.clone(),
        question: ex.question.clone(),
        answer: ex.answer.clone(),
        majority_answer: vote
            .as_ref()
            .and_then(|v| samples[v.representative].extracted.clone()),
        majority_votes: vote.as_ref().map_or(0, |v| v.votes),
        // The representative's own grade: its group agrees with it by construction.
        majority_correct: vote
            .as_ref()
            .is_some_and(|v| samples[v.representative].correct),
        num_correct,
        pass_at_1: if samples.is_empty() {
            0.0
        } else {
            num_correct as f64 / samples.len() as f64
        },
        reference_error,
        samples,
    }
}

/// The figures of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Number of questions.
    pub n: usize,
    /// Samples per question.
    pub k: usize,
    /// Mean over questions of per-question mean correctness.
    pub pass_at_1: f64,
    /// Half width of the 95% interval of pass@1 (see [`crate::metrics::mean_ci95`]).
    pub pass_at_1_ci95: f64,
    pub pass_at_1_low: f64,
    pub pass_at_1_high: f64,
    pub ci_method: &'static str,
    /// Share of questions whose majority answer is correct.
    pub cons_at_k: f64,
    /// Unbiased pass@k, keyed `pass@2`, `pass@4`, … (empty for k = 1).
    pub pass_at: BTreeMap<String, f64>,
    /// Samples with no extracted answer.
    pub no_answer: usize,
    /// Samples cut by the token limit.
    pub truncated: usize,
    /// Questions whose reference could not be parsed (scored as wrong).
    pub reference_errors: usize,
}

/// Description of the interval in [`Metrics::ci_method`].
pub const CI_METHOD: &str =
    "normal approximation over questions of per-question mean correctness (1.96 * sd / sqrt(n))";

/// Summarises per-question results (all with `k` samples).
pub fn summarize(results: &[QuestionResult], k: usize) -> Metrics {
    let p1: Vec<f64> = results.iter().map(|q| q.pass_at_1).collect();
    let ci = mean_ci95(&p1);
    let n = results.len();
    let mean_of = |f: &dyn Fn(&QuestionResult) -> f64| {
        if n == 0 {
            0.0
        } else {
            results.iter().map(f).sum::<f64>() / n as f64
        }
    };
    let pass_at = report_ks(k)
        .into_iter()
        .map(|kk| {
            let v = mean_of(&|q| pass_at_k(q.samples.len(), q.num_correct, kk).unwrap_or(0.0));
            (format!("pass@{kk}"), v)
        })
        .collect();
    let samples = || results.iter().flat_map(|q| &q.samples);
    Metrics {
        n,
        k,
        pass_at_1: ci.map_or(0.0, |c| c.mean),
        pass_at_1_ci95: ci.map_or(0.0, |c| c.half_width),
        pass_at_1_low: ci.map_or(0.0, |c| c.low),
        pass_at_1_high: ci.map_or(0.0, |c| c.high),
        ci_method: CI_METHOD,
        cons_at_k: mean_of(&|q| if q.majority_correct { 1.0 } else { 0.0 }),
        pass_at,
        no_answer: samples().filter(|s| s.extracted.is_none()).count(),
        truncated: samples()
            .filter(|s| s.finish_reason == FinishReason::Length)
            .count(),
        reference_errors: results
            .iter()
            .filter(|q| q.reference_error.is_some())
            .count(),
    }
}

impl Metrics {
    /// The one-line summary: `pass@1 0.4125 ± 0.0500 (95% CI)  cons@4 0.4500  pass@4
    /// 0.6200  (n=100, k=4, 312.4 s)`.
    pub fn line(&self, seconds: f64) -> String {
        let mut s = format!(
            "pass@1 {:.4} ± {:.4} (95% CI)  cons@{} {:.4}",
            self.pass_at_1, self.pass_at_1_ci95, self.k, self.cons_at_k
        );
        if let Some(v) = self.pass_at.get(&format!("pass@{}", self.k)) {
            s.push_str(&format!("  pass@{} {v:.4}", self.k));
        }
        s.push_str(&format!("  (n={}, k={}, {seconds:.1} s)", self.n, self.k));
        s
    }
}
