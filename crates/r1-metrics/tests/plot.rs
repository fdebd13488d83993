//! Charts from a synthetic run; bad metrics files give clear errors.

use std::fmt::Write as _;
use std::path::Path;

use r1_metrics::{plot_run, MetricsWriter};

/// A plausible R1-Zero run: reward and length rising, reflection appearing.
fn synthetic_run(dir: &Path, steps: u64) {
    let mut w = MetricsWriter::open(dir, None).unwrap();
    for s in 0..steps {
        let t = s as f64 / steps as f64;
        let wobble = ((s * 7919) % 13) as f64 / 13.0 - 0.5;
        let mut m = vec![
            ("reward", 0.2 + 1.2 * t + 0.1 * wobble),
            ("reward_std", 0.3 - 0.1 * t),
            ("rewards/accuracy", 0.1 + 0.7 * t + 0.05 * wobble),
            ("rewards/format", 0.1 + 0.5 * t.sqrt()),
            ("accuracy", 0.1 + 0.7 * t + 0.05 * wobble),
            (
                "completions/mean_length",
                120.0 + 300.0 * t * t + 10.0 * wobble,
            ),
            ("reflection/mean", (3.0 * (t - 0.4)).max(0.0)),
            ("reflection/frac", (1.5 * (t - 0.4)).clamp(0.0, 0.9)),
        ];
        if s % 10 == 0 {
            m.push(("eval/accuracy_greedy", 0.15 + 0.6 * t));
            m.push(("eval/accuracy_sampled", 0.1 + 0.55 * t));
        }
        w.log(s, m).unwrap();
    }
}

fn is_png(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.len() > 5_000 && bytes.starts_with(b"\x89PNG")
}

#[test]
fn plots_all_charts() {
    let dir = tempfile::tempdir().unwrap();
    synthetic_run(dir.path(), 100);
    let files = plot_run(dir.path()).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "charts.png",
            "reward.png",
            "accuracy.png",
            "length.png",
            "reflection.png"
        ]
    );
    for f in &files {
        assert!(is_png(f), "{}", f.display());
    }
    if let Ok(out) = std::env::var("R1_METRICS_PLOT_DEMO") {
        for f in &files {
            std::fs::copy(f, Path::new(&out).join(f.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn plots_partial_and_tiny_runs() {
    // Only a reward at a single step: one point, flat range; other panels absent.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("metrics.jsonl"),
        "{\"step\": 3, \"reward\": 0.5}\n",
    )
    .unwrap();
    let files = plot_run(dir.path()).unwrap();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| is_png(f)));
}

#[test]
fn bad_files_error_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let err = format!("{:#}", plot_run(p).unwrap_err());
    assert!(err.contains("metrics.jsonl"), "{err}");

    let write = |text: &str| std::fs::write(p.join("metrics.jsonl"), text).unwrap();
    write("");
    let err = plot_run(p).unwrap_err().to_string();
    assert!(
        err.contains("metrics.jsonl") && err.contains("empty"),
        "{err}"
    );

    write("{\"step\": 0, \"reward\": 1}\nnot json\n{\"step\": 2}\n");
    let err = plot_run(p).unwrap_err().to_string();
    assert!(err.contains("metrics.jsonl:2: invalid JSON"), "{err}");

    write("{\"step\": 0, \"reward\": 1}\n{\"reward\": 2}\n");
    let err = plot_run(p).unwrap_err().to_string();
    assert!(err.contains("metrics.jsonl:2: no integer `step`"), "{err}");

    write("{\"step\": 0, \"kl\": 1}\n");
    let err = plot_run(p).unwrap_err().to_string();
    assert!(err.contains("nothing to plot"), "{err}");

    // A live run's half-written last line is not an error.
    let mut text = String::new();
    for s in 0..5 {
        writeln!(text, "{{\"step\": {s}, \"reward\": {s}}}").unwrap();
    }
    text.push_str("{\"step\": 5, \"rew");
    write(&text);
    assert!(plot_run(p).is_ok());
}
