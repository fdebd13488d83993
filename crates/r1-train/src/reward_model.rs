//! A local preference reward model (a Hugging Face `*ForSequenceClassification`
//! folder with one label) as a [`RewardFn`]: R1's stage-4 rewards for prompts no rule
//! can check. As with the judge, `helpfulness` scores the final answer only (text
//! after `</think>`) and `harmlessness` the whole response.

use anyhow::Result;
use candle_core::{DType, Device};
use r1_judge::{final_answer, JudgeMode};
use r1_model::classifier::SequenceClassifier;
use r1_model::Message;
use r1_rewards::{RewardFn, RewardInput, Score};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The `[reward_model]` table of a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardModelConfig {
    /// The classifier folder.
    pub path: PathBuf,
    #[serde(default)]
    pub mode: JudgeMode,
    /// Squash the raw score into (0, 1) with a sigmoid (so it mixes with 0/1 rule
    /// rewards on a like scale).
    #[serde(default = "yes")]
    pub sigmoid: bool,
}

fn yes() -> bool {
    true
}

pub struct RewardModel {
    clf: SequenceClassifier,
    mode: JudgeMode,
    sigmoid: bool,
    name: String,
}

impl RewardModel {
    pub fn load(cfg: &RewardModelConfig, device: &Device) -> Result<Self> {
        let clf = SequenceClassifier::load(&cfg.path, device, DType::F32)?;
        anyhow::ensure!(
            clf.num_labels == 1,
            "{}: a reward model needs num_labels = 1, found {}",
            cfg.path.display(),
            clf.num_labels
        );
        let name = match cfg.mode {
            JudgeMode::Helpfulness => "rm_helpfulness",
            JudgeMode::Harmlessness => "rm_harmlessness",
        };
        Ok(Self {
            clf,
            mode: cfg.mode,
            sigmoid: cfg.sigmoid,
            name: name.into(),
        })
    }

    /// The token ids the classifier reads for (question, response): the chat template
    /// with a user and an assistant turn, or the two texts on separate lines.
    pub fn encode(&self, question: &str, response: &str) -> Result<Vec<u32>> {
        let tok = &self.clf.tokenizer;
        if tok.has_chat_template() {
            let text = tok.apply_chat_template(
                &[
                    Message::new("user", question),
                    Message::new("assistant", response),
                ],
                false,
            )?;
            tok.encode(&text, false)
        } else {
            tok.encode(&format!("{question}\n{response}"), true)
        }
    }

    /// The raw score (logit) of `response` to `question`.
    pub fn raw_score(&self, question: &str, response: &str) -> Result<f64> {
        let ids = self.encode(question, response)?;
        Ok(self.clf.logits(&[ids])?[0][0] as f64)
    }

    fn try_score(&self, input: &RewardInput) -> Result<Score> {
        let response = match self.mode {
            JudgeMode::Helpfulness => match final_answer(input.completion) {
                Some(a) => a,
                None => return Ok(Score::new(0.0, "no final answer after the reasoning")),
            },
            JudgeMode::Harmlessness => input.completion,
        };
        let raw = self.raw_score(input.prompt, response)?;
        let v = if self.sigmoid {
            1.0 / (1.0 + (-raw).exp())
        } else {
            raw
        };
        Ok(Score::new(v, format!("reward model: {raw:.3}")))
    }
}

impl RewardFn for RewardModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, input: &RewardInput) -> Score {
        self.try_score(input)
            .unwrap_or_else(|e| Score::new(0.0, format!("reward model failed: {e:#}")))
    }
}
