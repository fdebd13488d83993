//! Sequence-classification models in Hugging Face format
//! (`LlamaForSequenceClassification`, `Qwen2ForSequenceClassification`, ...): the
//! decoder plus `score.weight` `[num_labels, hidden]`, applied to the final hidden
//! state of the last non-padding token. A reward model is one with `num_labels = 1`.

use crate::config::ModelConfig;
use crate::error::FileError;
use crate::hf;
use crate::model::{causal_mask, positions, Model};
use crate::{Mode, Tokenizer};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use std::path::Path;

pub struct SequenceClassifier {
    pub model: Model,
    /// `[num_labels, hidden]`.
    pub score: Tensor,
    pub tokenizer: Tokenizer,
    pub num_labels: usize,
}

/// Is `config.json` of `dir` a `*ForSequenceClassification` model?
pub fn is_classifier(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["architectures"][0].as_str().map(String::from))
        .is_some_and(|a| a.ends_with("ForSequenceClassification"))
}

impl SequenceClassifier {
    /// Loads a classifier folder (config.json, model.safetensors, tokenizer.json).
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(crate::error::in_file(&path))?;
        let mut v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| FileError::new(&path, format!("invalid JSON: {e}")))?;
        let arch = v["architectures"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(base) = arch.strip_suffix("ForSequenceClassification") else {
            return Err(FileError::new(
                &path,
                format!("`{arch}` is not a *ForSequenceClassification model"),
            )
            .into());
        };
        // Reuse the decoder's config parsing: same hyper-parameters, causal-LM name.
        v["architectures"] = serde_json::json!([format!("{base}ForCausalLM")]);
        let mut cfg = ModelConfig::from_hf_json(&v, &path)?;
        // A classifier has no lm_head; tie it to the embedding so the decoder builds
        // (it is never used: only hidden states are read).
        cfg.tie_word_embeddings = true;
        let num_labels = v["num_labels"]
            .as_u64()
            .map(|n| n as usize)
            .or_else(|| v["id2label"].as_object().map(|m| m.len()))
            .unwrap_or(1);
        let weights = hf::load_weights(dir, device, dtype)?;
        let score = weights
            .get("score.weight")
            .cloned()
            .ok_or_else(|| FileError::new(dir, "no `score.weight` tensor"))?;
        if score.dims() != [num_labels, cfg.hidden_size] {
            return Err(FileError::new(
                dir,
                format!(
                    "`score.weight` has shape {:?}, expected [{num_labels}, {}]",
                    score.dims(),
                    cfg.hidden_size
                ),
            )
            .into());
        }
        let model = Model::from_tensors(&cfg, &weights, device)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        let tokenizer = hf::load_tokenizer(dir, &cfg)?;
        Ok(Self {
            model,
            score,
            tokenizer,
            num_labels,
        })
    }

    /// Logits `[num_labels]` of each token sequence. Rows are left-padded, so the
    /// last non-padding token of every row is the last column.
    pub fn logits(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        anyhow::ensure!(
            seqs.iter().all(|s| !s.is_empty()),
            "an empty sequence cannot be scored"
        );
        if seqs.is_empty() {
            return Ok(vec![]);
        }
        let device = self.model.device();
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let pads: Vec<usize> = seqs.iter().map(|s| t - s.len()).collect();
        let mut ids = vec![0u32; seqs.len() * t];
        for (r, s) in seqs.iter().enumerate() {
            ids[r * t + pads[r]..(r + 1) * t].copy_from_slice(s);
        }
        let ids = Tensor::from_vec(ids, (seqs.len(), t), device)?;
        let pos = positions(&pads, 0, t, device)?;
        let mask = causal_mask(&pads, 0, t, device)?;
        let h = self
            .model
            .forward(&ids, &pos, Some(&mask), None, Mode::Infer)?;
        let last = h.narrow(1, t - 1, 1)?.squeeze(1)?; // [b, hidden]
        let logits = last.matmul(&self.score.t()?)?.to_dtype(DType::F32)?;
        Ok(logits.to_vec2()?)
    }
}
