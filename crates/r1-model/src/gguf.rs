//! GGUF files (llama.cpp): tensors dequantized to trainable floats and renamed to
//! Hugging Face names, the tokenizer rebuilt from `tokenizer.ggml.*` metadata, and the
//! chat template taken from `tokenizer.chat_template`.

use crate::config::{Arch, ModelConfig};
use crate::error::FileError;
use crate::model::NamedTensors;
use crate::tokenizer::Tokenizer;
use anyhow::Result;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

pub struct GgufModel {
    pub cfg: ModelConfig,
    pub weights: NamedTensors,
    pub tokenizer: Tokenizer,
}

struct Meta<'a> {
    md: &'a HashMap<String, Value>,
    path: &'a Path,
}

impl Meta<'_> {
    fn err(&self, m: impl std::fmt::Display) -> FileError {
        FileError::new(self.path, m)
    }
    fn get(&self, k: &str) -> Result<&Value, FileError> {
        self.md
            .get(k)
            .ok_or_else(|| self.err(format!("missing metadata `{k}`")))
    }
    fn usize(&self, k: &str) -> Result<usize, FileError> {
        let v = self.get(k)?;
        v.to_u64()
            .or_else(|_| v.to_u32().map(|x| x as u64))
            .or_else(|_| v.to_i32().map(|x| x as u64))
            .map(|x| x as usize)
            .map_err(|e| self.err(format!("metadata `{k}`: {e}")))
    }
    fn f64_or(&self, k: &str, d: f64) -> f64 {
        self.md
            .get(k)
            .and_then(|v| v.to_f32().map(|x| x as f64).or_else(|_| v.to_f64()).ok())
            .unwrap_or(d)
    }
    fn str(&self, k: &str) -> Option<&str> {
        self.md
            .get(k)
            .and_then(|v| v.to_string().ok())
            .map(|s| s.as_str())
    }
    fn u32_opt(&self, k: &str) -> Option<u32> {
        self.md.get(k).and_then(|v| v.to_u32().ok())
    }
}

