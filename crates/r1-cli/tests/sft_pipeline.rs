//! `r1 sft` and `r1 pipeline` on the tiny-llama fixture: exact resume (full and LoRA),
//! the merged LoRA model, clear errors, all four pipeline stages with a resume after a
//! stage.

use std::path::{Path, PathBuf};
use std::process::Command;

fn r1(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_r1"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tiny-llama")
        .display()
        .to_string()
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("r1-sftpipe-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn losses(dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

const SFT_CFG: &str = "learning_rate = 1e-2\nper_device_train_batch_size = 2\nlr_scheduler_type = \"constant\"\nsave_steps = 3\n";

#[test]
fn sft_resumes_at_the_same_step() {
    let t = temp("resume");
    let data = t.join("d.jsonl");
    let rows: String = (0..6)
        .map(|i| format!("{{\"prompt\":\"question {i}\",\"completion\":\"answer {i} {i}\"}}\n"))
        .collect();
    std::fs::write(&data, rows).unwrap();
    let cfg = t.join("sft.toml");
    std::fs::write(&cfg, SFT_CFG).unwrap();
    let (m, d, c) = (
        fixture(),
        data.display().to_string(),
        cfg.display().to_string(),
    );
    let full = t.join("full");
    let part = t.join("part");
    let base = ["sft", "--config", &c, "--model", &m, "--data", &d];
    let run = |out: &Path, steps: &str| {
        let mut a = base.to_vec();
        let o = out.display().to_string();
        a.extend(["--output", &o, "--max-steps", steps]);
        r1(&a)
    };
    let (code, err) = run(&full, "6");
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(&part, "3");
    assert_eq!(code, 0, "{err}");
    let p = part.display().to_string();
    let (code, err) = r1(&["sft", "--resume", &p, "--max-steps", "6"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("at step 3"), "{err}");
    // The saved config records the flag the run was resumed with.
    let saved = std::fs::read_to_string(part.join("config.toml")).unwrap();
    assert!(saved.contains("max_steps = 6"), "{saved}");
    let (a, b) = (losses(&full), losses(&part));
    assert_eq!(a.len(), 6);
    assert_eq!(
        b.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x.1 - y.1).abs() < 1e-4, "step {}: {} vs {}", x.0, x.1, y.1);
    }
    assert!(a[5].1 < a[0].1, "loss did not fall: {a:?}");
    assert!(full.join("loss.png").exists() && full.join("done.json").exists());
    let _ = std::fs::remove_dir_all(&t);
}

