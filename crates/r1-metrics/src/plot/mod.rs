//! PNG charts of a run, from `DIR/metrics.jsonl` (`r1 plot DIR`).
//!
//! Written to `DIR`:
//! - `charts.png`: the four panels below in a 2×2 grid (a panel without data
//!   says so);
//! - `reward.png`: `reward` with a ±`reward_std` band, and each `rewards/<name>`
//!   (`loss.png`, the training loss, instead for SFT runs, which have no reward);
//! - `accuracy.png`: `accuracy` (train) and the sparse eval points
//!   `eval/accuracy_greedy`, `eval/accuracy_sampled` (and any other
//!   `eval/accuracy*` / `eval/pass@*` key), drawn with markers;
//! - `length.png`: `completions/mean_length` (and `min_length`/`max_length`);
//! - `reflection.png`: `reflection/mean` (left axis) and `reflection/frac`
//!   (right axis).
//!
//! Individual charts are written only for panels that have data.

mod draw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::metrics::{read_metrics, MetricsRow, METRICS_FILE};

/// Points `(step, value)` by key, sorted by step, one per step (the last wins).
pub(crate) type SeriesMap = BTreeMap<String, Vec<(f64, f64)>>;

/// One line of a chart.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub key: String,
    pub label: String,
    /// Key of a standard deviation to draw as a shaded band around the line.
    pub band: Option<String>,
    /// Plot against the right-hand axis.
    pub secondary: bool,
    /// Mark each point (for sparse series such as eval results).
    pub markers: bool,
}

impl Line {
    fn new(key: &str, label: &str) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            band: None,
            secondary: false,
            markers: false,
        }
    }
}

/// One chart.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    pub file: &'static str,
    pub title: &'static str,
    pub y_label: &'static str,
    pub y2_label: &'static str,
    /// Use a 0..1 axis when every value fits in it (accuracies, fractions).
    pub unit: bool,
    /// Lines whose key has data.
    pub lines: Vec<Line>,
}

fn panels(data: &SeriesMap) -> Vec<Panel> {
    let keys_with = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        data.keys().filter(|k| pred(k)).cloned().collect()
    };
    let mut reward = vec![Line {
        band: Some("reward_std".into()),
        ..Line::new("reward", "reward (mean ± std)")
    }];
    for k in keys_with(&|k| k.starts_with("rewards/")) {
        reward.push(Line::new(&k, &k));
    }
    let mut accuracy = vec![
        Line::new("accuracy", "train accuracy"),
        Line {
            markers: true,
            ..Line::new("eval/accuracy_greedy", "eval, greedy")
        },
        Line {
            markers: true,
            ..Line::new("eval/accuracy_sampled", "eval, sampled (pass@1)")
        },
    ];
    for k in keys_with(&|k| {
        (k.starts_with("eval/accuracy") || k.starts_with("eval/pass@"))
            && k != "eval/accuracy_greedy"
            && k != "eval/accuracy_sampled"
    }) {
        accuracy.push(Line {
            markers: true,
            ..Line::new(&k, &k)
        });
    }
    let length = vec![
        Line::new("completions/mean_length", "mean"),
        Line::new("completions/max_length", "max"),
        Line::new("completions/min_length", "min"),
    ];
    let reflection = vec![
        Line::new("reflection/mean", "phrases per completion (left)"),
        Line {
            secondary: true,
            ..Line::new("reflection/frac", "share of completions (right)")
        },
    ];
    let has = |l: &Line| data.get(&l.key).is_some_and(|v| !v.is_empty());
    let panel = |file, title, y_label, y2_label, unit, lines: Vec<Line>| Panel {
        file,
        title,
        y_label,
        y2_label,
        unit,
        lines: lines.into_iter().filter(has).collect(),
    };
    // An SFT run has a loss and no reward: its first panel shows the loss instead.
    let first = if !data.contains_key("reward") && data.contains_key("loss") {
        panel(
            "loss.png",
            "Training loss",
            "loss (nats/token)",
            "",
            false,
            vec![Line::new("loss", "loss")],
        )
    } else {
        panel("reward.png", "Reward", "reward", "", false, reward)
    };
    vec![
        first,
        panel("accuracy.png", "Accuracy", "accuracy", "", true, accuracy),
        panel(
            "length.png",
            "Completion length",
            "tokens",
            "",
            false,
            length,
        ),
        panel(
            "reflection.png",
            "Reflective phrases (\"wait\", \"let me check\", ...)",
            "phrases per completion",
            "share with reflection",
            false,
            reflection,
        ),
    ]
}

fn series(rows: &[MetricsRow]) -> SeriesMap {
    let mut by_key: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
    for row in rows {
        for (k, &v) in &row.values {
            if v.is_finite() {
                by_key.entry(k.clone()).or_default().insert(row.step, v);
            }
        }
    }
    by_key
        .into_iter()
        .map(|(k, pts)| (k, pts.into_iter().map(|(s, v)| (s as f64, v)).collect()))
        .collect()
}

/// Reads `dir/metrics.jsonl` and writes the charts (see the module docs) into
/// `dir`; returns the files written, `charts.png` first.
pub fn plot_run(dir: &Path) -> Result<Vec<PathBuf>> {
    let path = dir.join(METRICS_FILE);
    let rows = read_metrics(&path)?;
    let data = series(&rows);
    let panels = panels(&data);
    if panels.iter().all(|p| p.lines.is_empty()) {
        bail!(
            "{}: nothing to plot: none of reward, loss, accuracy, eval/accuracy_*, \
             completions/mean_length, reflection/mean, reflection/frac has a value",
            path.display()
        );
    }
    crate::font::ensure_registered();
    let mut written = Vec::new();
    let combined = dir.join("charts.png");
    draw::grid(&combined, &panels, &data)?;
    written.push(combined);
    for panel in panels.iter().filter(|p| !p.lines.is_empty()) {
        let file = dir.join(panel.file);
        draw::single(&file, panel, &data)?;
        written.push(file);
    }
    Ok(written)
}

/// `r1 plot DIR`: writes the charts and prints where they are.
pub fn plot_command(dir: &Path) -> Result<()> {
    for file in plot_run(dir)? {
        println!("wrote {}", file.display());
    }
    Ok(())
}