/// GGUF tensor name → Hugging Face name.
fn hf_name(gguf: &str) -> Option<String> {
    if gguf == "token_embd.weight" {
        return Some("model.embed_tokens.weight".into());
    }
    if gguf == "output_norm.weight" {
        return Some("model.norm.weight".into());
    }
    if gguf == "output.weight" {
        return Some("lm_head.weight".into());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, kind) = rest.rsplit_once('.')?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// llama.cpp stores Llama's Q/K rows interleaved for its RoPE kernel; put them back in
/// the rotate-half order Hugging Face weights use (the wrong order gives fluent garbage).
fn unpermute_rows(t: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let out = dims[0];
    let hd = out / heads;
    let rest: usize = dims[1..].iter().product();
    Ok(t.reshape((heads, hd / 2, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<GgufModel> {
    let mut file = std::fs::File::open(path).map_err(|e| FileError::new(path, e))?;
    let content = Content::read(&mut file)
        .map_err(|e| FileError::new(path, format!("not a valid GGUF file: {e}")))?;
    let meta = Meta {
        md: &content.metadata,
        path,
    };
    let arch_name = meta
        .str("general.architecture")
        .ok_or_else(|| meta.err("missing metadata `general.architecture`"))?
        .to_string();
    let arch = match arch_name.as_str() {
        "llama" => Arch::Llama,
        "qwen2" => Arch::Qwen2,
        other => {
            return Err(meta
                .err(format!(
                    "unsupported architecture `{other}` (supported: llama, qwen2)"
                ))
                .into())
        }
    };
    if content.tensor_infos.contains_key("rope_freqs.weight") {
        return Err(meta.err("Llama 3.1 rope scaling factors in GGUF are not supported; use the Hugging Face folder").into());
    }
    let a = &arch_name;
    let tokens = meta
        .get("tokenizer.ggml.tokens")?
        .to_vec()
        .map_err(|e| meta.err(e))?;
    let hidden = meta.usize(&format!("{a}.embedding_length"))?;
    let heads = meta.usize(&format!("{a}.attention.head_count"))?;
    let kv_heads = meta
        .usize(&format!("{a}.attention.head_count_kv"))
        .unwrap_or(heads);
    let cfg_json = json!({
        "architectures": [arch.hf_class()],
        "vocab_size": tokens.len(),
        "hidden_size": hidden,
        "intermediate_size": meta.usize(&format!("{a}.feed_forward_length"))?,
        "num_hidden_layers": meta.usize(&format!("{a}.block_count"))?,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": meta.usize(&format!("{a}.rope.dimension_count")).unwrap_or(hidden / heads.max(1)),
        "rms_norm_eps": meta.f64_or(&format!("{a}.attention.layer_norm_rms_epsilon"), 1e-5),
        "rope_theta": meta.f64_or(&format!("{a}.rope.freq_base"), 10000.0),
        "max_position_embeddings": meta.usize(&format!("{a}.context_length")).unwrap_or(4096),
        "tie_word_embeddings": !content.tensor_infos.contains_key("output.weight"),
        "attention_bias": content.tensor_infos.contains_key("blk.0.attn_q.bias"),
        "bos_token_id": meta.u32_opt("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.u32_opt("tokenizer.ggml.eos_token_id"),
    });
    let cfg = ModelConfig::from_hf_json(&cfg_json, path)?;

    let mut weights = HashMap::new();
    for name in content.tensor_infos.keys() {
        let Some(hf) = hf_name(name) else { continue };
        let q = content
            .tensor(&mut file, name, &Device::Cpu)
            .map_err(|e| meta.err(format!("tensor `{name}`: {e}")))?;
        let mut t = q.dequantize(&Device::Cpu)?;
        if arch == Arch::Llama {
            if name.contains("attn_q.") {
                t = unpermute_rows(&t, heads)?;
            } else if name.contains("attn_k.") {
                t = unpermute_rows(&t, kv_heads)?;
            }
        }
        weights.insert(hf, t.to_dtype(dtype)?.to_device(device)?);
    }
    let tokenizer = build_tokenizer(&meta, tokens, &cfg)?;
    Ok(GgufModel {
        cfg,
        weights,
        tokenizer,
    })
}

// Pre-tokenizer regexes of the BPE tokenizers llama.cpp names in `tokenizer.ggml.pre`.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn build_tokenizer(meta: &Meta, tokens: &[Value], cfg: &ModelConfig) -> Result<Tokenizer> {
    let model = meta.str("tokenizer.ggml.model").unwrap_or("gpt2");
    if model != "gpt2" {
        return Err(meta
            .err(format!(
                "tokenizer model `{model}` is not supported from GGUF (only BPE `gpt2`); use the Hugging Face folder with tokenizer.json"
            ))
            .into());
    }
    let byte_level = |regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex});
    let split = |re: &str| json!({"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false});
    let pre = meta.str("tokenizer.ggml.pre").unwrap_or("default");
    let pre_tokenizer = match pre {
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "default" | "gpt2" => byte_level(true),
        "llama-bpe" | "llama3" => {
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_SPLIT), byte_level(false)]})
        }
        "qwen2" => {
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_SPLIT), byte_level(false)]})
        }
        other => {
            return Err(meta
                .err(format!(
                    "unsupported pre-tokenizer `{other}` in tokenizer.ggml.pre"
                ))
                .into())
        }
    };
    let strs: Vec<String> = tokens
        .iter()
        .map(|t| t.to_string().cloned())
        .collect::<Result<_, _>>()
        .map_err(|e| meta.err(format!("tokenizer.ggml.tokens: {e}")))?;
    let types: Vec<i32> = match meta.md.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| meta.err(e))?
            .iter()
            .map(|x| x.to_i32().unwrap_or(1))
            .collect(),
        None => vec![1; strs.len()],
    };
    let merges: Vec<String> = match meta.md.get("tokenizer.ggml.merges") {
        Some(v) => v
            .to_vec()
            .map_err(|e| meta.err(e))?
            .iter()
            .map(|m| m.to_string().cloned())
            .collect::<Result<_, _>>()
            .map_err(|e| meta.err(format!("tokenizer.ggml.merges: {e}")))?,
        None => return Err(meta.err("missing metadata `tokenizer.ggml.merges`").into()),
    };
    let vocab: serde_json::Map<String, serde_json::Value> = strs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), json!(i)))
        .collect();
    // Control (3) and user-defined (4) tokens match whole before BPE runs.
    let added: Vec<serde_json::Value> = strs
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, &ty))| ty == 3 || ty == 4)
        .map(|(i, (s, &ty))| {
            json!({"id": i, "content": s, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": ty == 4, "special": ty == 3})
        })
        .collect();
    let tok_str = |id: Option<u32>| id.and_then(|i| strs.get(i as usize).cloned());
    let bos = tok_str(meta.u32_opt("tokenizer.ggml.bos_token_id"));
    let eos = tok_str(meta.u32_opt("tokenizer.ggml.eos_token_id"));
    let pad = tok_str(meta.u32_opt("tokenizer.ggml.padding_token_id"));
    let add_bos = meta
        .md
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    let post = match (&bos, add_bos) {
        (Some(b), true) => json!({"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {b: {"id": b, "ids": [meta.u32_opt("tokenizer.ggml.bos_token_id")], "tokens": [b]}}}),
        _ => serde_json::Value::Null,
    };
    let tj = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges},
    });
    let mut tok = Tokenizer::from_json(
        serde_json::to_string(&tj)?,
        &meta.path.display().to_string(),
        meta.str("tokenizer.chat_template").map(String::from),
        bos,
        eos,
        pad,
    )?;
    tok.add_eos_ids(&cfg.eos_token_ids);
    Ok(tok)
}
