//! LoRA: fresh adapters leave the model unchanged, the merged save equals the adapted
//! model, only adapters train, and GRPO with LoRA learns.

mod common;
use candle_core::{Device, Tensor};
use common::{greedy_accuracy, items, tiny_model};
use r1_model::model::{causal_mask, positions};
use r1_model::{Mode, Model};
use r1_rewards::{CompositeReward, RewardsConfig};
use r1_train::grpo::{GrpoConfig, GrpoItem, GrpoTrainer};
use r1_train::{LoraConfig, Trainable};

fn logits_in(m: &Model, mode: Mode) -> Tensor {
    let ids = Tensor::new(&[[2u32, 12, 5, 13], [0, 0, 7, 13]], &Device::Cpu).unwrap();
    let pads = [0, 2];
    let h = m
        .forward(
            &ids,
            &positions(&pads, 0, 4, &Device::Cpu).unwrap(),
            Some(&causal_mask(&pads, 0, 4, &Device::Cpu).unwrap()),
            None,
            mode,
        )
        .unwrap();
    h.broadcast_matmul(&m.lm_head.t().unwrap()).unwrap()
}

fn logits(m: &Model) -> Tensor {
    logits_in(m, Mode::Infer)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn lora_cfg() -> LoraConfig {
    LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        ..Default::default()
    }
}

