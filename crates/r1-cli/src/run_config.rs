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

/// Writes a run's effective configuration to `path` atomically (a killed write leaves
/// the previous file). Runs save it when they start and again when resumed, so flags
/// given with `--resume` (`--device`, `--max-steps`, …) are on record too.
pub fn save_toml<T: Serialize>(path: &Path, cfg: &T) -> Result<()> {
    let text = toml::to_string_pretty(cfg)?;
    r1_eval::output::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads a TOML config over the command's defaults; errors name the file, and toml
/// names the key and line.
///
/// serde's `#[serde(default)]` fills a table's missing keys from *that table's type*:
/// an `[sft]` table in a distill config would start from `SftConfig::default()` and
/// silently drop what distill's own defaults set there (two epochs, the system
/// prompt). So the file's tables are merged key by key over `T::default()`, then read.
pub fn load_toml<T: DeserializeOwned + Serialize + Default>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let located = |e: toml::de::Error| {
        let msg = e.to_string().replace('\n', " ");
        anyhow::anyhow!(
            "{}: {}",
            path.display(),
            msg.split_whitespace().collect::<Vec<_>>().join(" ")
        )
    };
    // Read as written first: unknown keys and bad values are reported with their line.
    toml::from_str::<T>(&text).map_err(located)?;
    let file: toml::Table = toml::from_str(&text).map_err(located)?;
    let mut merged = toml::Table::try_from(T::default())
        .context("the built-in defaults do not serialize (a bug)")?;
    merge(&mut merged, file);
    T::deserialize(toml::Value::Table(merged)).with_context(|| format!("{}", path.display()))
}

/// `over`'s keys into `base`: tables merge recursively, anything else replaces. A
/// table that names another variant than the default's (`[task]`'s `task`) replaces
/// it whole: the default variant's options mean nothing to another one.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) if same_variant(b, &o) => {
                merge(b, o)
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Keys that select a table's variant (the task of a `[task]` table).
const VARIANT_KEYS: &[&str] = &["task"];

fn same_variant(base: &toml::Table, over: &toml::Table) -> bool {
    VARIANT_KEYS
        .iter()
        .all(|k| match (base.get(*k), over.get(*k)) {
            (Some(b), Some(o)) => b == o,
            _ => true,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        epochs: f64,
        rate: f64,
        prompt: Option<String>,
    }
    impl Default for Inner {
        fn default() -> Self {
            Self {
                epochs: 1.0,
                rate: 0.1,
                prompt: None,
            }
        }
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Inner,
        list: Vec<u32>,
    }
    impl Default for Outer {
        fn default() -> Self {
            Self {
                name: "outer".into(),
                // The parent's defaults for its table differ from the table type's.
                inner: Inner {
                    epochs: 2.0,
                    rate: 0.1,
                    prompt: Some("system".into()),
                },
                list: vec![1, 2, 3],
            }
        }
    }

    /// `text` as a config file of type `T` (a fresh file per call: tests run in
    /// parallel).
    fn load_as<T: DeserializeOwned + Serialize + Default>(text: &str) -> Result<T> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("r1-run-config-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let out = load_toml(&path);
        std::fs::remove_file(&path).unwrap();
        out
    }

    fn load(text: &str) -> Result<Outer> {
        load_as(text)
    }

    #[test]
    fn a_table_in_the_file_keeps_the_parents_defaults_for_its_other_keys() {
        let cfg = load("[inner]\nrate = 0.5\n").unwrap();
        assert_eq!(cfg.inner.rate, 0.5);
        assert_eq!(
            cfg.inner.epochs, 2.0,
            "parent default, not Inner::default()"
        );
        assert_eq!(cfg.inner.prompt.as_deref(), Some("system"));
        assert_eq!(cfg.name, "outer");
        // Arrays replace the default whole.
        assert_eq!(load("list = [7]\n").unwrap().list, vec![7]);
        assert_eq!(load("").unwrap(), Outer::default());
    }

    #[derive(Debug, Serialize, Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct WithTask {
        task: r1_tasks::TaskSpec,
    }

    #[test]
    fn a_task_table_naming_another_task_replaces_the_default_one() {
        let read = load_as::<WithTask>;
        // The default is arithmetic: its `digits` must not leak into countdown.
        let cfg = read("[task]\ntask = \"countdown\"\ntrain_size = 7\n").unwrap();
        assert_eq!(cfg.task.source.name(), "countdown");
        assert_eq!(cfg.task.train_size, Some(7));
        // The same task merges.
        let cfg = read("[task]\ntask = \"arithmetic\"\ndigits = 3\n").unwrap();
        assert_eq!(cfg.task.source.name(), "arithmetic");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_line() {
        let e = load("name = \"x\"\n[inner]\nepochz = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("epochz") && e.contains("line 3"), "{e}");
        let e = load("[inner]\nrate = \"fast\"\n").unwrap_err().to_string();
        assert!(e.contains("rate") || e.contains("line 2"), "{e}");
        assert!(e.contains(".toml"), "names the file: {e}");
    }
}
