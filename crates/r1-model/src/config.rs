//! Model hyper-parameters, read from a Hugging Face `config.json` or GGUF metadata
//! and written back as a `config.json` that transformers loads.

use crate::error::FileError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// Which member of the Llama family; decides biases and the name transformers expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    Llama,
    Mistral,
    Qwen2,
}

impl Arch {
    pub fn hf_class(self) -> &'static str {
        match self {
            Arch::Llama => "LlamaForCausalLM",
            Arch::Mistral => "MistralForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
        }
    }
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// Llama 3's frequency-dependent RoPE rescaling (`rope_type = "llama3"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v projections (Qwen2 always; Llama optionally via `attention_bias`).
    pub attention_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

fn ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64())
            .map(|x| x as u32)
            .collect(),
        _ => vec![],
    }
}

impl ModelConfig {
    /// Parses a Hugging Face `config.json` value; `path` only names the file in errors.
    pub fn from_hf_json(v: &Value, path: &Path) -> Result<Self, FileError> {
        let err = |m: String| FileError::new(path, m);
        let arch_name = v["architectures"]
            .get(0)
            .and_then(|a| a.as_str())
            .or_else(|| v["model_type"].as_str())
            .ok_or_else(|| err("no `architectures` or `model_type` field".into()))?;
        let arch = match arch_name {
            "LlamaForCausalLM" | "llama" => Arch::Llama,
            "MistralForCausalLM" | "mistral" => Arch::Mistral,
            "Qwen2ForCausalLM" | "qwen2" => Arch::Qwen2,
            other => {
                return Err(err(format!(
                    "unsupported architecture `{other}` (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)"
                )))
            }
        };
        let usize_field = |k: &str| -> Result<usize, FileError> {
            v[k].as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| err(format!("missing or non-integer field `{k}`")))
        };
        let hidden_size = usize_field("hidden_size")?;
        let num_attention_heads = usize_field("num_attention_heads")?;
        if num_attention_heads == 0 || hidden_size % num_attention_heads != 0 {
            return Err(err(format!(
                "`hidden_size` {hidden_size} is not divisible by `num_attention_heads` {num_attention_heads}"
            )));
        }
        let num_key_value_heads = v["num_key_value_heads"]
            .as_u64()
            .map(|x| x as usize)
            .unwrap_or(num_attention_heads);
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(err(format!(
                "`num_attention_heads` {num_attention_heads} is not a multiple of `num_key_value_heads` {num_key_value_heads}"
            )));
        }
        let head_dim = v["head_dim"]
            .as_u64()
            .map(|x| x as usize)
            .unwrap_or(hidden_size / num_attention_heads);
        // transformers >= 5 writes `rope_parameters` (theta inside); older files write
        // `rope_theta` and `rope_scaling`. Accept both.
        let rope_params = v.get("rope_parameters").filter(|r| r.is_object());
        let rope_theta = rope_params
            .and_then(|r| r["rope_theta"].as_f64())
            .or_else(|| v["rope_theta"].as_f64())
            .unwrap_or(10000.0);
        let rope_scaling = match rope_params.or_else(|| v.get("rope_scaling")) {
            None | Some(Value::Null) => None,
            Some(rs) => {
                let kind = rs["rope_type"]
                    .as_str()
                    .or(rs["type"].as_str())
                    .unwrap_or("");
                match kind {
                    "llama3" => Some(Llama3RopeScaling {
                        factor: rs["factor"].as_f64().unwrap_or(8.0),
                        low_freq_factor: rs["low_freq_factor"].as_f64().unwrap_or(1.0),
                        high_freq_factor: rs["high_freq_factor"].as_f64().unwrap_or(4.0),
                        original_max_position_embeddings: rs["original_max_position_embeddings"]
                            .as_u64()
                            .unwrap_or(8192)
                            as usize,
                    }),
                    "default" => None,
                    other => {
                        return Err(err(format!(
                            "unsupported `rope_scaling` type `{other}` (supported: llama3)"
                        )))
                    }
                }
            }
        };
        let attention_bias = match arch {
            Arch::Qwen2 => true,
            _ => v["attention_bias"].as_bool().unwrap_or(false),
        };
        if v["mlp_bias"].as_bool() == Some(true) {
            return Err(err("`mlp_bias = true` is not supported".into()));
        }
        Ok(Self {
            arch,
            vocab_size: usize_field("vocab_size")?,
            hidden_size,
            intermediate_size: usize_field("intermediate_size")?,
            num_hidden_layers: usize_field("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: v["rms_norm_eps"].as_f64().unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: v["max_position_embeddings"].as_u64().unwrap_or(4096) as usize,
            tie_word_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
            attention_bias,
            bos_token_id: v["bos_token_id"].as_u64().map(|x| x as u32),
            eos_token_ids: ids(v.get("eos_token_id")),
        })
    }

    /// A `config.json` transformers can load back.
    pub fn to_hf_json(&self) -> Value {
        let mut v = json!({
            "architectures": [self.arch.hf_class()],
            "model_type": self.arch.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
            "bos_token_id": self.bos_token_id,
            "eos_token_id": match self.eos_token_ids.as_slice() {
                [one] => json!(one),
                many => json!(many),
            },
        });
        if self.arch == Arch::Llama {
            v["attention_bias"] = json!(self.attention_bias);
            v["mlp_bias"] = json!(false);
        }
        if let Some(rs) = &self.rope_scaling {
            v["rope_scaling"] = json!({
                "rope_type": "llama3",
                "factor": rs.factor,
                "low_freq_factor": rs.low_freq_factor,
                "high_freq_factor": rs.high_freq_factor,
                "original_max_position_embeddings": rs.original_max_position_embeddings,
            });
        }
        v
    }

    /// Inverse frequencies of RoPE, with Llama 3 scaling applied when configured.
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim;
        let base: Vec<f64> = (0..d / 2)
            .map(|i| 1.0 / self.rope_theta.powf((2 * i) as f64 / d as f64))
            .collect();
        let Some(rs) = &self.rope_scaling else {
            return base.into_iter().map(|x| x as f32).collect();
        };
        let old = rs.original_max_position_embeddings as f64;
        let low_wavelen = old / rs.low_freq_factor;
        let high_wavelen = old / rs.high_freq_factor;
        base.into_iter()
            .map(|f| {
                let wavelen = 2.0 * std::f64::consts::PI / f;
                let v = if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / rs.factor
                } else {
                    let smooth = (old / wavelen - rs.low_freq_factor)
                        / (rs.high_freq_factor - rs.low_freq_factor);
                    (1.0 - smooth) * f / rs.factor + smooth * f
                };
                v as f32
            })
            .collect()
    }
}
