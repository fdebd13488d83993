#![allow(dead_code)]
//! A tiny Llama over a digits-only vocabulary, and the single-digit sums task.

use candle_core::{Device, Tensor};
use r1_model::model::{parameter_names, parameter_shape};
use r1_model::{LoadedModel, ModelConfig, Tokenizer};
use r1_rollout::{LocalEngine, RolloutEngine, SamplingParams};
use r1_train::grpo::GrpoItem;
use r1_train::Trainable;

const VOCAB: &[&str] = &[
    "<unk>", "<eos>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "=", "?", " ",
];

pub fn tokenizer() -> Tokenizer {
    let vocab: serde_json::Map<String, serde_json::Value> = VOCAB
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i.into()))
        .collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 1, "content": "<eos>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated", "invert": false},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    let mut t = Tokenizer::from_json(
        json.to_string(),
        "test tokenizer",
        None,
        None,
        Some("<eos>".into()),
        None,
    )
    .unwrap();
    t.add_eos_ids(&[1]);
    t
}

pub fn tiny_model() -> LoadedModel {
    let cfg_json = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "vocab_size": VOCAB.len(), "hidden_size": 32,
        "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true, "eos_token_id": 1,
    });
    let cfg = ModelConfig::from_hf_json(&cfg_json, std::path::Path::new("test")).unwrap();
    let dev = Device::Cpu;
    // Fixed-seed weights: a simple LCG so the test does not depend on candle's RNG.
    let mut state = 12345u64;
    let mut weights = r1_model::NamedTensors::new();
    for name in parameter_names(&cfg) {
        let shape = parameter_shape(&cfg, &name);
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if shape.len() == 1 {
            vec![1.0; n]
        } else {
            (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.4
                })
                .collect()
        };
        weights.insert(name, Tensor::from_vec(data, shape, &dev).unwrap());
    }
    LoadedModel {
        cfg,
        weights,
        tokenizer: tokenizer(),
        source: "tiny".into(),
    }
}

pub fn items() -> Vec<GrpoItem> {
    let mut v = vec![];
    for a in 0..5 {
        for b in 0..5 {
            v.push(GrpoItem {
                prompt: format!("{a}+{b}="),
                question: format!("{a}+{b}="),
                answer: Some((a + b).to_string()),
                extra: serde_json::Value::Null,
            });
        }
    }
    v
}

pub fn greedy_accuracy(policy: &Trainable, items: &[GrpoItem]) -> f64 {
    let model = policy.infer_model().unwrap();
    let mut eng = LocalEngine {
        model: &model,
        tokenizer: &policy.tokenizer,
        on_tokens: None,
    };
    let prompts: Vec<Vec<u32>> = items
        .iter()
        .map(|i| policy.tokenizer.encode(&i.prompt, false).unwrap())
        .collect();
    let p = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 1,
        ..Default::default()
    };
    let out = eng.generate(&prompts, 1, &p).unwrap();
    let right = out
        .iter()
        .zip(items)
        .filter(|(c, it)| c[0].text.trim() == it.answer.as_deref().unwrap())
        .count();
    right as f64 / items.len() as f64
}
