//! [`TaskSpec`] (the `[task]` table of a run config) and [`load_task`].
//!
//! ```toml
//! [task]
//! task = "countdown"   # "arithmetic" | "countdown" | "linear" | "jsonl"
//! train_size = 2000    # procedural default 1000; jsonl default: all
//! eval_size = 200      # procedural default 100; jsonl: see below
//! count = 4            # task options (here CountdownConfig)
//! ```
//!
//! For `jsonl`: `path` (required), `eval_path` (a separate eval file), or a
//! deterministic shuffle split holding out `eval_size` examples or
//! `eval_fraction` of them (default 0.1).

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::arithmetic::ArithmeticConfig;
use crate::countdown::CountdownConfig;
use crate::linear::LinearConfig;
use crate::{jsonl, seed, Example};

/// Default number of procedural training questions.
pub const DEFAULT_TRAIN_SIZE: usize = 1000;
/// Default number of procedural eval questions.
pub const DEFAULT_EVAL_SIZE: usize = 100;
/// Default share of a JSONL dataset held out for eval (without `eval_size`).
pub const DEFAULT_EVAL_FRACTION: f64 = 0.1;

/// Options for a JSONL dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    /// The training data (and the eval data, unless `eval_path` is set).
    pub path: PathBuf,
    /// A separate eval file; then `path` is used whole for training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_path: Option<PathBuf>,
    /// Share of `path` held out for eval, in `[0, 1)`; exclusive with `eval_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_fraction: Option<f64>,
}

/// Where the examples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskSource {
    Arithmetic(ArithmeticConfig),
    Countdown(CountdownConfig),
    Linear(LinearConfig),
    Jsonl(JsonlConfig),
}

impl TaskSource {
    /// The `task = "..."` name.
    pub fn name(&self) -> &'static str {
        match self {
            TaskSource::Arithmetic(_) => "arithmetic",
            TaskSource::Countdown(_) => "countdown",
            TaskSource::Linear(_) => "linear",
            TaskSource::Jsonl(_) => "jsonl",
        }
    }
}

/// A task and its sizes, as written in a config's `[task]` table.
///
/// It (de)serialises as one flat table: `task`, `train_size`, `eval_size`, and
/// the chosen task's options; unknown keys are errors that name the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct TaskSpec {
    pub source: TaskSource,
    /// Training examples (procedural: generated; jsonl: a cap).
    pub train_size: Option<usize>,
    /// Held-out eval examples.
    pub eval_size: Option<usize>,
}

impl Default for TaskSpec {
    fn default() -> Self {
        Self {
            source: TaskSource::Arithmetic(ArithmeticConfig::default()),
            train_size: None,
            eval_size: None,
        }
    }
}

impl TaskSpec {
    /// Parses a TOML table such as the body of a `[task]` section.
    pub fn from_toml(text: &str) -> Result<Self> {
        Ok(toml::from_str(text)?)
    }
}

fn options<T: serde::de::DeserializeOwned>(
    name: &str,
    rest: Map<String, Value>,
) -> Result<T, String> {
    serde_json::from_value(Value::Object(rest)).map_err(|e| format!("task `{name}`: {e}"))
}

fn size(map: &mut Map<String, Value>, key: &str) -> Result<Option<usize>, String> {
    match map.remove(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("`{key}` must be a non-negative integer, got {v}")),
    }
}

impl TryFrom<Map<String, Value>> for TaskSpec {
    type Error = String;

    fn try_from(mut map: Map<String, Value>) -> Result<Self, String> {
        let name = match map.remove("task") {
            Some(Value::String(s)) => s,
            Some(v) => return Err(format!("`task` must be a string, got {v}")),
            None => return Err("missing `task` (arithmetic, countdown, linear or jsonl)".into()),
        };
        let train_size = size(&mut map, "train_size")?;
        let eval_size = size(&mut map, "eval_size")?;
        let source = match name.as_str() {
            "arithmetic" => TaskSource::Arithmetic(options(&name, map)?),
            "countdown" => TaskSource::Countdown(options(&name, map)?),
            "linear" => TaskSource::Linear(options(&name, map)?),
            "jsonl" => TaskSource::Jsonl(options(&name, map)?),
            other => {
                return Err(format!(
                    "unknown task `{other}` (expected arithmetic, countdown, linear or jsonl)"
                ))
            }
        };
        Ok(TaskSpec {
            source,
            train_size,
            eval_size,
        })
    }
}

impl From<TaskSpec> for Map<String, Value> {
    fn from(spec: TaskSpec) -> Self {
        let opts = match &spec.source {
            TaskSource::Arithmetic(c) => serde_json::to_value(c),
            TaskSource::Countdown(c) => serde_json::to_value(c),
            TaskSource::Linear(c) => serde_json::to_value(c),
            TaskSource::Jsonl(c) => serde_json::to_value(c),
        };
        let mut map = match opts {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        map.insert("task".into(), spec.source.name().into());
        if let Some(n) = spec.train_size {
            map.insert("train_size".into(), n.into());
        }
        if let Some(n) = spec.eval_size {
            map.insert("eval_size".into(), n.into());
        }
        map
    }
}

/// A train set and a held-out eval set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskData {
    pub train: Vec<Example>,
    pub eval: Vec<Example>,
}

