//! The model's weights as trainable variables. The same storage backs the training
//! view (tracked by autodiff) and the sampling view (detached), so the sampler always
//! sees the latest weights without copies.
//!
//! With LoRA, the base weights are frozen plain tensors and only the adapters are
//! variables; saving merges the adapters into a plain Hugging Face folder.

use crate::lora::LoraConfig;
use anyhow::Result;
use candle_core::{DType, Tensor, Var};
use r1_model::layers::{DropoutSeed, Lora};
use r1_model::model::parameter_names;
use r1_model::{LoadedModel, Model, ModelConfig, NamedTensors, Tokenizer};
use std::path::Path;

pub struct Trainable {
    pub cfg: ModelConfig,
    pub tokenizer: Tokenizer,
    /// Names of the trainable tensors, in a stable order; `vars[i]` holds `names[i]`.
    /// Hugging Face names for full training; `<module>.lora_A.weight` /
    /// `<module>.lora_B.weight` (PEFT's names) with LoRA.
    pub names: Vec<String>,
    pub vars: Vec<Var>,
    /// LoRA: the frozen base weights and the adapter settings.
    pub lora: Option<(NamedTensors, LoraConfig)>,
}

impl Trainable {
    /// Full fine-tuning: every weight trains.
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
            lora: None,
        })
    }

    /// LoRA: adapters on `lora.target_modules`, `A` random (uniform ±1/√in, as PEFT's
    /// Kaiming init) and `B` zero, so training starts exactly at the base model.
    pub fn new_lora(lm: LoadedModel, lora: LoraConfig, seed: u64) -> Result<Self> {
        lora.validate()?;
        let device = lm
            .weights
            .values()
            .next()
            .map(|t| t.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let dtype = lm
            .weights
            .values()
            .next()
            .map(|t| t.dtype())
            .unwrap_or(DType::F32);
        let mut probe = Model::from_tensors(&lm.cfg, &lm.weights, &device)?;
        let mut names = vec![];
        let mut vars = vec![];
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for (path, lin) in probe.linears_mut(&lora.target_modules) {
            let (out, inp) = lin.weight.dims2()?;
            let bound = 1.0 / (inp as f32).sqrt();
            let a: Vec<f32> = (0..lora.r * inp)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
                })
                .collect();
            let a = Tensor::from_vec(a, (lora.r, inp), &device)?.to_dtype(dtype)?;
            names.push(format!("{path}.lora_A.weight"));
            vars.push(Var::from_tensor(&a)?);
            names.push(format!("{path}.lora_B.weight"));
            vars.push(Var::zeros((out, lora.r), dtype, &device)?);
        }
        let base: NamedTensors = lm
            .weights
            .into_iter()
            .map(|(k, t)| (k, t.detach()))
            .collect();
        Ok(Self {
            cfg: lm.cfg,
            tokenizer: lm.tokenizer,
            names,
            vars,
            lora: Some((base, lora)),
        })
    }

    fn build(&self, detached: bool) -> Result<Model> {
        let device = self.vars[0].device().clone();
        let view = |v: &Var| {
            let t = v.as_tensor();
            if detached {
                t.detach()
            } else {
                t.clone()
            }
        };
        match &self.lora {
            None => {
                let named: NamedTensors = self
                    .names
                    .iter()
                    .cloned()
                    .zip(self.vars.iter().map(view))
                    .collect();
                Model::from_tensors(&self.cfg, &named, &device)
            }
            Some((base, cfg)) => {
                let mut model = Model::from_tensors(&self.cfg, base, &device)?;
                let shared = std::sync::Arc::default();
                for (i, (_path, lin)) in model
                    .linears_mut(&cfg.target_modules)
                    .into_iter()
                    .enumerate()
                {
                    lin.lora = Some(Lora {
                        a: view(&self.vars[2 * i]),
                        b: view(&self.vars[2 * i + 1]),
                        scale: cfg.scale(),
                        dropout: cfg.lora_dropout,
                        seed: DropoutSeed {
                            shared: std::sync::Arc::clone(&shared),
                            index: i as u64,
                        },
                    });
                }
                Ok(model)
            }
        }
    }

    /// The model whose forward pass records gradients for every trainable tensor.
    pub fn train_model(&self) -> Result<Model> {
        self.build(false)
    }

    /// The same weights, detached: for sampling and scoring without gradients.
    pub fn infer_model(&self) -> Result<Model> {
        self.build(true)
    }

    /// The frozen reference for the KL term: the base with adapters off under LoRA (free),
    /// else a deep copy of the current weights.
    pub fn reference_model(&self) -> Result<Model> {
        let device = self.vars[0].device().clone();
        match &self.lora {
            Some((base, _)) => Model::from_tensors(&self.cfg, base, &device),
            None => {
                let copies: NamedTensors = self
                    .named()
                    .into_iter()
                    .map(|(k, t)| Ok((k, t.copy()?)))
                    .collect::<Result<_>>()?;
                Model::from_tensors(&self.cfg, &copies, &device)
            }
        }
    }

    /// The trainable tensors by name (detached).
    pub fn trainable_named(&self) -> NamedTensors {
        self.names
            .iter()
            .cloned()
            .zip(self.vars.iter().map(|v| v.as_tensor().detach()))
            .collect()
    }

    /// Full weights by Hugging Face name (detached), adapters merged:
    /// `W + alpha/r · B A`.
    pub fn named(&self) -> NamedTensors {
        match &self.lora {
            None => self.trainable_named(),
            Some((base, cfg)) => {
                let mut out = base.clone();
                for pair in self.names.chunks(2).zip(self.vars.chunks(2)) {
                    let (names, vars) = pair;
                    let module = names[0].trim_end_matches(".lora_A.weight");
                    let key = format!("{module}.weight");
                    let delta = vars[1]
                        .as_tensor()
                        .matmul(vars[0].as_tensor())
                        .and_then(|d| d * cfg.scale())
                        .expect("adapter shapes match their module");
                    let merged = (&base[&key] + delta).expect("adapter shapes match their module");
                    out.insert(key, merged);
                }
                out
            }
        }
    }

    /// Trainable parameters.
    pub fn num_parameters(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// Saves a plain Hugging Face folder (adapters merged).
    pub fn save(&self, dir: &Path) -> Result<()> {
        r1_model::hf::save_folder(dir, &self.cfg, &self.named(), &self.tokenizer)
    }

    /// Overwrites trainable tensors from `values` (by name), e.g. adapters from a checkpoint.
    pub fn load_trainable(&self, values: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        for (n, v) in self.names.iter().zip(&self.vars) {
            let t = values
                .get(n)
                .ok_or_else(|| anyhow::anyhow!("checkpoint has no `{n}`"))?;
            v.set(&t.to_dtype(v.dtype())?.to_device(v.device())?)?;
        }
        Ok(())
    }
}
