//! MetricsWriter / SamplesWriter: line format and resume truncation.

use std::collections::BTreeMap;

use r1_metrics::{read_metrics, MetricsWriter, Sample, SamplesWriter};

fn steps(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn metrics_resume_keeps_earlier_steps_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = MetricsWriter::open(dir.path(), None).unwrap();
    for step in 0..10 {
        w.log(step, [("reward", step as f64 / 10.0), ("loss", f64::NAN)])
            .unwrap();
    }
    let path = w.path().to_path_buf();
    drop(w);
    // Simulate a crash that tore the last line.
    std::fs::write(
        &path,
        std::fs::read_to_string(&path).unwrap() + "{\"step\": 10, \"rew",
    )
    .unwrap();

    let mut w = MetricsWriter::open(dir.path(), Some(6)).unwrap();
    assert_eq!(steps(&path), vec![0, 1, 2, 3, 4, 5]);
    w.log(6, [("reward", 0.9)]).unwrap();
    assert_eq!(steps(&path), vec![0, 1, 2, 3, 4, 5, 6]);

    let rows = read_metrics(&path).unwrap();
    assert_eq!(rows[3].values["reward"], 0.3);
    assert!(
        !rows[3].values.contains_key("loss"),
        "NaN is written as null"
    );
    assert!(!dir.path().join(".metrics.jsonl.tmp").exists());

    // A fresh start replaces the log.
    drop(w);
    let _w = MetricsWriter::open(dir.path(), None).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
}

#[test]
fn resume_without_a_file_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("run/nested");
    let mut w = MetricsWriter::open(&sub, Some(100)).unwrap();
    w.log(100, [("reward", 1.0)]).unwrap();
    assert_eq!(steps(&sub.join("metrics.jsonl")), vec![100]);
}

#[test]
fn samples_resume_and_reflections() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SamplesWriter::open(dir.path(), None).unwrap();
    for step in 0..4 {
        let rewards = BTreeMap::from([("accuracy".to_string(), 1.0), ("format".to_string(), 0.5)]);
        let s = Sample::new(
            step,
            "q",
            "<think>Wait, let me check.</think><answer>4</answer>",
            "4",
            1.5,
            rewards,
        );
        w.write_all(&[s.clone(), s]).unwrap();
    }
    let path = w.path().to_path_buf();
    drop(w);
    let _w = SamplesWriter::open(dir.path(), Some(2)).unwrap();
    assert_eq!(steps(&path), vec![0, 0, 1, 1]);
    let first: Sample = serde_json::from_str(
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first.reflections, 2);
    assert_eq!(first.rewards["format"], 0.5);
}
