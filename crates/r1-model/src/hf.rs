//! Hugging Face model folders: `config.json`, `model.safetensors` (or shards with an
//! index), `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`.

use crate::config::ModelConfig;
use crate::error::{in_file, FileError};
use crate::model::NamedTensors;
use crate::tokenizer::{chat_template_field, special_token, Tokenizer};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(in_file(path))?;
    serde_json::from_str(&text)
        .map_err(|e| FileError::new(path, format!("invalid JSON: {e}")).into())
}

fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

pub fn load_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join("config.json");
    let mut cfg = ModelConfig::from_hf_json(&read_json(&path)?, &path)?;
    // generation_config.json is where chat models list their end-of-turn ids.
    let gpath = dir.join("generation_config.json");
    if let Some(g) = read_json_opt(&gpath)? {
        let extra: Vec<u32> = match &g["eos_token_id"] {
            Value::Number(n) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect(),
            _ => vec![],
        };
        for id in extra {
            if !cfg.eos_token_ids.contains(&id) {
                cfg.eos_token_ids.push(id);
            }
        }
    }
    Ok(cfg)
}

/// The safetensors files of a folder: the shards an index names, or model.safetensors.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let v = read_json(&index)?;
        let map = v["weight_map"]
            .as_object()
            .ok_or_else(|| FileError::new(&index, "no `weight_map` object"))?;
        let files: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    Err(FileError::new(dir, "no model.safetensors or model.safetensors.index.json").into())
}

pub fn load_weights(dir: &Path, device: &Device, dtype: DType) -> Result<NamedTensors> {
    let mut all = HashMap::new();
    for file in weight_files(dir)? {
        if !file.exists() {
            return Err(FileError::new(&file, "shard named in the index is missing").into());
        }
        let tensors = candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| FileError::new(&file, format!("not a valid safetensors file: {e}")))?;
        for (name, t) in tensors {
            let t = t.to_dtype(dtype)?.to_device(device)?;
            all.insert(name, t);
        }
    }
    Ok(all)
}

pub fn load_tokenizer(dir: &Path, cfg: &ModelConfig) -> Result<Tokenizer> {
    let tpath = dir.join("tokenizer.json");
    let json = std::fs::read_to_string(&tpath).map_err(in_file(&tpath))?;
    let cpath = dir.join("tokenizer_config.json");
    let tc = read_json_opt(&cpath)?.unwrap_or(Value::Null);
    let mut template = chat_template_field(&tc["chat_template"]);
    let mut template_file = cpath.clone();
    // Newer exports keep the template in its own file.
    let jinja = dir.join("chat_template.jinja");
    if template.is_none() && jinja.exists() {
        template = Some(std::fs::read_to_string(&jinja).map_err(in_file(&jinja))?);
        template_file = jinja;
    }
    let mut tok = Tokenizer::from_json(
        json,
        &tpath.display().to_string(),
        template,
        special_token(&tc["bos_token"]),
        special_token(&tc["eos_token"]),
        special_token(&tc["pad_token"]),
    )
    .map_err(|e| {
        // A template error is the tokenizer_config's fault, not tokenizer.json's.
        if e.to_string().contains("chat template") {
            anyhow::anyhow!(
                "{}: {}",
                template_file.display(),
                e.to_string().replace(&format!("{}: ", tpath.display()), "")
            )
        } else {
            e
        }
    })?;
    tok.add_eos_ids(&cfg.eos_token_ids);
    Ok(tok)
}

/// Writes a folder transformers loads with `from_pretrained`. Files go to a temporary
/// folder first and are renamed into place, so an interrupted save never leaves a
/// half-written checkpoint behind.
pub fn save_folder(
    dir: &Path,
    cfg: &ModelConfig,
    weights: &NamedTensors,
    tok: &Tokenizer,
) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let write_json = |file: &str, v: &Value| -> Result<()> {
        let p = tmp.join(file);
        std::fs::write(&p, serde_json::to_string_pretty(v)?).map_err(in_file(&p))
    };
    write_json("config.json", &cfg.to_hf_json())?;
    let mut gen = serde_json::json!({ "bos_token_id": cfg.bos_token_id });
    gen["eos_token_id"] = match tok.eos_ids.as_slice() {
        [one] => (*one).into(),
        many => many.to_vec().into(),
    };
    write_json("generation_config.json", &gen)?;
    write_json("tokenizer_config.json", &tok.config_json())?;
    std::fs::write(tmp.join("tokenizer.json"), tok.json.as_bytes())?;
    let f32_weights: HashMap<String, Tensor> = weights
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let wpath = tmp.join("model.safetensors");
    candle_core::safetensors::save(&f32_weights, &wpath).map_err(in_file(&wpath))?;
    if dir.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(dir, &old)?;
        std::fs::rename(&tmp, dir)?;
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(&tmp, dir)?;
    }
    Ok(())
}
