//! `completions.jsonl`: sampled completions with their rewards, per step.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::jsonl_log::StepLog;
use crate::reflection::count_reflections;

/// File name of the completions log inside a run directory.
pub const SAMPLES_FILE: &str = "completions.jsonl";

/// One sampled completion and how it was scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub step: u64,
    pub prompt: String,
    pub completion: String,
    /// The gold answer.
    pub answer: String,
    /// The total (weighted) reward.
    pub reward: f64,
    /// Each reward function's score, by name.
    pub rewards: BTreeMap<String, f64>,
    /// Reflective phrases in the completion ([`count_reflections`]).
    pub reflections: usize,
}

impl Sample {
    /// A sample whose `reflections` is counted from `completion`.
    pub fn new(
        step: u64,
        prompt: impl Into<String>,
        completion: impl Into<String>,
        answer: impl Into<String>,
        reward: f64,
        rewards: BTreeMap<String, f64>,
    ) -> Self {
        let completion = completion.into();
        Self {
            step,
            prompt: prompt.into(),
            reflections: count_reflections(&completion),
            completion,
            answer: answer.into(),
            reward,
            rewards,
        }
    }
}

/// Writes `DIR/completions.jsonl`, with the same resume rule as
/// [`crate::MetricsWriter`].
#[derive(Debug)]
pub struct SamplesWriter {
    log: StepLog,
}

impl SamplesWriter {
    /// Opens the log in `dir`: a new file for `None`, or, when resuming at
    /// `Some(step)`, the existing lines of earlier steps only.
    pub fn open(dir: &Path, resume_from_step: Option<u64>) -> Result<Self> {
        Ok(Self {
            log: StepLog::open(dir, SAMPLES_FILE, resume_from_step)?,
        })
    }

    /// Appends one sample as a line.
    pub fn write(&mut self, sample: &Sample) -> Result<()> {
        self.log.append(&serde_json::to_value(sample)?)
    }

    /// Appends several samples.
    pub fn write_all(&mut self, samples: &[Sample]) -> Result<()> {
        samples.iter().try_for_each(|s| self.write(s))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        self.log.path()
    }
}
