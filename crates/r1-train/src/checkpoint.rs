//! Checkpoints: the model as a Hugging Face folder, the optimizer's moments, and the
//! trainer's counters plus whatever the caller needs to continue (data cursor, config).
//!
//! A checkpoint is written to a temporary folder and renamed into place, so a run
//! killed at any moment (even SIGKILL mid-write) leaves the previous checkpoint intact.

use crate::optim::{AdamW, Moments};
use crate::trainable::Trainable;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const CHECKPOINT_DIR: &str = "checkpoint";
pub const ADAPTERS_FILE: &str = "adapters.safetensors";

/// Restores LoRA adapters saved by [`save`] into a policy built on the original base.
pub fn load_adapters(ckpt: &Path, policy: &Trainable) -> Result<()> {
    let p = ckpt.join(ADAPTERS_FILE);
    let t = candle_core::safetensors::load(&p, &Device::Cpu)
        .with_context(|| format!("{}", p.display()))?;
    policy.load_trainable(&t)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Training steps completed.
    pub step: usize,
    /// Optimizer updates completed.
    pub updates: usize,
    /// AdamW's bias-correction counter.
    pub adam_t: u64,
    /// Caller's data (cursor, config, ...), stored as JSON.
    pub extra: serde_json::Value,
}

pub fn checkpoint_path(run_dir: &Path) -> PathBuf {
    run_dir.join(CHECKPOINT_DIR)
}

/// Writes `run_dir/checkpoint` atomically.
pub fn save(run_dir: &Path, policy: &Trainable, opt: &AdamW, state: &TrainerState) -> Result<()> {
    let tmp = run_dir.join(format!(".{CHECKPOINT_DIR}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    policy.save(&tmp.join("model"))?;
    let mut moments: HashMap<String, Tensor> = HashMap::new();
    for (name, st) in policy.names.iter().zip(&opt.state) {
        if let Some((m, v)) = st.lock().unwrap().to_host()? {
            moments.insert(format!("m.{name}"), m);
            moments.insert(format!("v.{name}"), v);
        }
    }
    candle_core::safetensors::save(&moments, tmp.join("optimizer.safetensors"))?;
    if policy.lora.is_some() {
        // The model folder holds merged weights; resuming needs the adapters themselves.
        candle_core::safetensors::save(&policy.trainable_named(), tmp.join(ADAPTERS_FILE))?;
    }
    std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)?;
    // Make the new checkpoint durable before it replaces the old one. A LoRA run
    // resumes from the adapters, not the merged model, so they must be on disk too.
    let mut durable = vec![
        "state.json",
        "optimizer.safetensors",
        "model/model.safetensors",
    ];
    if policy.lora.is_some() {
        durable.push(ADAPTERS_FILE);
    }
    for f in durable {
        std::fs::File::open(tmp.join(f))?.sync_all()?;
    }
    let dst = checkpoint_path(run_dir);
    let old = run_dir.join(format!(".{CHECKPOINT_DIR}.old"));
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    if dst.exists() {
        std::fs::rename(&dst, &old)?;
    }
    std::fs::rename(&tmp, &dst)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// The checkpoint folder to resume from: `checkpoint`, or the previous one if a crash
/// hit between the two renames of [`save`].
pub fn find(run_dir: &Path) -> Result<PathBuf> {
    let dst = checkpoint_path(run_dir);
    if dst.join("state.json").exists() {
        return Ok(dst);
    }
    let old = run_dir.join(format!(".{CHECKPOINT_DIR}.old"));
    if old.join("state.json").exists() {
        return Ok(old);
    }
    anyhow::bail!(
        "{}: no checkpoint to resume from (expected {})",
        run_dir.display(),
        dst.display()
    )
}

pub fn load_state(ckpt: &Path) -> Result<TrainerState> {
    let p = ckpt.join("state.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("{}", p.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid checkpoint state", p.display()))
}

/// What a run resumes from: the checkpoint folder ([`find`]), its state, and the model.
/// A LoRA run reloads its original base (`base`, as configured) and then its saved
/// adapters ([`load_adapters`]): the checkpoint's model folder has the adapters merged,
/// and adapting it again would count them twice. A full fine-tune resumes from the
/// checkpoint's model folder.
pub fn resume(
    run_dir: &Path,
    base: Option<&str>,
    lora: bool,
    device: &Device,
    dtype: candle_core::DType,
) -> Result<(r1_model::LoadedModel, PathBuf, TrainerState)> {
    let ckpt = find(run_dir)?;
    let state = load_state(&ckpt)?;
    let model = match lora {
        true => r1_model::load(base, device, dtype)?,
        false => r1_model::load_path(&ckpt.join("model"), device, dtype)?,
    };
    Ok((model, ckpt, state))
}

/// Restores the optimizer's moments and counter saved beside the model.
pub fn load_optimizer(
    ckpt: &Path,
    policy: &Trainable,
    opt: &mut AdamW,
    state: &TrainerState,
) -> Result<()> {
    let p = ckpt.join("optimizer.safetensors");
    let tensors = candle_core::safetensors::load(&p, &Device::Cpu)
        .with_context(|| format!("{}", p.display()))?;
    for (name, slot) in policy.names.iter().zip(&opt.state) {
        if let (Some(m), Some(v)) = (
            tensors.get(&format!("m.{name}")),
            tensors.get(&format!("v.{name}")),
        ) {
            *slot.lock().unwrap() = Moments {
                m: m.to_vec1()?,
                v: v.to_vec1()?,
                on_device: None,
            };
        }
    }
    opt.t = state.adam_t;
    Ok(())
}
