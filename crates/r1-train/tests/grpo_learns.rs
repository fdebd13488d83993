//! GRPO learns: a tiny randomly initialised Llama, trained only through rewards, goes
//! from chance to clearly better greedy accuracy on single-digit sums (a+b with
//! a, b ∈ 0..=4, one-token answers). Seeds are fixed, so the run is deterministic.
//!
//! The settings are chosen for robustness, not for one lucky seed: at learning rate
//! 1e-2 and 200 steps most seeds collapse onto the most common answer (0.20) and a
//! rounding-level change (AVX-512 GEMMs) flipped this test; at 5e-3 and 300 steps seeds
//! 1-6 all reach 0.64-0.88 greedy accuracy, with r1's kernels and with candle's
//! composite ops alike.

mod common;
use common::{greedy_accuracy, items, tiny_model};
use r1_rewards::{CompositeReward, RewardsConfig};
use r1_train::grpo::{GrpoConfig, GrpoItem, GrpoTrainer, LossType};
use r1_train::Trainable;

#[test]
fn grpo_raises_accuracy_of_a_tiny_model_from_rewards_alone() {
    let all = items();
    let policy = Trainable::new(tiny_model()).unwrap();
    let rewards: RewardsConfig = toml::from_str(
        "[[rewards]]\nname = \"accuracy\"\n[rewards.extract]\nfallback_last_number = true\n",
    )
    .unwrap();
    let cfg = GrpoConfig {
        learning_rate: 5e-3,
        num_generations: 8,
        per_device_train_batch_size: 16,
        gradient_accumulation_steps: 2,
        max_completion_length: 1,
        temperature: 1.0,
        loss_type: LossType::Dapo,
        max_steps: 300,
        seed: 3,
        ..Default::default()
    };
    let mut trainer =
        GrpoTrainer::new(cfg, policy, CompositeReward::from_config(&rewards).unwrap()).unwrap();
    let before = greedy_accuracy(&trainer.policy, &all);
    let mut cursor = 0usize;
    let mut rewards_seen = vec![];
    for _ in 0..300 {
        let mut next = |n: usize| {
            let v: Vec<GrpoItem> = (0..n)
                .map(|k| all[(cursor + k * 7) % all.len()].clone())
                .collect();
            cursor += 1;
            v
        };
        let out = trainer.train_step(&mut next).unwrap();
        rewards_seen.push(out.metrics["reward"]);
    }
    let after = greedy_accuracy(&trainer.policy, &all);
    let first: f64 = rewards_seen[..20].iter().sum::<f64>() / 20.0;
    let last: f64 = rewards_seen[280..].iter().sum::<f64>() / 20.0;
    eprintln!("greedy accuracy {before:.2} -> {after:.2}; mean reward {first:.3} -> {last:.3}");
    // Answering the most common sum (4) everywhere scores 0.20: the bar is well above it.
    assert!(after >= before + 0.4, "greedy accuracy {before} -> {after}");
    assert!(last >= first + 0.25, "reward {first} -> {last}");
}
