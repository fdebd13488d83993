//! Pieces shared by the training commands' TOML configs.

use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::Path;

/// How a question becomes the model's prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Template {
    /// The model's chat template, with a system prompt.
    #[default]
    Chat,
    /// The DeepSeek-R1-Zero paper's plain-text template (for base models).
    R1Zero,
    /// The question as it is.
    Raw,
}

/// Reads a TOML file; errors name the file, and toml names the key and line.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.to_string().replace('\n', " ");
        anyhow::anyhow!(
            "{}: {}",
            path.display(),
            msg.split_whitespace().collect::<Vec<_>>().join(" ")
        )
    })
}

impl From<Template> for r1_eval::Template {
    fn from(t: Template) -> Self {
        match t {
            Template::Chat => Self::Chat,
            Template::R1Zero => Self::R1Zero,
            Template::Raw => Self::Raw,
        }
    }
}
