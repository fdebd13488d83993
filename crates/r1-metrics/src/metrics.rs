//! `metrics.jsonl`: one JSON object per step, `{"step": 12, "reward": 0.4, ...}`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

use crate::jsonl_log::StepLog;

/// File name of the per-step metrics log inside a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Writes `DIR/metrics.jsonl`.
#[derive(Debug)]
pub struct MetricsWriter {
    log: StepLog,
}

impl MetricsWriter {
    /// Opens the log in `dir`: a new file for `None`, or, when resuming at
    /// `Some(step)`, the existing lines of earlier steps only (see crate docs).
    pub fn open(dir: &Path, resume_from_step: Option<u64>) -> Result<Self> {
        Ok(Self {
            log: StepLog::open(dir, METRICS_FILE, resume_from_step)?,
        })
    }

    /// Appends one line: `step` plus `values` (non-finite values are written as
    /// `null`, which JSON requires and the plotter skips).
    pub fn log<K: AsRef<str>>(
        &mut self,
        step: u64,
        values: impl IntoIterator<Item = (K, f64)>,
    ) -> Result<()> {
        let mut obj = Map::new();
        obj.insert("step".into(), step.into());
        for (k, v) in values {
            let v = serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
            obj.insert(k.as_ref().to_string(), v);
        }
        self.log.append(&Value::Object(obj))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        self.log.path()
    }
}

/// One line of a metrics file: its step and its numeric values (`null` and
/// non-numeric values are left out).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    pub step: u64,
    pub values: BTreeMap<String, f64>,
}

/// Reads a metrics file. Errors name the file, and the line for a bad line; a
/// final line without a newline that does not parse is skipped, because that is
/// a line being written right now by a live run.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut rows = Vec::new();
    let n_lines = text.lines().count();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let torn_tail = i + 1 == n_lines && !text.ends_with('\n');
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if torn_tail => continue,
            Err(e) => bail!("{}:{}: invalid JSON: {e}", path.display(), i + 1),
        };
        let Value::Object(obj) = value else {
            bail!("{}:{}: expected a JSON object", path.display(), i + 1);
        };
        let step = obj
            .get("step")
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("{}:{}: no integer `step`", path.display(), i + 1))?;
        let values = obj
            .iter()
            .filter(|(k, _)| k.as_str() != "step")
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        rows.push(MetricsRow { step, values });
    }
    if rows.is_empty() {
        bail!("{}: no metrics in the file (it is empty)", path.display());
    }
    Ok(rows)
}
