//! The `r1` binary as a user meets it: bad input gives one clear line naming the file,
//! never a panic; the default model answers simple questions.

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

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn temp_copy(name: &str, tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("r1-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

/// Runs `generate` on `model` and expects a one-line error mentioning `must_name`.
fn expect_clear_error(model: &Path, must_name: &str, must_say: &str) {
    let m = model.to_str().unwrap();
    let (code, _out, err) = r1(&[
        "generate",
        "--model",
        m,
        "--prompt",
        "hi",
        "--max-new-tokens",
        "2",
    ]);
    assert_eq!(code, 1, "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(must_name),
        "error does not name {must_name}: {err}"
    );
    assert!(
        err.to_lowercase().contains(must_say),
        "error does not say `{must_say}`: {err}"
    );
}

#[test]
fn bad_models_give_one_clear_line_naming_the_file() {
    expect_clear_error(
        Path::new("/no/such/model"),
        "/no/such/model",
        "no such file",
    );

    let d = temp_copy("tiny-llama", "corrupt");
    std::fs::write(
        d.join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage",
    )
    .unwrap();
    expect_clear_error(&d, "model.safetensors", "not a valid safetensors");

    let d = temp_copy("tiny-llama", "arch");
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
    std::fs::write(
        d.join("config.json"),
        cfg.replace("LlamaForCausalLM", "GPT2LMHeadModel"),
    )
    .unwrap();
    expect_clear_error(
        &d,
        "config.json",
        "unsupported architecture `gpt2lmheadmodel`",
    );

    let d = temp_copy("tiny-llama", "nocfg");
    std::fs::remove_file(d.join("config.json")).unwrap();
    expect_clear_error(&d, "config.json", "no such file");

    let d = temp_copy("tiny-llama", "tok");
    std::fs::write(d.join("tokenizer.json"), "{\"model\": 3}").unwrap();
    expect_clear_error(&d, "tokenizer.json", "not a valid tokenizer");

    let d = temp_copy("tiny-llama", "tmpl");
    std::fs::write(
        d.join("chat_template.jinja"),
        "{% for m in messages %}{{ m.content }",
    )
    .unwrap();
    expect_clear_error(&d, "chat_template.jinja", "invalid chat template");

    let d = temp_copy("tiny-llama", "shape");
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
    std::fs::write(
        d.join("config.json"),
        cfg.replace("\"intermediate_size\": 112", "\"intermediate_size\": 100"),
    )
    .unwrap();
    expect_clear_error(
        &d,
        "r1-cli-shape",
        "has shape [112, 64], expected [100, 64]",
    );

    let g = std::env::temp_dir().join(format!("r1-cli-bad-{}.gguf", std::process::id()));
    std::fs::write(&g, b"GGUF\x03\x00\x00\x00garbage-that-is-not-a-header").unwrap();
    expect_clear_error(&g, "r1-cli-bad-", "not a valid gguf");
}

#[test]
fn bad_flags_and_prompt_files_are_named() {
    let m = fixture("tiny-llama");
    let m = m.to_str().unwrap();
    let (code, _, err) = r1(&["generate", "--model", m, "--prompt", "x", "--top-p", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("--top-p"), "{err}");
    let f = std::env::temp_dir().join(format!("r1-cli-prompts-{}.jsonl", std::process::id()));
    std::fs::write(
        &f,
        "{\"prompt\": \"ok\"}\n{\"text\": \"no prompt column\"}\n",
    )
    .unwrap();
    let (code, _, err) = r1(&["generate", "--model", m, "--input", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{}:2", f.display())), "{err}");
    // A TOML error keeps its reason (toml spreads it over several lines).
    let cfg = std::env::temp_dir().join(format!("r1-cli-bad-{}.toml", std::process::id()));
    std::fs::write(&cfg, "[[rewards]]\nname = \"accuracy\"\n[rewardz]\n").unwrap();
    let (code, _, err) = r1(&[
        "reward",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        f.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("unknown field `rewardz`"),
        "the reason was lost: {err}"
    );
    // A device or dtype this build cannot use is named before any work starts.
    let out = std::env::temp_dir().join(format!("r1-cli-device-{}", std::process::id()));
    let out = out.to_str().unwrap();
    let (code, _, err) = r1(&["zero", "--model", m, "--dtype", "f8", "--output", out]);
    assert_eq!(code, 1);
    assert!(err.contains("--dtype") && err.contains("`f8`"), "{err}");
    let (code, _, err) = r1(&["zero", "--model", m, "--device", "cuda:x", "--output", out]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--device cuda:x") && err.contains("`x`"),
        "{err}"
    );
    if !cfg!(feature = "cuda") {
        let (code, _, err) = r1(&["zero", "--model", m, "--device", "cuda", "--output", out]);
        assert_eq!(code, 1);
        assert!(
            err.contains("--device cuda") && err.contains("--features cuda"),
            "{err}"
        );
    }
    // Nothing is written, not even an empty output folder.
    assert!(!Path::new(out).exists(), "zero created {out}");
}

#[test]
fn sft_distill_and_pipeline_name_a_bad_device_before_writing() {
    let tmp = std::env::temp_dir().join(format!("r1-cli-train-device-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let data = tmp.join("sft.jsonl");
    std::fs::write(&data, "{\"prompt\": \"1+1=\", \"completion\": \"2\"}\n").unwrap();
    let cfg = tmp.join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!("[cold_start]\ndata = {:?}\n", data.to_str().unwrap()),
    )
    .unwrap();
    let m = fixture("tiny-llama");
    let (m, data, cfg) = (
        m.to_str().unwrap(),
        data.to_str().unwrap(),
        cfg.to_str().unwrap(),
    );
    let out = |name: &str| tmp.join(name).to_str().unwrap().to_string();
    let runs: [(Vec<String>, &str, &str); 3] = [
        (
            [
                "sft", "--model", m, "--data", data, "--device", "cuda:x", "--output",
            ]
            .map(String::from)
            .to_vec(),
            "sft-out",
            "--device cuda:x",
        ),
        (
            [
                "distill",
                "--teacher",
                m,
                "--data",
                data,
                "--dtype",
                "f8",
                "--output",
            ]
            .map(String::from)
            .to_vec(),
            "distill-out",
            "`f8`",
        ),
        (
            [
                "pipeline", "--config", cfg, "--device", "cuda:x", "--output",
            ]
            .map(String::from)
            .to_vec(),
            "pipeline-out",
            "--device cuda:x",
        ),
    ];
    for (mut args, dir, says) in runs {
        args.push(out(dir));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = r1(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!tmp.join(dir).exists(), "{args:?} wrote {dir}");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn generate_writes_jsonl_with_n_samples_per_prompt() {
    let m = fixture("tiny-qwen2");
    let out = std::env::temp_dir().join(format!("r1-cli-gen-{}.jsonl", std::process::id()));
    let (code, _, err) = r1(&[
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--prompt",
        "a",
        "--prompt",
        "bb cc",
        "--n",
        "3",
        "--max-new-tokens",
        "4",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|l| l["num_tokens"].as_u64().unwrap() <= 4));
    assert_eq!(lines.iter().filter(|l| l["prompt_index"] == 1).count(), 3);
}

/// Runs when the default model is installed; CI installs it and sets
/// R1_REQUIRE_DEFAULT_MODEL so a missing model fails rather than skips.
#[test]
fn default_model_answers_simple_questions_greedily() {
    let path = r1_model::registry::default_model_path();
    if !path.exists() {
        assert!(
            std::env::var_os("R1_REQUIRE_DEFAULT_MODEL").is_none(),
            "default model missing at {}",
            path.display()
        );
        eprintln!("skipping: default model not installed (run `r1 setup`)");
        return;
    }
    let cases = [
        ("What is 2 + 3? Answer with just the number.", "5"),
        ("What is the capital of France?", "Paris"),
    ];
    for (q, want) in cases {
        let (code, out, err) = r1(&[
            "generate",
            "--prompt",
            q,
            "--temperature",
            "0",
            "--max-new-tokens",
            "24",
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(want), "{q} -> {out}");
    }
    let lm = r1_model::load(None, &candle_core::Device::Cpu, candle_core::DType::F32).unwrap();
    assert_eq!(
        lm.tokenizer.encode("<|im_start|>user\n", false).unwrap(),
        vec![1, 4093, 198]
    );
    assert_eq!(lm.tokenizer.eos_ids, vec![2]);
}

#[test]
fn a_stage_table_in_a_config_keeps_the_stages_other_defaults() {
    // Stage 3's SFT defaults to two epochs (not SftConfig's three); setting only its
    // learning rate must not reset them.
    let cfg = std::env::temp_dir().join(format!("r1-cli-nested-{}.toml", std::process::id()));
    std::fs::write(
        &cfg,
        "[cold_start]\ndata = \"cold.jsonl\"\n[rejection.sft]\nlearning_rate = 3e-5\n",
    )
    .unwrap();
    let (code, out, err) = r1(&[
        "pipeline",
        "--config",
        cfg.to_str().unwrap(),
        "--print-config",
    ]);
    assert_eq!(code, 0, "{err}");
    let printed: toml::Table = toml::from_str(&out).unwrap();
    let sft = &printed["rejection"]["sft"];
    assert_eq!(sft["learning_rate"].as_float(), Some(3e-5));
    assert_eq!(sft["num_train_epochs"].as_float(), Some(2.0));
    std::fs::remove_file(&cfg).unwrap();
}