#[test]
fn fresh_adapters_change_nothing_and_merging_preserves_the_function() {
    let base = Trainable::new(tiny_model()).unwrap().infer_model().unwrap();
    let lora = Trainable::new_lora(tiny_model(), lora_cfg(), 1).unwrap();
    assert_eq!(
        lora.names.len(),
        2 * 7 * 2,
        "A and B for 7 modules in 2 layers"
    );
    assert_eq!(
        max_diff(&logits(&base), &logits(&lora.infer_model().unwrap())),
        0.0
    );
    // Give B values, then the adapted model must equal the merged, saved, reloaded one.
    for v in lora.vars.iter().skip(1).step_by(2) {
        v.set(&(Tensor::randn(0f32, 0.3, v.shape(), &Device::Cpu).unwrap()))
            .unwrap();
    }
    let adapted = logits(&lora.infer_model().unwrap());
    assert!(
        max_diff(&logits(&base), &adapted) > 1e-3,
        "adapters had no effect"
    );
    let dir = std::env::temp_dir().join(format!("r1-lora-merged-{}", std::process::id()));
    lora.save(&dir).unwrap();
    let back = r1_model::load_path(&dir, &Device::Cpu, candle_core::DType::F32).unwrap();
    let d = max_diff(&adapted, &logits(&back.model().unwrap()));
    assert!(d < 1e-5, "merged model differs by {d}");
    // The reference (adapters off) is the base.
    assert_eq!(
        max_diff(&logits(&base), &logits(&lora.reference_model().unwrap())),
        0.0
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn only_adapters_train_and_all_of_them_get_gradients() {
    let lora = Trainable::new_lora(tiny_model(), lora_cfg(), 2).unwrap();
    for v in lora.vars.iter().skip(1).step_by(2) {
        v.set(&(Tensor::randn(0f32, 0.3, v.shape(), &Device::Cpu).unwrap()))
            .unwrap();
    }
    let loss = logits_in(&lora.train_model().unwrap(), Mode::Train)
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    for (n, v) in lora.names.iter().zip(&lora.vars) {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {n}"));
        let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(norm > 0.0, "zero gradient for {n}");
    }
    let (base, _) = lora.lora.as_ref().unwrap();
    assert!(
        base.values().all(|t| grads.get(t).is_none()),
        "a frozen base weight got a gradient"
    );
}

#[test]
fn checkpointing_gives_lora_the_same_gradients() {
    checkpointed_lora_gradients_match(0.0);
}

#[test]
fn checkpointing_with_lora_dropout_recomputes_the_same_mask() {
    // The seeded mask is drawn again when the checkpointed blocks rerun their forward:
    // with candle's unseeded dropout these gradients differed.
    checkpointed_lora_gradients_match(0.3);
}

#[test]
fn lora_dropout_is_seeded() {
    let lora = trained_looking_lora(0.3);
    let m = lora.train_model().unwrap();
    let run = |seed| {
        m.set_dropout_seed(seed);
        logits_in(&m, Mode::Train)
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_eq!(max_diff(&a, &b), 0.0, "same seed, same masks");
    assert!(max_diff(&a, &c) > 1e-3, "another seed, other masks");
    assert!(
        max_diff(&a, &logits_in(&m, Mode::Infer)) > 1e-3,
        "dropout applies in training"
    );
}

/// Adapters with random `B` (fresh ones are zero, which would hide any difference).
fn trained_looking_lora(dropout: f32) -> Trainable {
    let cfg = LoraConfig {
        lora_dropout: dropout,
        ..lora_cfg()
    };
    let lora = Trainable::new_lora(tiny_model(), cfg, 4).unwrap();
    for v in lora.vars.iter().skip(1).step_by(2) {
        v.set(&(Tensor::randn(0f32, 0.3, v.shape(), &Device::Cpu).unwrap()))
            .unwrap();
    }
    lora
}

fn checkpointed_lora_gradients_match(dropout: f32) {
    // The embedding is frozen under LoRA, so block inputs are untracked: the recomputed
    // blocks must still reach the adapters.
    let lora = trained_looking_lora(dropout);
    let plain = lora.train_model().unwrap();
    let mut ckpt = lora.train_model().unwrap();
    ckpt.enable_checkpointing();
    plain.set_dropout_seed(11);
    ckpt.set_dropout_seed(11);
    let g1 = plain
        .backward(
            &logits_in(&plain, Mode::Train)
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap(),
        )
        .unwrap();
    let g2 = ckpt
        .backward(
            &logits_in(&ckpt, Mode::Train)
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap(),
        )
        .unwrap();
    for (n, v) in lora.names.iter().zip(&lora.vars) {
        let a = g1
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {n}"));
        let b = g2
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no checkpointed gradient for {n}"));
        let d: f32 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-4, "{n}: gradients differ by {d}");
    }
}

#[test]
fn grpo_with_lora_learns() {
    let all = items();
    let policy = Trainable::new_lora(
        tiny_model(),
        LoraConfig {
            r: 8,
            lora_alpha: 16.0,
            ..Default::default()
        },
        3,
    )
    .unwrap();
    let rewards: RewardsConfig = toml::from_str(
        "[[rewards]]\nname = \"accuracy\"\n[rewards.extract]\nfallback_last_number = true\n",
    )
    .unwrap();
    let cfg = GrpoConfig {
        learning_rate: 1e-2,
        num_generations: 8,
        per_device_train_batch_size: 16,
        gradient_accumulation_steps: 2,
        max_completion_length: 1,
        beta: 0.01, // exercises the free reference (base with adapters off)
        max_steps: 200,
        seed: 3,
        ..Default::default()
    };
    let mut trainer =
        GrpoTrainer::new(cfg, policy, CompositeReward::from_config(&rewards).unwrap()).unwrap();
    let before = greedy_accuracy(&trainer.policy, &all);
    let mut cursor = 0usize;
    for _ in 0..200 {
        let mut next = |n: usize| {
            let v: Vec<GrpoItem> = (0..n)
                .map(|k| all[(cursor + k * 7) % all.len()].clone())
                .collect();
            cursor += 1;
            v
        };
        trainer.train_step(&mut next).unwrap();
    }
    let after = greedy_accuracy(&trainer.policy, &all);
    eprintln!("LoRA greedy accuracy {before:.2} -> {after:.2}");
    // With frozen random embeddings the adapters reach the most common answer (0.20) or
    // more here, full fine-tuning gets further (see grpo_learns.rs); both start at chance
    // (0.04). At learning rate 1e-2 this holds for seeds 1-5 (0.20-0.48); at 2e-2 some
    // seeds stall at 0.08-0.12, so rounding-level changes in the kernels could flip it.
    assert!(
        after >= before + 0.15,
        "greedy accuracy {before} -> {after}"
    );
}
