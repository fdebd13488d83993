//! `DIR/report.md`: one table comparing the stages (accuracy after each, the change
//! from the stage before, wall time) with links to each stage's charts.

use super::stages::StageRecord;
use std::fmt::Write;
use std::path::Path;

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{:.1}%", 100.0 * x))
}

/// The report text for the completed stages (`records[0]` is the base model).
pub fn render(records: &[StageRecord], dir: &Path) -> String {
    let mut s = String::from("# r1 pipeline report\n\n");
    let _ = writeln!(s, "Run folder: `{}`\n", dir.display());
    if let Some(e) = records.first().map(|r| &r.eval) {
        let k = if e.samples > 0 {
            format!(", pass@1 over {} samples", e.samples)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "Evaluation: {} questions, greedy accuracy{k}.\n",
            e.questions
        );
    }
    s.push_str(
        "| stage | greedy accuracy | Δ greedy | pass@1 | train time | eval time | charts |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|\n");
    let mut prev: Option<f64> = None;
    for r in records {
        let g = r.eval.greedy_accuracy;
        let delta = prev.map_or("–".into(), |p| format!("{:+.1} pt", 100.0 * (g - p)));
        let charts = if r.charts.is_empty() {
            "–".to_string()
        } else {
            r.charts
                .iter()
                .map(|c| {
                    format!(
                        "[{}]({c})",
                        Path::new(c)
                            .file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} s | {:.1} s | {} |",
            r.name,
            pct(Some(g)),
            delta,
            pct(r.eval.pass_at_1),
            r.train_seconds,
            r.eval.seconds,
            charts
        );
        prev = Some(g);
    }
    let total: f64 = records
        .iter()
        .map(|r| r.train_seconds + r.eval.seconds)
        .sum();
    let _ = writeln!(s, "\nTotal wall time of the stages: {total:.1} s.");
    s
}
