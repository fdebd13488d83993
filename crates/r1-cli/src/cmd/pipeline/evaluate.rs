//! The evaluation after each stage: greedy accuracy and pass@1 over `samples`
//! answers per question (the paper's protocol, at small sizes), via r1-eval.

use super::config::EvalSpec;
use anyhow::{Context, Result};
use r1_eval::{generate_all, score_question, summarize, Grader, Template};
use r1_model::LoadedModel;
use r1_rollout::{LocalEngine, SamplingParams};
use r1_tasks::Example;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Figures of one evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageEval {
    pub questions: usize,
    pub greedy_accuracy: f64,
    /// Mean correctness over `samples` answers per question (None: not measured).
    pub pass_at_1: Option<f64>,
    pub samples: usize,
    pub seconds: f64,
}

fn run_once(
    lm: &LoadedModel,
    examples: &[Example],
    prompts: &[Vec<u32>],
    k: usize,
    p: &SamplingParams,
) -> Result<f64> {
    let model = lm.model()?;
    let mut engine = LocalEngine {
        model: &model,
        tokenizer: &lm.tokenizer,
        on_tokens: None,
    };
    let groups = generate_all(&mut engine, prompts, k, p, 32, &mut |_| {})?;
    let grader = Grader::default();
    let results: Vec<_> = examples
        .iter()
        .zip(&groups)
        .map(|(ex, g)| score_question(ex, g, &grader))
        .collect();
    Ok(summarize(&results, k).pass_at_1)
}

/// Evaluates `lm` on `examples`.
pub fn evaluate(
    lm: &LoadedModel,
    examples: &[Example],
    template: Template,
    spec: &EvalSpec,
) -> Result<StageEval> {
    let start = Instant::now();
    let prompts: Vec<Vec<u32>> = examples
        .iter()
        .map(|ex| {
            r1_eval::prompt::encode(&lm.tokenizer, template, ex)
                .map(|(_, ids)| ids)
                .with_context(|| format!("prompt for {}", ex.id))
        })
        .collect::<Result<_>>()?;
    let mut p = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: spec.max_new_tokens,
        min_new_tokens: 0,
        stop: vec![],
        seed: spec.seed,
    };
    let greedy = run_once(lm, examples, &prompts, 1, &p)?;
    let pass_at_1 = if spec.samples > 0 {
        p.temperature = spec.temperature;
        p.top_p = spec.top_p;
        Some(run_once(lm, examples, &prompts, spec.samples, &p)?)
    } else {
        None
    };
    Ok(StageEval {
        questions: examples.len(),
        greedy_accuracy: greedy,
        pass_at_1,
        samples: spec.samples,
        seconds: start.elapsed().as_secs_f64(),
    })
}
