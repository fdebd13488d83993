//! Append-only JSONL logs keyed by `step`, with resume truncation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// An open JSONL log; each line is written with a single `write_all` on an
/// unbuffered file, so it reaches the OS before `append` returns and a crash
/// can at worst tear the last line.
#[derive(Debug)]
pub(crate) struct StepLog {
    file: File,
    path: PathBuf,
}

impl StepLog {
    /// Opens `dir/name`, creating `dir`.
    ///
    /// `None` starts a new log (an existing file is replaced). `Some(step)`
    /// resumes: lines whose `step` is below `step` are kept, later ones and
    /// unreadable ones (a line torn by a crash) are dropped; the file is
    /// rewritten through a temporary file and a rename, so a crash during
    /// resume leaves either the old or the new log, never half of one.
    pub(crate) fn open(dir: &Path, name: &str, resume_from_step: Option<u64>) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
        let path = dir.join(name);
        let kept = match (resume_from_step, path.exists()) {
            (Some(step), true) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                text.lines()
                    .filter(|line| line_step(line).is_some_and(|s| s < step))
                    .fold(String::new(), |mut acc, line| {
                        acc.push_str(line);
                        acc.push('\n');
                        acc
                    })
            }
            _ => String::new(),
        };
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            let mut f =
                File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            f.write_all(kept.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self { file, path })
    }

    /// Appends one JSON value as a line.
    pub(crate) fn append(&mut self, value: &serde_json::Value) -> Result<()> {
        let mut line = serde_json::to_string(value)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The `step` of a log line, if it is a JSON object with an integer step.
fn line_step(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()?
        .get("step")?
        .as_u64()
}
