//! The model's weights as trainable variables. The same storage backs the training
//! view (tracked by autodiff) and the sampling view (detached), so the sampler always
//! sees the latest weights without copies.

use anyhow::Result;
use candle_core::{Tensor, Var};
use r1_model::model::parameter_names;
use r1_model::{LoadedModel, Model, ModelConfig, NamedTensors, Tokenizer};
use std::path::Path;

pub struct Trainable {
    pub cfg: ModelConfig,
    pub tokenizer: Tokenizer,
    /// Hugging Face names, in a stable order; `vars[i]` holds `names[i]`.
    pub names: Vec<String>,
    pub vars: Vec<Var>,
}

impl Trainable {
    pub fn new(lm: LoadedModel) -> Result<Self> {
        let names = parameter_names(&lm.cfg);
        let vars = names
            .iter()
            .map(|n| Ok(Var::from_tensor(&lm.weights[n])?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: lm.cfg,
            tokenizer: lm.tokenizer,
            names,
            vars,
        })
    }

    fn tensors(&self, detached: bool) -> NamedTensors {
        self.names
            .iter()
            .zip(&self.vars)
            .map(|(n, v)| {
                let t = v.as_tensor();
                (n.clone(), if detached { t.detach() } else { t.clone() })
            })
            .collect()
    }

    /// The model whose forward pass records gradients for every weight.
    pub fn train_model(&self) -> Result<Model> {
        let device = self.vars[0].device().clone();
        Model::from_tensors(&self.cfg, &self.tensors(false), &device)
    }

    /// The same weights, detached: for sampling and reference-free scoring.
    pub fn infer_model(&self) -> Result<Model> {
        let device = self.vars[0].device().clone();
        Model::from_tensors(&self.cfg, &self.tensors(true), &device)
    }

    /// Weights by name (detached), e.g. for saving.
    pub fn named(&self) -> NamedTensors {
        self.tensors(true)
    }

    pub fn num_parameters(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        r1_model::hf::save_folder(dir, &self.cfg, &self.named(), &self.tokenizer)
    }

    pub fn as_tensors(&self) -> Vec<&Tensor> {
        self.vars.iter().map(|v| v.as_tensor()).collect()
    }
}