/// Every value of `t`, as f32.
fn values(t: &candle_core::Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn sft_with_lora_saves_a_merged_model_and_resumes() {
    use candle_core::{DType, Device};
    let t = temp("lora");
    let data = t.join("d.jsonl");
    let rows: String = (0..6)
        .map(|i| format!("{{\"prompt\":\"question {i}\",\"completion\":\"answer {i} {i}\"}}\n"))
        .collect();
    std::fs::write(&data, rows).unwrap();
    let cfg = t.join("sft.toml");
    std::fs::write(
        &cfg,
        format!(
            "{SFT_CFG}[lora]\nr = 4\nlora_alpha = 8.0\ntarget_modules = [\"q_proj\", \"v_proj\", \"down_proj\"]\n"
        ),
    )
    .unwrap();
    let (m, d, c) = (
        fixture(),
        data.display().to_string(),
        cfg.display().to_string(),
    );
    let (full, part) = (t.join("full"), t.join("part"));
    let run = |out: &Path, steps: &str| {
        let o = out.display().to_string();
        r1(&[
            "sft",
            "--config",
            &c,
            "--model",
            &m,
            "--data",
            &d,
            "--output",
            &o,
            "--max-steps",
            steps,
        ])
    };
    let (code, err) = run(&full, "6");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("LoRA r = 4 on q_proj, v_proj, down_proj"),
        "{err}"
    );
    let (code, err) = run(&part, "3");
    assert_eq!(code, 0, "{err}");
    let p = part.display().to_string();
    let (code, err) = r1(&["sft", "--resume", &p, "--max-steps", "6"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("at step 3"), "{err}");
    // Resuming rebuilds the adapters on the original base: the same losses as a run
    // never stopped (adapting the merged checkpoint again would count them twice).
    let (a, b) = (losses(&full), losses(&part));
    assert_eq!(a.len(), 6);
    assert_eq!(
        b.iter().map(|x| x.0).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x.1 - y.1).abs() < 1e-4, "step {}: {} vs {}", x.0, x.1, y.1);
    }
    assert!(a[5].1 < a[0].1, "loss did not fall: {a:?}");

    // The final model is a plain folder with the adapters merged: W + alpha/r · B A on
    // the targeted modules, the base elsewhere.
    let ckpt = full.join("checkpoint");
    let merged = r1_model::load_path(&ckpt.join("model"), &Device::Cpu, DType::F32).unwrap();
    let base = r1_model::load_path(Path::new(&m), &Device::Cpu, DType::F32).unwrap();
    let adapters =
        candle_core::safetensors::load(ckpt.join("adapters.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(
        adapters.len(),
        2 * 3 * 2,
        "A and B for 3 modules in 2 layers"
    );
    for (name, w) in &merged.weights {
        let module = name.trim_end_matches(".weight");
        match adapters.get(&format!("{module}.lora_A.weight")) {
            Some(a) => {
                let b = &adapters[&format!("{module}.lora_B.weight")];
                let want = (&base.weights[name] + (b.matmul(a).unwrap() * 2.0).unwrap()).unwrap();
                let diff = (w - &want).unwrap().abs().unwrap().max_all().unwrap();
                assert!(
                    diff.to_scalar::<f32>().unwrap() < 1e-5,
                    "{name} is not W + scale BA"
                );
                assert_ne!(
                    values(w),
                    values(&base.weights[name]),
                    "{name}: adapters had no effect"
                );
            }
            None => assert_eq!(values(w), values(&base.weights[name]), "{name} changed"),
        }
    }
    // ... and the commands load it.
    let o = ckpt.join("model").display().to_string();
    let (code, err) = r1(&[
        "generate",
        "--model",
        &o,
        "--prompt",
        "question 1",
        "--max-new-tokens",
        "4",
    ]);
    assert_eq!(code, 0, "{err}");

    // A bad [lora] key is named before any work.
    std::fs::write(
        &cfg,
        format!("{SFT_CFG}[lora]\ntarget_modules = [\"qproj\"]\n"),
    )
    .unwrap();
    let o = t.join("bad").display().to_string();
    let (code, err) = r1(&[
        "sft", "--config", &c, "--model", &m, "--data", &d, "--output", &o,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("lora.target_modules") && err.contains("qproj"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn sft_bad_data_is_named() {
    let t = temp("bad");
    let data = t.join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\":\"a\",\"completion\":\"b\"}\n{\"prompt\":\"a\"}\n",
    )
    .unwrap();
    let (m, d) = (fixture(), data.display().to_string());
    let o = t.join("o").display().to_string();
    let (code, err) = r1(&["sft", "--model", &m, "--data", &d, "--output", &o]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.jsonl:2") && err.contains("`completion`"),
        "{err}"
    );
    std::fs::write(&data, "").unwrap();
    let (code, err) = r1(&["sft", "--model", &m, "--data", &d, "--output", &o]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.jsonl") && err.contains("no examples"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&t);
}

/// A classifier folder from the fixture's decoder plus a random score head.
fn make_reward_model(dir: &Path) {
    use candle_core::{Device, Tensor};
    std::fs::create_dir_all(dir).unwrap();
    let src = PathBuf::from(fixture());
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["architectures"] = serde_json::json!(["LlamaForSequenceClassification"]);
    cfg["num_labels"] = 1.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    for f in ["tokenizer.json", "chat_template.jinja"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut w =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    w.remove("lm_head.weight");
    w.insert(
        "score.weight".into(),
        Tensor::randn(0f32, 0.5, (1, 64), &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();
}

fn pipeline_toml(t: &Path) -> String {
    let cold = t.join("cold.jsonl");
    std::fs::write(
        &cold,
        "{\"prompt\":\"1+1?\",\"completion\":\"<think>1+1=2</think> <answer>2</answer>\"}\n\
         {\"prompt\":\"2+2?\",\"completion\":\"<think>2+2=4</think> <answer>4</answer>\"}\n",
    )
    .unwrap();
    let general = t.join("general.jsonl");
    std::fs::write(&general, "{\"prompt\":\"hi\",\"completion\":\"hello\"}\n").unwrap();
    let mixed = t.join("mixed.jsonl");
    std::fs::write(
        &mixed,
        "{\"prompt\":\"3+3?\",\"answer\":\"6\"}\n{\"prompt\":\"Say something kind.\"}\n",
    )
    .unwrap();
    let rm = t.join("rm");
    make_reward_model(&rm);
    let grpo = "learning_rate = 1e-3\nnum_generations = 2\nper_device_train_batch_size = 2\nmax_completion_length = 6\nmax_steps = 1\nsave_steps = 1\neval_steps = 0\n";
    let sft =
        "learning_rate = 1e-3\nmax_steps = 2\nper_device_train_batch_size = 2\nsave_steps = 1\n";
    format!(
        "model = {m:?}\n[task]\ntask = \"arithmetic\"\ntrain_size = 4\neval_size = 2\n\
         [eval]\nsize = 2\nsamples = 2\nmax_new_tokens = 6\n\
         [cold_start]\ndata = {cold:?}\n[cold_start.sft]\n{sft}\
         [reasoning_rl.grpo]\n{grpo}\
         [rejection]\nprompts = 2\ngeneral_data = {general:?}\n[rejection.sampling]\nn = 2\nmax_new_tokens = 6\n[rejection.sft]\n{sft}\
         [all_scenarios]\ndata = {mixed:?}\n[all_scenarios.reward_model]\npath = {rm:?}\n[all_scenarios.grpo]\n{grpo}",
        m = fixture(),
    )
}

#[test]
fn pipeline_runs_four_stages_and_resumes() {
    let t = temp("pipe");
    let cfg = t.join("p.toml");
    std::fs::write(&cfg, pipeline_toml(&t)).unwrap();
    let out = t.join("run");
    let (c, o) = (cfg.display().to_string(), out.display().to_string());
    let (code, err) = r1(&["pipeline", "--config", &c, "--output", &o]);
    assert_eq!(code, 0, "{err}");
    for s in [
        "stage0-base",
        "stage1-cold-start",
        "stage2-reasoning-rl",
        "stage3-rejection-sft",
        "stage4-all-scenarios",
    ] {
        assert!(out.join(s).join("stage.json").exists(), "{s}: {err}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| 4 RL, all scenarios |"), "{report}");
    // Stage 2's rewards include language consistency.
    let z = std::fs::read_to_string(out.join("stage2-reasoning-rl/config.toml")).unwrap();
    assert!(z.contains("language_consistency"), "{z}");
    // Interrupted after stage 3: stage 4 resumes, earlier stages are skipped.
    std::fs::remove_file(out.join("stage4-all-scenarios/stage.json")).unwrap();
    let (code, err) = r1(&["pipeline", "--resume", &o]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("3 rejection sampling + SFT complete, skipped"),
        "{err}"
    );
    assert!(out.join("stage4-all-scenarios/stage.json").exists());
    // A fresh --config into the same folder is refused.
    let (code, err) = r1(&["pipeline", "--config", &c, "--output", &o]);
    assert_eq!(code, 1);
    assert!(err.contains("--resume"), "{err}");
    let _ = std::fs::remove_dir_all(&t);
}

#[test]
fn pipeline_bad_config_and_missing_input() {
    let t = temp("pipebad");
    let cfg = t.join("p.toml");
    std::fs::write(&cfg, "[cold_start]\ndata = \"x.jsonl\"\nlearning_rat = 1\n").unwrap();
    let (c, o) = (cfg.display().to_string(), t.join("o").display().to_string());
    let (code, err) = r1(&["pipeline", "--config", &c, "--output", &o]);
    assert_eq!(code, 1);
    assert!(err.contains("learning_rat"), "{err}");
    std::fs::write(&cfg, "[cold_start]\ndata = \"/nonexistent/cold.jsonl\"\n").unwrap();
    let (code, err) = r1(&["pipeline", "--config", &c, "--output", &o]);
    assert_eq!(code, 1);
    assert!(
        err.contains("stage 1 (cold start)") && err.contains("/nonexistent/cold.jsonl"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&t);
}
