//! The local reward model: a tiny `LlamaForSequenceClassification` built here from the
//! tiny-llama fixture's decoder plus a random `score.weight` scores exactly
//! `hidden(last token) · score.weight`, batched or not, and the reward modes read the
//! right part of the response.

use candle_core::{DType, Device, Tensor};
use r1_judge::JudgeMode;
use r1_model::classifier::{is_classifier, SequenceClassifier};
use r1_model::Mode;
use r1_rewards::{RewardFn, RewardInput};
use r1_train::reward_model::{RewardModel, RewardModelConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama")
}

/// Writes a classifier folder made of the fixture's decoder and a random head.
fn make_classifier(dir: &Path) -> Tensor {
    std::fs::create_dir_all(dir).unwrap();
    let src = fixture();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["architectures"] = serde_json::json!(["LlamaForSequenceClassification"]);
    cfg["num_labels"] = 1.into();
    cfg["pad_token_id"] = 0.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    for f in ["tokenizer.json", "chat_template.jinja"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut w: HashMap<String, Tensor> =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    w.remove("lm_head.weight");
    let score = Tensor::randn(0f32, 0.5, (1, 64), &Device::Cpu).unwrap();
    w.insert("score.weight".into(), score.clone());
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();
    score
}

#[test]
fn scores_the_last_token_hidden_state() {
    let dir = std::env::temp_dir().join(format!("r1-rm-{}", std::process::id()));
    let score = make_classifier(&dir);
    assert!(is_classifier(&dir));
    assert!(!is_classifier(&fixture()));
    let rm = RewardModel::load(
        &RewardModelConfig {
            path: dir.clone(),
            mode: JudgeMode::Harmlessness,
            sigmoid: false,
        },
        &Device::Cpu,
    )
    .unwrap();
    // Direct computation with the causal decoder of the fixture.
    let lm = r1_model::load_path(&fixture(), &Device::Cpu, DType::F32).unwrap();
    let model = lm.model().unwrap();
    let ids = rm.encode("What is 2+2?", "It is 4.").unwrap();
    let t = ids.len();
    let x = Tensor::from_vec(ids.clone(), (1, t), &Device::Cpu).unwrap();
    let pos = Tensor::from_vec((0..t as u32).collect::<Vec<_>>(), (1, t), &Device::Cpu).unwrap();
    let mask = r1_model::model::causal_mask(&[0], 0, t, &Device::Cpu).unwrap();
    let h = model
        .forward(&x, &pos, Some(&mask), None, Mode::Infer)
        .unwrap();
    let last = h.narrow(1, t - 1, 1).unwrap().flatten_all().unwrap();
    let want: f32 = (last * score.flatten_all().unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let got = rm.raw_score("What is 2+2?", "It is 4.").unwrap();
    assert!((got - want as f64).abs() < 1e-4, "{got} vs {want}");

    // Batched with a longer row (left padding) gives the same score.
    let clf = SequenceClassifier::load(&dir, &Device::Cpu, DType::F32).unwrap();
    let long = rm
        .encode("A much longer question, padded against?", "Yes.")
        .unwrap();
    let both = clf.logits(&[ids, long]).unwrap();
    assert!((both[0][0] as f64 - got).abs() < 1e-4);

    // Modes: harmlessness reads the whole response, helpfulness the final answer.
    let extra = serde_json::Value::Null;
    let input = |completion| RewardInput {
        prompt: "What is 2+2?",
        completion,
        answer: None,
        completion_tokens: 3,
        max_completion_tokens: 16,
        truncated: false,
        extra: &extra,
    };
    let resp = "<think>two plus two</think> It is 4.";
    let harm = rm.score(&input(resp)).value;
    assert!((harm - rm.raw_score("What is 2+2?", resp).unwrap()).abs() < 1e-6);
    let help = RewardModel::load(
        &RewardModelConfig {
            path: dir.clone(),
            mode: JudgeMode::Helpfulness,
            sigmoid: true,
        },
        &Device::Cpu,
    )
    .unwrap();
    let v = help.score(&input(resp)).value;
    assert!((v - 1.0 / (1.0 + (-got).exp())).abs() < 1e-6, "{v}");
    assert_eq!(help.score(&input("<think>never closed")).value, 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_causal_model_is_refused() {
    let err = SequenceClassifier::load(&fixture(), &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("ForSequenceClassification"), "{err}");
}
