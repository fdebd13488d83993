//! `r1 distill` end to end on the tiny-llama fixture.
//!
//! The random fixture answers a few sums right only by chance, which makes a poor
//! teacher: the test first makes one by `r1 sft` on correct worked answers of
//! single-digit sums. Distillation then has to carry that skill to a fresh copy of
//! the fixture through the teacher's sampled traces: wrong samples are filtered out,
//! the kept ones carry provenance, and the student's greedy accuracy rises from
//! chance to about the teacher's. Re-running the command skips finished stages, and a
//! student fine-tune killed mid-way resumes to the same losses.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn r1(args: &[&str]) -> (i32, String) {
    let out = r1_cmd(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn r1_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_r1"));
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn fixture() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tiny-llama")
        .display()
        .to_string()
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("r1-distill-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The worked answer the teacher is taught.
fn worked(a: u32, b: u32) -> String {
    format!("<think>{a}+{b}={}</think><answer>{}</answer>", a + b, a + b)
}

/// Prompts with references (for distill and eval) and the teacher's SFT data.
fn write_task(dir: &Path) -> (PathBuf, PathBuf) {
    let (mut prompts, mut sft) = (String::new(), String::new());
    for a in 0..5 {
        for b in 0..5 {
            let q = format!("{a}+{b}=?");
            prompts += &format!("{}\n", serde_json::json!({"question": q, "answer": a + b}));
            sft += &format!(
                "{}\n",
                serde_json::json!({"prompt": q, "completion": worked(a, b)})
            );
        }
    }
    let (p, t) = (dir.join("prompts.jsonl"), dir.join("teacher-sft.jsonl"));
    std::fs::write(&p, prompts).unwrap();
    std::fs::write(&t, sft).unwrap();
    (p, t)
}

/// Greedy accuracy of `model` on `prompts`, measured by `r1 eval` with the raw
/// template (the prompt format the teacher is trained and sampled with).
fn greedy_accuracy(model: &str, prompts: &Path, out: &Path) -> f64 {
    let (code, err) = r1(&[
        "eval",
        "--model",
        model,
        "--data",
        &s(prompts),
        "--greedy",
        "--template",
        "raw",
        "--max-new-tokens",
        "24",
        "--output",
        &s(out),
    ]);
    assert_eq!(code, 0, "{err}");
    json(&out.join("summary.json"))["metrics"]["pass_at_1"]
        .as_f64()
        .unwrap()
}

// Raw prompts keep sequences at ~30 tokens (the chat template's system message would
// make them ~250), which keeps the whole test at a few seconds of training. The
// teacher samples at T = 1 so some of its answers are wrong and the filters have work.
const DISTILL_CFG: &str = r#"
template = "raw"
[sampling]
n = 4
temperature = 1.0
max_new_tokens = 24
seed = 1
[filters]
keep = 2
[sft]
template = "raw"
learning_rate = 1e-2
per_device_train_batch_size = 32
lr_scheduler_type = "constant"
max_steps = 60
save_steps = 10
"#;

/// (step, loss) of a run folder's metrics.
fn losses(dir: &Path) -> Vec<(u64, f64)> {
    jsonl(&dir.join("metrics.jsonl"))
        .iter()
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

/// The step of the checkpoint a resume would use (the previous one when a kill fell
/// between the two renames that put a new one in place).
fn checkpoint_step(run: &Path) -> Option<u64> {
    ["checkpoint", ".checkpoint.old"].iter().find_map(|d| {
        let text = std::fs::read_to_string(run.join(d).join("state.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["step"].as_u64()
    })
}

#[test]
fn distill_carries_a_teachers_skill_to_the_student_and_resumes() {
    let t = temp("e2e");
    let (prompts, teacher_data) = write_task(&t);

    // 1. A teacher that knows the task: the fixture fine-tuned on worked answers.
    let teacher_cfg = t.join("teacher.toml");
    std::fs::write(
        &teacher_cfg,
        "template = \"raw\"\nlearning_rate = 1e-2\nper_device_train_batch_size = 25\n\
         lr_scheduler_type = \"constant\"\nmax_steps = 40\nsave_steps = 0\n",
    )
    .unwrap();
    let teacher_run = t.join("teacher");
    let (code, err) = r1(&[
        "sft",
        "--config",
        &s(&teacher_cfg),
        "--model",
        &fixture(),
        "--data",
        &s(&teacher_data),
        "--output",
        &s(&teacher_run),
    ]);
    assert_eq!(code, 0, "{err}");
    let teacher = s(&teacher_run.join("checkpoint/model"));
    let base_acc = greedy_accuracy(&fixture(), &prompts, &t.join("eval-base"));
    let teacher_acc = greedy_accuracy(&teacher, &prompts, &t.join("eval-teacher"));
    assert!(teacher_acc >= 0.8, "teacher accuracy {teacher_acc}");

    // 2. Distillation into a fresh copy of the fixture.
    let cfg = t.join("distill.toml");
    std::fs::write(&cfg, DISTILL_CFG).unwrap();
    let out = t.join("run");
    let (c, p, o, fx) = (s(&cfg), s(&prompts), s(&out), fixture());
    let args = [
        "distill",
        "--config",
        &c,
        "--teacher",
        &teacher,
        "--student",
        &fx,
        "--data",
        &p,
        "--output",
        &o,
    ];
    let (code, err) = r1(&args);
    assert_eq!(code, 0, "{err}");

    // Traces: every sampled answer, graded.
    let traces = jsonl(&out.join("traces.jsonl"));
    assert_eq!(traces.len(), 25 * 4);
    let wrong = traces.iter().filter(|r| r["correct"] == false).count();
    // The filters: only verified answers survive, and each drop is counted once.
    let summary = json(&out.join("kept.summary.json"));
    let n = &summary["counts"];
    assert_eq!(n["generated"], 100);
    assert_eq!(n["incorrect"].as_u64().unwrap() as usize, wrong);
    assert!(
        wrong > 0,
        "the teacher never erred at T = 1: nothing to filter"
    );
    let dropped: u64 = [
        "incorrect",
        "mixed_language",
        "long_paragraph",
        "code_block",
        "duplicate",
        "over_keep",
    ]
    .iter()
    .map(|k| n[k].as_u64().unwrap())
    .sum();
    assert_eq!(dropped + n["kept"].as_u64().unwrap(), 100);
    let kept = jsonl(&out.join("kept.jsonl"));
    assert_eq!(kept.len() as u64, n["kept"].as_u64().unwrap());
    assert!(kept.len() >= 20, "kept only {}", kept.len());
    let mut per_prompt = std::collections::BTreeMap::<String, usize>::new();
    for r in &kept {
        // Provenance: which model wrote it, for which prompt, which sample, its scores.
        let pv = &r["provenance"];
        assert_eq!(pv["model"], teacher.as_str(), "{r}");
        let id = pv["prompt_id"].as_str().expect("prompt_id");
        assert!(pv["sample_index"].as_u64().unwrap() < 4, "{r}");
        assert_eq!(pv["scores"]["accuracy"], 1.0, "{r}");
        *per_prompt.entry(id.to_string()).or_default() += 1;
        // Verified here independently: the answer is the sum the prompt asks for.
        let q = r["prompt"].as_str().unwrap();
        let (a, b) = q.trim_end_matches("=?").split_once('+').unwrap();
        let sum: u32 = a.parse::<u32>().unwrap() + b.parse::<u32>().unwrap();
        let c = r["completion"].as_str().unwrap();
        assert!(c.contains(&format!("<answer>{sum}</answer>")), "{r}");
        assert_eq!(r["messages"][1]["content"], c);
    }
    assert!(per_prompt.values().all(|&k| k <= 2), "keep = 2 exceeded");

    // The student learned the teacher's traces: its loss on them fell, and its greedy
    // accuracy went from the base's chance level to about the teacher's.
    let done = json(&out.join("sft/done.json"));
    let (first, last) = (
        done["first_loss"].as_f64().unwrap(),
        done["last_loss"].as_f64().unwrap(),
    );
    assert!(last < first * 0.1, "student loss {first} -> {last}");
    let student = s(&out.join("sft/checkpoint/model"));
    let student_acc = greedy_accuracy(&student, &prompts, &t.join("eval-student"));
    eprintln!(
        "greedy accuracy: base {base_acc:.2}, teacher {teacher_acc:.2}, student {student_acc:.2}; \
         kept {} of 100 ({wrong} wrong); student loss {first:.3} -> {last:.4}",
        kept.len()
    );
    assert!(
        student_acc >= base_acc + 0.5,
        "student accuracy {student_acc} vs base {base_acc}"
    );

    // 3. The same command again: every stage is complete and skipped.
    let before = losses(&out.join("sft"));
    let (code, err) = r1(&args);
    assert_eq!(code, 0, "{err}");
    for stage in ["1/3", "2/3", "3/3"] {
        assert!(err.contains(&format!("distill {stage}: ")), "{err}");
    }
    assert_eq!(err.matches("exists, skipped").count(), 3, "{err}");
    assert_eq!(losses(&out.join("sft")), before);

    // 4. The student's fine-tune killed mid-way (SIGKILL) resumes from its checkpoint
    // on the next run, teacher and filters skipped, and ends with the same losses.
    std::fs::remove_dir_all(out.join("sft")).unwrap();
    let mut child = r1_cmd(&args).spawn().unwrap();
    let t0 = Instant::now();
    while checkpoint_step(&out.join("sft")).unwrap_or(0) < 10 {
        assert!(t0.elapsed() < Duration::from_secs(60), "no checkpoint");
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = checkpoint_step(&out.join("sft")).unwrap();
    assert!(killed_at < 60, "killed too late to test anything");
    assert!(!out.join("sft/done.json").exists());
    let (code, err) = r1(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("traces.jsonl exists, skipped"), "{err}");
    assert!(err.contains("kept.jsonl exists, skipped"), "{err}");
    assert!(err.contains(&format!("at step {killed_at}")), "{err}");
    let after = losses(&out.join("sft"));
    assert_eq!(after.len(), before.len(), "{after:?}");
    for (x, y) in before.iter().zip(&after) {
        assert_eq!(x.0, y.0);
        assert!((x.1 - y.1).abs() < 1e-5, "step {}: {} vs {}", x.0, x.1, y.1);
    }
    let _ = std::fs::remove_dir_all(&t);
}

/// One line on stderr, `error: ` and the message; exit status 1; no panic.
fn assert_one_line_error(code: i32, err: &str) {
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
}

#[test]
fn distill_bad_input_is_one_line_naming_it() {
    let t = temp("bad");
    let (prompts, _) = write_task(&t);
    let (p, fx) = (s(&prompts), fixture());
    let run = |teacher: &str, student: &str, data: &str, out: &str| {
        r1(&[
            "distill",
            "--teacher",
            teacher,
            "--student",
            student,
            "--data",
            data,
            "--output",
            &s(&t.join(out)),
            "--n",
            "1",
        ])
    };

    // A teacher model that is not there.
    let missing = s(&t.join("no-such-teacher"));
    let (code, err) = run(&missing, &fx, &p, "o1");
    assert_one_line_error(code, &err);
    assert!(err.contains("teacher") && err.contains(&missing), "{err}");

    // A student that is not there fails before the teacher samples anything.
    let missing = s(&t.join("no-such-student"));
    let (code, err) = run(&fx, &missing, &p, "o2");
    assert_one_line_error(code, &err);
    assert!(err.contains("student") && err.contains(&missing), "{err}");
    assert!(!t.join("o2/traces.jsonl").exists());

    // Dataset lines without the columns distill needs: the file and line are named.
    let bad = t.join("bad.jsonl");
    for (line, column) in [
        ("{\"question\": \"1+1=?\"}", "`answer`"),
        ("{\"answer\": \"2\"}", "`question`"),
    ] {
        std::fs::write(
            &bad,
            format!("{{\"question\": \"1+2=?\", \"answer\": 3}}\n{line}\n"),
        )
        .unwrap();
        let (code, err) = run(&fx, &fx, &s(&bad), "o3");
        assert_one_line_error(code, &err);
        assert!(
            err.contains(&format!("{}:2:", bad.display())) && err.contains(column),
            "{err}"
        );
        assert!(!t.join("o3/traces.jsonl").exists());
    }
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn distill_sft_table_keeps_the_chat_system_prompt_and_takes_lora() {
    // An [sft] table deserialises a whole SftConfig, whose own default system_prompt is
    // none; the student must still be trained under the system message the teacher's
    // chat prompts carried. Random fixture: keep every answer, one SFT step.
    let t = temp("chat");
    let (prompts, _) = write_task(&t);
    let cfg = t.join("d.toml");
    std::fs::write(
        &cfg,
        "[sampling]\nn = 1\nmax_new_tokens = 4\n[filters]\nrequire_correct = false\n\
         [sft]\nmax_steps = 1\nper_device_train_batch_size = 4\n[sft.lora]\nr = 2\n",
    )
    .unwrap();
    let out = t.join("run");
    let (code, err) = r1(&[
        "distill",
        "--config",
        &s(&cfg),
        "--teacher",
        &fixture(),
        "--student",
        &fixture(),
        "--data",
        &s(&prompts),
        "--output",
        &s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let sft: toml::Value =
        toml::from_str(&std::fs::read_to_string(out.join("sft/config.toml")).unwrap()).unwrap();
    let system = sft["system_prompt"].as_str().unwrap_or_default();
    assert!(system.contains("<think>"), "{sft}");
    assert_eq!(sft["lora"]["r"].as_integer(), Some(2), "{sft}");
    assert!(out.join("sft/checkpoint/adapters.safetensors").exists());
    assert!(out.join("sft/done.json").exists());
    let _ = std::fs::remove_dir_all(&t);
}
