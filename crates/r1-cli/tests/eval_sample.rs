//! `r1 eval` and `r1 sample` end to end on the tiny random-weight fixture (plumbing
//! and counts, not accuracy), and on the default model when it is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn r1(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_r1"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny() -> String {
    root()
        .join("tests/fixtures/tiny-llama")
        .display()
        .to_string()
}

fn data() -> String {
    root()
        .join("tests/data/gsm8k-mini.jsonl")
        .display()
        .to_string()
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("r1-evaltest-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn eval_writes_summary_and_per_question_results() {
    let out = scratch("eval");
    let (code, stdout, err) = r1(&[
        "eval",
        "--model",
        &tiny(),
        "--data",
        &data(),
        "--samples",
        "4",
        "--limit",
        "3",
        "--max-new-tokens",
        "8",
        "--output",
        s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("pass@1 ") && stdout.contains("cons@4 "),
        "{stdout}"
    );
    assert!(stdout.contains("(n=3, k=4,"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["metrics"]["n"], 3);
    assert_eq!(summary["temperature"], 0.6);
    let lines = std::fs::read_to_string(out.join("questions.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["samples"].as_array().unwrap().len(), 4);
    for key in ["question", "answer", "majority_answer", "pass_at_1"] {
        assert!(rows[0].get(key).is_some(), "missing {key}");
    }
    assert!(rows[0]["samples"][0].get("extracted").is_some());
    assert!(rows[0]["samples"][0].get("correct").is_some());
}

#[test]
fn greedy_is_one_sample_at_t0() {
    let out = scratch("greedy");
    let (code, stdout, err) = r1(&[
        "eval",
        "--model",
        &tiny(),
        "--data",
        &data(),
        "--greedy",
        "--limit",
        "2",
        "--max-new-tokens",
        "4",
        "--output",
        s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("cons@1") && stdout.contains("k=1"),
        "{stdout}"
    );
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("\"temperature\": 0.0"), "{summary}");
}

#[test]
fn bad_data_names_file_and_line_and_keeps_old_outputs() {
    let out = scratch("bad");
    std::fs::write(out.join("summary.json"), "previous").unwrap();
    let bad = out.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"question\": \"1+1?\", \"answer\": \"2\"}\n{\"question\": \"no answer\"}\n",
    )
    .unwrap();
    let (code, _, err) = r1(&[
        "eval",
        "--model",
        &tiny(),
        "--data",
        s(&bad),
        "--output",
        s(&out),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.jsonl:2") && err.contains("answer"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("summary.json")).unwrap(),
        "previous"
    );

    let empty = out.join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let (code, _, err) = r1(&[
        "eval",
        "--model",
        &tiny(),
        "--data",
        s(&empty),
        "--output",
        s(&out),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("empty.jsonl") && err.contains("no examples"),
        "{err}"
    );
}

#[test]
fn sample_writes_sft_jsonl_and_counts() {
    let out = scratch("sample");
    let file = out.join("sft.jsonl");
    let (code, stdout, err) = r1(&[
        "sample",
        "--model",
        &tiny(),
        "--data",
        &data(),
        "--n",
        "3",
        "--max-new-tokens",
        "6",
        "--output",
        s(&file),
        "--keep",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("generated 72") && stdout.contains("kept"),
        "{stdout}"
    );
    // Random weights: (almost surely) nothing correct, so nothing kept; the file
    // still exists and the counts add up.
    assert!(file.exists());
    let mut summary = file.clone().into_os_string();
    summary.push(".summary.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    let c = &v["counts"];
    assert_eq!(c["generated"], 72);
    let dropped: u64 = [
        "incorrect",
        "mixed_language",
        "long_paragraph",
        "code_block",
        "duplicate",
        "over_keep",
    ]
    .iter()
    .map(|k| c[k].as_u64().unwrap())
    .sum();
    assert_eq!(dropped + c["kept"].as_u64().unwrap(), 72);
}

#[test]
fn default_model_eval_when_installed() {
    if !r1_model_present() {
        eprintln!("default model not installed; skipped");
        return;
    }
    let out = scratch("default");
    let (code, stdout, err) = r1(&[
        "eval",
        "--data",
        &data(),
        "--samples",
        "2",
        "--limit",
        "2",
        "--max-new-tokens",
        "24",
        "--output",
        s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("pass@1") && stdout.contains("cons@2"),
        "{stdout}"
    );
}

fn r1_model_present() -> bool {
    r1_model::registry::default_model_path().exists()
}
