//! r1-model: the Llama-family decoder that both samples and trains, and the loaders for
//! the files people have (Hugging Face folders, GGUF), plus tokenizer and chat template.

mod block_backward;
pub mod cache;
pub mod chat;
pub mod classifier;
pub mod config;
pub mod error;
pub mod gguf;
pub mod hf;
pub mod kernels;
pub mod layers;
pub mod logprobs;
pub mod model;
pub mod recompute;
pub mod registry;
pub mod scoring;
pub mod shared_prefix;
pub mod tokenizer;

pub use cache::KvCache;
pub use chat::Message;
pub use config::{Arch, ModelConfig};
pub use layers::Mode;
pub use model::{Model, NamedTensors};
pub use tokenizer::Tokenizer;

use anyhow::Result;
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};

/// A model as loaded from disk: configuration, weights by Hugging Face name, tokenizer.
pub struct LoadedModel {
    pub cfg: ModelConfig,
    pub weights: NamedTensors,
    pub tokenizer: Tokenizer,
    pub source: PathBuf,
}

impl LoadedModel {
    /// Builds the forward-pass model over these weights.
    pub fn model(&self) -> Result<Model> {
        let device = self
            .weights
            .values()
            .next()
            .map(|t| t.device().clone())
            .unwrap_or(Device::Cpu);
        Model::from_tensors(&self.cfg, &self.weights, &device)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.source.display()))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        hf::save_folder(dir, &self.cfg, &self.weights, &self.tokenizer)
    }
}

/// Loads a Hugging Face folder or a `.gguf` file.
pub fn load_path(path: &Path, device: &Device, dtype: DType) -> Result<LoadedModel> {
    if path.is_dir() {
        let cfg = hf::load_config(path)?;
        let tokenizer = hf::load_tokenizer(path, &cfg)?;
        let weights = hf::load_weights(path, device, dtype)?;
        let lm = LoadedModel {
            cfg,
            weights,
            tokenizer,
            source: path.to_path_buf(),
        };
        lm.model()?; // validate names and shapes now, with the folder in the message
        return Ok(lm);
    }
    if !path.exists() {
        anyhow::bail!("{}: no such file or folder", path.display());
    }
    if path.extension().is_some_and(|e| e == "gguf") {
        let g = gguf::load(path, device, dtype)?;
        let lm = LoadedModel {
            cfg: g.cfg,
            weights: g.weights,
            tokenizer: g.tokenizer,
            source: path.to_path_buf(),
        };
        lm.model()?;
        return Ok(lm);
    }
    anyhow::bail!(
        "{}: expected a Hugging Face model folder or a .gguf file",
        path.display()
    )
}

/// Loads what `--model` names: a folder, a `.gguf` file, or a cache name (default model
/// when `None`).
pub fn load(spec: Option<&str>, device: &Device, dtype: DType) -> Result<LoadedModel> {
    let path = registry::resolve(spec)?;
    load_path(&path, device, dtype)
}
