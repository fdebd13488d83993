//! The rollout engine on a tiny random Llama (fixture): its log-probabilities equal the
//! training pass's, batching and padding change nothing, seeds reproduce, stops stop.

use candle_core::{DType, Device};
use r1_model::scoring::completion_logprobs;
use r1_model::{LoadedModel, Mode};
use r1_rollout::{FinishReason, LocalEngine, RolloutEngine, SamplingParams};

fn tiny() -> LoadedModel {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tiny-llama");
    r1_model::load_path(&p, &Device::Cpu, DType::F32).unwrap()
}

fn prompts(lm: &LoadedModel) -> Vec<Vec<u32>> {
    [
        "What is 2 + 3?",
        "Let me think step by step about a much longer question here.",
    ]
    .iter()
    .map(|t| lm.tokenizer.encode(t, false).unwrap())
    .collect()
}

fn params(t: f64, seed: u64) -> SamplingParams {
    SamplingParams {
        temperature: t,
        top_p: 0.9,
        max_new_tokens: 24,
        seed,
        ..Default::default()
    }
}

#[test]
fn sampler_logprobs_equal_the_training_forward() {
    let lm = tiny();
    let model = lm.model().unwrap();
    let ps = prompts(&lm);
    assert_ne!(ps[0].len(), ps[1].len(), "prompts must need padding");
    for temp in [1.0, 0.7] {
        let mut eng = LocalEngine {
            model: &model,
            tokenizer: &lm.tokenizer,
            on_tokens: None,
        };
        let out = eng.generate(&ps, 3, &params(temp, 5)).unwrap();
        let flat: Vec<_> = out.iter().flatten().collect();
        let pr: Vec<&[u32]> = flat.iter().map(|c| ps[c.prompt_index].as_slice()).collect();
        let cs: Vec<&[u32]> = flat.iter().map(|c| c.token_ids.as_slice()).collect();
        let scores = completion_logprobs(&model, &pr, &cs, temp, Mode::Train, false).unwrap();
        let train: Vec<Vec<f32>> = scores.logprobs.to_vec2().unwrap();
        let mut worst = 0f32;
        for (row, c) in flat.iter().enumerate() {
            for (k, &lp) in c.logprobs.iter().enumerate() {
                worst = worst.max((lp - train[row][k]).abs());
            }
        }
        assert!(worst < 1e-5, "T={temp}: max |sampler - trainer| = {worst}");
    }
}

