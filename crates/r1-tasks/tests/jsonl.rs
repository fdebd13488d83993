//! JSONL datasets: column variants, errors with file:line, splits.

use std::io::Write;
use std::path::{Path, PathBuf};

use r1_tasks::{load_jsonl, load_task, TaskSpec};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

#[test]
fn column_variants() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "data.jsonl",
        concat!(
            r#"{"prompt": "What is 1+1?", "answer": "2"}"#,
            "\n",
            "\n",
            r#"{"question": "q2", "solution": 3.5, "id": 17}"#,
            "\n",
            r#"{"problem": "q3", "reference": "x", "tests": ["assert f() == 1"], "level": 2}"#,
            "\n",
            r#"{"prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi?"}], "answer": "4"}"#,
            "\n",
        ),
    );
    let ex = load_jsonl(&path).unwrap();
    assert_eq!(ex.len(), 4);
    assert_eq!(
        (ex[0].question.as_str(), ex[0].answer.as_str()),
        ("What is 1+1?", "2")
    );
    assert_eq!(ex[0].id, "data-1");
    assert!(ex[0].extra.is_null());
    assert_eq!((ex[1].id.as_str(), ex[1].answer.as_str()), ("17", "3.5"));
    assert_eq!(ex[2].extra["tests"][0], "assert f() == 1");
    assert_eq!(ex[2].extra["level"], 2);
    assert_eq!(ex[3].question, "hi?");
    assert_eq!(
        ex[3].messages.as_deref().unwrap(),
        &[
            ("system".to_string(), "sys".to_string()),
            ("user".to_string(), "hi?".to_string())
        ]
    );
}

#[test]
fn gsm8k_answer_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let line = r#"{"question": "Natalia sold 48 clips...", "answer": "She sold 48/2 = 24 in May.\n48+24 = 72\n#### 72"}"#;
    let path = write(dir.path(), "gsm8k.jsonl", line);
    let ex = load_jsonl(&path).unwrap();
    assert_eq!(
        ex[0].answer,
        "She sold 48/2 = 24 in May.\n48+24 = 72\n#### 72"
    );
}

#[test]
fn bad_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let ok = r#"{"question": "q", "answer": "a"}"#;
    let cases = [
        (
            format!("{ok}\n{ok}\n{{\"question\": \"q\"}}\n"),
            "data.jsonl:3: no `answer`/`solution`/`reference` column",
        ),
        (
            format!("{ok}\n{{\"answer\": \"a\"}}\n"),
            "data.jsonl:2: no `prompt`/`question`/`problem` column",
        ),
        (format!("{ok}\nnot json\n"), "data.jsonl:2: invalid JSON"),
        (
            "[1, 2]\n".to_string(),
            "data.jsonl:1: expected a JSON object",
        ),
        (
            "{\"prompt\": [{\"role\": \"system\", \"content\": \"s\"}], \"answer\": \"a\"}\n"
                .to_string(),
            "data.jsonl:1: `prompt` messages have no user message",
        ),
        (
            "{\"question\": \"q\", \"answer\": [1]}\n".to_string(),
            "data.jsonl:1: `answer` must be a string or number",
        ),
    ];
    for (text, want) in cases {
        let path = write(dir.path(), "data.jsonl", &text);
        let err = load_jsonl(&path).unwrap_err().to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
    let path = write(dir.path(), "empty.jsonl", "\n\n");
    let err = load_jsonl(&path).unwrap_err().to_string();
    assert!(
        err.contains("empty.jsonl") && err.contains("no examples"),
        "{err}"
    );
    let err = load_jsonl(&dir.path().join("missing.jsonl")).unwrap_err();
    assert!(format!("{err:#}").contains("missing.jsonl"));
}

fn dataset(dir: &Path, n: usize) -> PathBuf {
    let text: String = (0..n)
        .map(|i| format!("{{\"question\": \"q{i}\", \"answer\": \"{i}\"}}\n"))
        .collect();
    write(dir, "d.jsonl", &text)
}

fn jsonl_spec(path: &Path, extra: &str) -> TaskSpec {
    TaskSpec::from_toml(&format!(
        "task = \"jsonl\"\npath = {:?}\n{extra}",
        path.display().to_string()
    ))
    .unwrap()
}

#[test]
fn split_is_deterministic_and_disjoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dataset(dir.path(), 50);
    let s = jsonl_spec(&path, "eval_fraction = 0.2");
    let a = load_task(&s, 1).unwrap();
    assert_eq!((a.train.len(), a.eval.len()), (40, 10));
    assert_eq!(a, load_task(&s, 1).unwrap());
    assert_ne!(a.eval, load_task(&s, 2).unwrap().eval);
    let mut ids: Vec<&str> = a
        .train
        .iter()
        .chain(&a.eval)
        .map(|e| e.id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    let s = jsonl_spec(&path, "eval_size = 5\ntrain_size = 20");
    let b = load_task(&s, 1).unwrap();
    assert_eq!((b.train.len(), b.eval.len()), (20, 5));
    // Default: 10% held out.
    let c = load_task(&jsonl_spec(&path, ""), 1).unwrap();
    assert_eq!(c.eval.len(), 5);
    let err = load_task(&jsonl_spec(&path, "eval_size = 50"), 1).unwrap_err();
    assert!(err.to_string().contains("leaves none"), "{err}");
}

#[test]
fn separate_eval_file() {
    let dir = tempfile::tempdir().unwrap();
    let train = dataset(dir.path(), 8);
    let eval = write(
        dir.path(),
        "e.jsonl",
        "{\"question\": \"e\", \"answer\": \"1\"}\n",
    );
    let s = jsonl_spec(
        &train,
        &format!("eval_path = {:?}", eval.display().to_string()),
    );
    let d = load_task(&s, 0).unwrap();
    assert_eq!((d.train.len(), d.eval.len()), (8, 1));
}