/// Builds the train and eval sets of `spec`, deterministically in `seed`.
///
/// Procedural eval questions come from a separate random stream and never repeat
/// a training question (nor each other). JSONL data is split by a seeded shuffle;
/// both splits keep file order.
pub fn load_task(spec: &TaskSpec, seed: u64) -> Result<TaskData> {
    let train_size = spec.train_size.unwrap_or(DEFAULT_TRAIN_SIZE);
    let eval_size = spec.eval_size.unwrap_or(DEFAULT_EVAL_SIZE);
    match &spec.source {
        TaskSource::Arithmetic(c) => {
            c.validate()?;
            procedural("arithmetic", train_size, eval_size, seed, |r| {
                Ok(c.sample(r))
            })
        }
        TaskSource::Countdown(c) => {
            c.validate()?;
            procedural("countdown", train_size, eval_size, seed, |r| c.sample(r))
        }
        TaskSource::Linear(c) => {
            c.validate()?;
            procedural("linear", train_size, eval_size, seed, |r| Ok(c.sample(r)))
        }
        TaskSource::Jsonl(c) => split_jsonl(c, spec.train_size, spec.eval_size, seed),
    }
}

fn procedural(
    name: &str,
    train_size: usize,
    eval_size: usize,
    seed: u64,
    sample: impl Fn(&mut StdRng) -> Result<Example>,
) -> Result<TaskData> {
    if train_size == 0 {
        bail!("{name}: `train_size` must be at least 1");
    }
    let mut rng = seed::rng(seed, seed::TRAIN);
    let mut train = Vec::with_capacity(train_size);
    for i in 0..train_size {
        let mut ex = sample(&mut rng)?;
        ex.id = format!("{name}-train-{i}");
        train.push(ex);
    }
    let mut seen: HashSet<String> = train.iter().map(|e| e.question.clone()).collect();
    let mut rng = seed::rng(seed, seed::EVAL);
    let mut eval = Vec::with_capacity(eval_size);
    // Bounded: a tiny question space (e.g. 1-digit sums) cannot fill the eval set.
    let max_draws = 50 * eval_size + 1000;
    let mut draws = 0;
    while eval.len() < eval_size {
        if draws == max_draws {
            bail!(
                "{name}: found only {} of {eval_size} eval questions not in the train set; \
                 widen the task's ranges or lower `train_size`/`eval_size`",
                eval.len()
            );
        }
        draws += 1;
        let mut ex = sample(&mut rng)?;
        if seen.insert(ex.question.clone()) {
            ex.id = format!("{name}-eval-{}", eval.len());
            eval.push(ex);
        }
    }
    Ok(TaskData { train, eval })
}

fn split_jsonl(
    c: &JsonlConfig,
    train_size: Option<usize>,
    eval_size: Option<usize>,
    seed: u64,
) -> Result<TaskData> {
    let mut all = jsonl::load_jsonl(&c.path)?;
    if let Some(eval_path) = &c.eval_path {
        if c.eval_fraction.is_some() {
            bail!("task `jsonl`: set `eval_path` or `eval_fraction`, not both");
        }
        let mut eval = jsonl::load_jsonl(eval_path)?;
        eval.truncate(eval_size.unwrap_or(usize::MAX));
        all.truncate(train_size.unwrap_or(usize::MAX));
        return Ok(TaskData { train: all, eval });
    }
    let n = all.len();
    let n_eval = match (eval_size, c.eval_fraction) {
        (Some(_), Some(_)) => bail!("task `jsonl`: set `eval_size` or `eval_fraction`, not both"),
        (Some(k), None) => k,
        (None, frac) => {
            let frac = frac.unwrap_or(DEFAULT_EVAL_FRACTION);
            if !(0.0..1.0).contains(&frac) {
                bail!("task `jsonl`: `eval_fraction` must be in [0, 1), got {frac}");
            }
            let k = (frac * n as f64).round() as usize;
            // A non-zero fraction of a small file still holds out one example.
            if frac > 0.0 && n >= 2 {
                k.max(1)
            } else {
                k
            }
        }
    };
    if n_eval >= n {
        bail!(
            "{}: holding out {n_eval} eval examples leaves none of the {n} for training",
            c.path.display()
        );
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut seed::rng(seed, seed::SPLIT));
    let mut is_eval = vec![false; n];
    for &i in &order[..n_eval] {
        is_eval[i] = true;
    }
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for (ex, held_out) in all.into_iter().zip(is_eval) {
        if held_out {
            eval.push(ex);
        } else {
            train.push(ex);
        }
    }
    train.truncate(train_size.unwrap_or(usize::MAX));
    Ok(TaskData { train, eval })
}
