//! Load errors that name the file at fault, so a user sees one clear line.

use std::path::{Path, PathBuf};

/// An error tied to a file: "path: what went wrong".
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub message: String,
}

impl FileError {
    pub fn new(path: &Path, message: impl std::fmt::Display) -> Self {
        Self {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// Wraps any displayable error with the file it concerns.
pub fn in_file<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| FileError::new(path, e).into()
}
