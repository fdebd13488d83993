//! `r1 verify`: is each predicted answer equivalent to its reference?
//! Reads JSONL `{"gold": ..., "pred": ...}` and writes one JSON verdict per line, in order.

use anyhow::{Context, Result};
use r1_rewards::{verify_jsonl, VerifyOptions};
use std::io::BufRead;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// JSONL input (default: standard input).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Accept the last number in a prediction when no answer marker is found.
    #[arg(long)]
    fallback_last_number: bool,
    /// Relative tolerance for numeric comparison.
    #[arg(long)]
    rel_tol: Option<f64>,
}

pub fn open_input(path: &Option<PathBuf>) -> Result<Box<dyn BufRead>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("{}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    })
}

pub fn run(a: Args) -> Result<bool> {
    let mut opts = VerifyOptions::default();
    opts.extract.fallback_last_number = a.fallback_last_number;
    if let Some(t) = a.rel_tol {
        opts.equiv.rel_tol = t;
    }
    let summary = verify_jsonl(open_input(&a.input)?, std::io::stdout().lock(), &opts)?;
    eprintln!(
        "verified {} lines: {} correct, {} errors",
        summary.lines, summary.correct, summary.errors
    );
    Ok(summary.ok())
}
