//! The forward pass matches Hugging Face transformers' logits (fixtures made by
//! scripts/make_fixtures.py) to 1e-4 in f32, for HF folders and for GGUF.

mod common;
use candle_core::{DType, Device, Tensor};
use r1_model::Mode;

fn check(model_path: &str, expected_dir: &str) {
    let lm = r1_model::load_path(&common::fixture(model_path), &Device::Cpu, DType::F32).unwrap();
    let model = lm.model().unwrap();
    let exp = candle_core::safetensors::load(
        common::fixture(expected_dir).join("expected.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let ids = exp["input_ids"].to_dtype(DType::U32).unwrap();
    let attn: Vec<Vec<i64>> = exp["attention_mask"].to_vec2().unwrap();
    let want: Vec<Vec<Vec<f32>>> = exp["logits"].to_vec3().unwrap();
    for mode in [Mode::Infer, Mode::Train] {
        let got: Vec<Vec<Vec<f32>>> = common::logits(&model, &ids, &attn, mode).to_vec3().unwrap();
        let mut worst = 0f32;
        for (r, row) in attn.iter().enumerate() {
            for (i, &m) in row.iter().enumerate() {
                if m == 0 {
                    continue; // transformers' logits at padding positions are meaningless
                }
                for (a, b) in got[r][i].iter().zip(&want[r][i]) {
                    worst = worst.max((a - b).abs());
                }
            }
        }
        assert!(
            worst < 1e-4,
            "{model_path} {mode:?}: max |Δlogit| = {worst}"
        );
    }
}

#[test]
fn llama_with_gqa_and_llama3_rope_scaling_matches_transformers() {
    check("tiny-llama", "tiny-llama");
}

#[test]
fn qwen2_with_biases_and_tied_embeddings_matches_transformers() {
    check("tiny-qwen2", "tiny-qwen2");
}

#[test]
fn llama_without_rope_scaling_matches_transformers() {
    check("tiny-llama-plain", "tiny-llama-plain");
}

#[test]
fn gguf_with_permuted_qk_rows_matches_transformers() {
    check("tiny-llama-plain.gguf", "tiny-llama-plain");
}

#[test]
fn gguf_tokenizer_and_template_match_the_hf_ones() {
    let hf = common::load("tiny-llama-plain", DType::F32);
    let gg = common::load("tiny-llama-plain.gguf", DType::F32);
    let text = "<|im_start|>user\nWhat is 12 + 30? Think step by step.<|im_end|>\n";
    assert_eq!(
        hf.tokenizer.encode(text, false).unwrap(),
        gg.tokenizer.encode(text, false).unwrap()
    );
    let msgs = [r1_model::Message::new("user", "hi")];
    assert_eq!(
        hf.tokenizer.apply_chat_template(&msgs, true).unwrap(),
        gg.tokenizer.apply_chat_template(&msgs, true).unwrap()
    );
    assert_eq!(gg.tokenizer.eos_ids, vec![2]);
}

#[test]
fn saved_folder_loads_back_with_identical_logits() {
    let lm = common::load("tiny-qwen2", DType::F32);
    let dir = std::env::temp_dir().join(format!("r1-save-{}", std::process::id()));
    lm.save(&dir).unwrap();
    let back = r1_model::load_path(&dir, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(back.cfg, lm.cfg);
    let ids = Tensor::new(&[[5u32, 9, 17, 33]], &Device::Cpu).unwrap();
    let attn = vec![vec![1i64; 4]];
    let a = common::logits(&lm.model().unwrap(), &ids, &attn, Mode::Infer);
    let b = common::logits(&back.model().unwrap(), &ids, &attn, Mode::Infer);
    let d: f32 = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(d, 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}
