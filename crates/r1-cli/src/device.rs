//! `--device` and `--dtype` flags shared by every command that loads a model.

use anyhow::{bail, Result};
use candle_core::{DType, Device};

#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// f32, bf16 or f16 (f32 is fastest on CPU; bf16 on GPU).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

impl DeviceArgs {
    pub fn device(&self) -> Result<Device> {
        match self.device.as_str() {
            "cpu" => Ok(Device::Cpu),
            d if d == "cuda" || d.starts_with("cuda:") => {
                let ordinal = d
                    .strip_prefix("cuda:")
                    .map(str::parse)
                    .transpose()?
                    .unwrap_or(0);
                Device::new_cuda(ordinal).map_err(|e| {
                    anyhow::anyhow!(
                        "--device {d}: {e} (build r1 with `--features cuda`, see docs/gpu.md)"
                    )
                })
            }
            other => bail!("--device: unknown device `{other}` (cpu, cuda, cuda:N)"),
        }
    }

    pub fn dtype(&self) -> Result<DType> {
        match self.dtype.as_str() {
            "f32" => Ok(DType::F32),
            "bf16" => Ok(DType::BF16),
            "f16" => Ok(DType::F16),
            other => bail!("--dtype: unknown dtype `{other}` (f32, bf16, f16)"),
        }
    }
}
