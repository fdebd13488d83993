//! SFT learns: the tiny-llama fixture (random weights) fine-tuned on a small
//! repetitive chat dataset lowers its loss clearly, and greedy generation afterwards
//! reproduces a memorised completion, end-of-turn included. With LoRA, the tiny digit
//! model learns single-digit sums while its base weights stay exactly as they were.

mod common;
use candle_core::{DType, Device, Tensor};
use common::{greedy_accuracy, items, tiny_model};
use r1_model::Message;
use r1_rollout::{LocalEngine, RolloutEngine, SamplingParams};
use r1_train::optim::Schedule;
use r1_train::sft::{data::parse_line, tokenize_all, SftConfig, SftTemplate, SftTrainer};
use r1_train::{LoraConfig, Trainable};
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama")
}

const ROWS: &[(&str, &str)] = &[
    ("What is the colour of the sky?", "blue"),
    ("Name a fruit.", "apple pie"),
    ("Count to three.", "1 2 3"),
    ("Say hello.", "hello world"),
];

#[test]
fn sft_lowers_loss_and_memorises() {
    let lm = r1_model::load_path(&fixture(), &Device::Cpu, DType::F32).unwrap();
    let examples: Vec<_> = ROWS
        .iter()
        .map(|(p, c)| {
            parse_line(&serde_json::json!({"prompt": p, "completion": c}).to_string()).unwrap()
        })
        .collect();
    let (data, dropped) =
        tokenize_all(&lm.tokenizer, &examples, SftTemplate::Chat, None, 256).unwrap();
    assert_eq!(dropped, 0);
    // The completion ends with the template's end-of-turn token, so the model learns
    // to stop.
    let im_end = lm.tokenizer.token_id("<|im_end|>").unwrap();
    assert_eq!(*data[0].completion.last().unwrap(), im_end);
    let cfg = SftConfig {
        learning_rate: 1e-2,
        max_steps: 60,
        per_device_train_batch_size: 2,
        gradient_accumulation_steps: 2,
        warmup_steps: 5,
        lr_scheduler_type: Schedule::Constant,
        ..Default::default()
    };
    let policy = Trainable::new(lm).unwrap();
    let mut trainer = SftTrainer::new(cfg, policy, data.clone()).unwrap();
    let before = trainer.eval_loss(&data).unwrap();
    let mut first = None;
    let mut last = 0.0;
    while trainer.step < trainer.total_steps {
        let s = trainer.train_step().unwrap();
        assert!(s.applied && s.loss.is_finite());
        first.get_or_insert(s.loss);
        last = s.loss;
    }
    let after = trainer.eval_loss(&data).unwrap();
    eprintln!(
        "loss {before:.3} -> {after:.3} (train {:.3} -> {last:.3})",
        first.unwrap()
    );
    assert!(after < before * 0.2, "loss {before} -> {after}");
    assert!(last < first.unwrap() * 0.3);

    let tok = trainer.policy.tokenizer.clone();
    let model = trainer.policy.infer_model().unwrap();
    let prompt = tok
        .apply_chat_template(&[Message::new("user", ROWS[1].0)], true)
        .unwrap();
    let ids = tok.encode(&prompt, false).unwrap();
    let mut engine = LocalEngine {
        model: &model,
        tokenizer: &tok,
        on_tokens: None,
    };
    let p = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 20,
        ..Default::default()
    };
    let out = engine.generate(&[ids], 1, &p).unwrap();
    assert_eq!(out[0][0].text.trim(), ROWS[1].1);
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn sft_with_lora_learns_sums_and_leaves_the_base_alone() {
    let all = items();
    // "a+b=" -> "a+b" then EOS, 25 sums; raw text, the digit model has no chat template.
    let examples: Vec<_> = all
        .iter()
        .map(|it| {
            let row = serde_json::json!({"prompt": it.prompt, "completion": it.answer});
            parse_line(&row.to_string()).unwrap()
        })
        .collect();
    let lm = tiny_model();
    let (data, dropped) =
        tokenize_all(&lm.tokenizer, &examples, SftTemplate::Raw, None, 16).unwrap();
    assert_eq!(dropped, 0);
    let cfg = SftConfig {
        learning_rate: 2e-2,
        max_steps: 150,
        per_device_train_batch_size: 25,
        lr_scheduler_type: Schedule::Constant,
        seed: 7,
        lora: Some(LoraConfig {
            r: 8,
            lora_alpha: 16.0,
            ..Default::default()
        }),
        ..Default::default()
    };
    let policy = r1_train::sft::sft_policy(&cfg, lm).unwrap();
    assert!(policy.lora.is_some());
    let adapters_before: Vec<Vec<f32>> = policy.vars.iter().map(|v| values(v)).collect();
    let mut trainer = SftTrainer::new(cfg, policy, data.clone()).unwrap();
    let (loss_before, acc_before) = (
        trainer.eval_loss(&data).unwrap(),
        greedy_accuracy(&trainer.policy, &all),
    );
    while trainer.step < trainer.total_steps {
        let s = trainer.train_step().unwrap();
        assert!(s.applied && s.loss.is_finite());
    }
    let (loss_after, acc_after) = (
        trainer.eval_loss(&data).unwrap(),
        greedy_accuracy(&trainer.policy, &all),
    );
    eprintln!("LoRA SFT: loss {loss_before:.3} -> {loss_after:.3}, greedy accuracy {acc_before:.2} -> {acc_after:.2}");
    assert!(
        acc_after >= acc_before + 0.6,
        "greedy accuracy {acc_before} -> {acc_after}"
    );
    assert!(
        loss_after < loss_before * 0.25,
        "loss {loss_before} -> {loss_after}"
    );

    // The frozen base is bit for bit the model it was built from (a second, independent
    // copy: tiny_model() is deterministic).
    let policy = &trainer.policy;
    let (base, lora) = policy.lora.as_ref().unwrap();
    let fresh = tiny_model().weights;
    assert_eq!(base.len(), fresh.len());
    for (name, t) in base {
        assert_eq!(
            values(t),
            values(&fresh[name]),
            "base weight {name} changed"
        );
    }
    // Every adapter trained: B left zero, A left its initialisation.
    for ((name, v), before) in policy.names.iter().zip(&policy.vars).zip(&adapters_before) {
        assert_ne!(&values(v), before, "adapter {name} did not train");
    }
    // What gets saved is the base plus the adapters on the targeted modules only.
    let merged = policy.named();
    for (name, t) in &merged {
        let targeted = lora
            .target_modules
            .iter()
            .any(|m| name.contains(m.as_str()));
        let same = values(t) == values(&fresh[name]);
        assert_eq!(same, !targeted, "{name}: merged weight");
    }
}