#[test]
fn a_prompt_samples_the_same_alone_or_padded_in_a_batch() {
    let lm = tiny();
    let model = lm.model().unwrap();
    let ps = prompts(&lm);
    let mut eng = LocalEngine {
        model: &model,
        tokenizer: &lm.tokenizer,
        on_tokens: None,
    };
    let p = params(1.0, 9);
    let batched = eng.generate(&ps, 2, &p).unwrap();
    let alone = eng.generate(&ps[..1], 2, &p).unwrap();
    for s in 0..2 {
        assert_eq!(batched[0][s].token_ids, alone[0][s].token_ids);
        for (a, b) in batched[0][s].logprobs.iter().zip(&alone[0][s].logprobs) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}

#[test]
fn seeds_reproduce_and_differ() {
    let lm = tiny();
    let model = lm.model().unwrap();
    let ps = prompts(&lm);
    let mut eng = LocalEngine {
        model: &model,
        tokenizer: &lm.tokenizer,
        on_tokens: None,
    };
    let a = eng.generate(&ps, 2, &params(1.0, 1)).unwrap();
    let b = eng.generate(&ps, 2, &params(1.0, 1)).unwrap();
    let c = eng.generate(&ps, 2, &params(1.0, 2)).unwrap();
    let toks = |o: &Vec<Vec<r1_rollout::Completion>>| {
        o.iter()
            .flatten()
            .map(|c| c.token_ids.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(toks(&a), toks(&b));
    assert_ne!(toks(&a), toks(&c));
    // Samples of one group differ from each other.
    assert_ne!(a[0][0].token_ids, a[0][1].token_ids);
}

#[test]
fn greedy_stops_on_stop_strings_eos_and_length() {
    let mut lm = tiny();
    let ps = prompts(&lm);
    let model = lm.model().unwrap();
    let greedy = |lm: &LoadedModel, stop: Vec<String>| {
        let mut eng = LocalEngine {
            model: &model,
            tokenizer: &lm.tokenizer,
            on_tokens: None,
        };
        let p = SamplingParams {
            temperature: 0.0,
            max_new_tokens: 16,
            stop,
            ..Default::default()
        };
        eng.generate(&ps[..1], 1, &p).unwrap().remove(0).remove(0)
    };
    let full = greedy(&lm, vec![]);
    assert_eq!(full.finish_reason, FinishReason::Length);
    assert_eq!(full.token_ids.len(), 16);
    // A stop string taken from the middle of the greedy text cuts it there.
    let chars: Vec<char> = full.text.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let cut = greedy(&lm, vec![stop.clone()]);
    assert_eq!(cut.finish_reason, FinishReason::Stop);
    assert_eq!(cut.text, full.text[..full.text.find(&stop).unwrap()]);
    assert!(cut.token_ids.len() < 16);
    // min_new_tokens keeps an end-of-sequence token from being drawn too early.
    let mut forced_lm = tiny();
    forced_lm.tokenizer.add_eos_ids(&[full.token_ids[3]]);
    let mut eng = LocalEngine {
        model: &model,
        tokenizer: &forced_lm.tokenizer,
        on_tokens: None,
    };
    let p = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 16,
        min_new_tokens: 16,
        ..Default::default()
    };
    let forced = eng.generate(&ps[..1], 1, &p).unwrap().remove(0).remove(0);
    assert_eq!(forced.finish_reason, FinishReason::Length);
    assert_eq!(forced.token_ids.len(), 16);
    // Declaring the 4th greedy token an end-of-sequence id ends generation there.
    lm.tokenizer.add_eos_ids(&[full.token_ids[3]]);
    let first = full
        .token_ids
        .iter()
        .position(|&t| t == full.token_ids[3])
        .unwrap();
    let eos = greedy(&lm, vec![]);
    assert_eq!(eos.finish_reason, FinishReason::Eos);
    assert_eq!(eos.token_ids, full.token_ids[..=first]);
}

#[test]
fn prompts_with_a_common_start_encode_it_once_and_sample_as_alone() {
    let lm = tiny();
    let model = lm.model().unwrap();
    let system =
        "You are a helpful assistant. First think step by step, then put the answer in tags. ";
    let ps: Vec<Vec<u32>> = [
        "What is 2 + 3?",
        "And a much longer question, with more words in it?",
    ]
    .iter()
    .map(|q| lm.tokenizer.encode(&format!("{system}{q}"), false).unwrap())
    .collect();
    let common = ps[0].iter().zip(&ps[1]).take_while(|(a, b)| a == b).count();
    assert!(
        common >= 16,
        "the prompts must share enough to be encoded once: {common}"
    );
    assert_ne!(ps[0].len(), ps[1].len(), "prompts must need padding");
    let mut eng = LocalEngine {
        model: &model,
        tokenizer: &lm.tokenizer,
        on_tokens: None,
    };
    // Alone, a prompt has nothing to share: the plain left-padded layout. Greedy
    // decoding compares both prompts (a sampled row's seed depends on its prompt's
    // index in the call, so only the first compares sampled).
    let greedy = params(0.0, 3);
    let p = params(1.0, 3);
    let batched_greedy = eng.generate(&ps, 1, &greedy).unwrap();
    for (i, prompt) in ps.iter().enumerate() {
        let alone = eng
            .generate(std::slice::from_ref(prompt), 1, &greedy)
            .unwrap();
        assert_eq!(
            batched_greedy[i][0].token_ids, alone[0][0].token_ids,
            "prompt {i}"
        );
    }
    let batched = eng.generate(&ps, 2, &p).unwrap();
    let alone = eng.generate(&ps[..1], 2, &p).unwrap();
    for s in 0..2 {
        assert_eq!(batched[0][s].token_ids, alone[0][s].token_ids);
        for (a, b) in batched[0][s].logprobs.iter().zip(&alone[0][s].logprobs) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
    // And the trainer's forward, which encodes every prompt whole, agrees.
    let flat: Vec<_> = batched.iter().flatten().collect();
    let pr: Vec<&[u32]> = flat.iter().map(|c| ps[c.prompt_index].as_slice()).collect();
    let cs: Vec<&[u32]> = flat.iter().map(|c| c.token_ids.as_slice()).collect();
    let scores = completion_logprobs(&model, &pr, &cs, 1.0, Mode::Train, false).unwrap();
    let train: Vec<Vec<f32>> = scores.logprobs.to_vec2().unwrap();
    for (row, c) in flat.iter().enumerate() {
        for (k, &lp) in c.logprobs.iter().enumerate() {
            assert!((lp - train[row][k]).abs() < 1e-5, "row {row} token {k}");
        }
    }
}
