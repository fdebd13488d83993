//! SFT learns: the tiny-llama fixture (random weights) fine-tuned on a small
//! repetitive chat dataset lowers its loss clearly, and greedy generation afterwards
//! reproduces a memorised completion, end-of-turn included.

use candle_core::{DType, Device};
use r1_model::Message;
use r1_rollout::{LocalEngine, RolloutEngine, SamplingParams};
use r1_train::optim::Schedule;
use r1_train::sft::{data::parse_line, tokenize_all, SftConfig, SftTemplate, SftTrainer};
use r1_train::Trainable;
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
