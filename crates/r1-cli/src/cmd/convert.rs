//! `r1 convert`: write any loadable model as a Hugging Face folder (e.g. GGUF → HF).

use crate::device::DeviceArgs;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A model folder, a .gguf file or a cache name (default: the default model).
    #[arg(long)]
    model: Option<String>,
    /// Folder to write.
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    dev: DeviceArgs,
}

pub fn run(a: Args) -> Result<()> {
    let lm = r1_model::load(a.model.as_deref(), &a.dev.device()?, a.dev.dtype()?)?;
    lm.save(&a.output)?;
    println!("wrote {}", a.output.display());
    Ok(())
}
