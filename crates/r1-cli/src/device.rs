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
                    .map(|n| {
                        n.parse::<usize>().map_err(|_| {
                            anyhow::anyhow!(
                                "--device {d}: `{n}` is not a GPU number (cuda:0, cuda:1, …)"
                            )
                        })
                    })
                    .transpose()?
                    .unwrap_or(0);
                let dev = Device::new_cuda(ordinal).map_err(|e| {
                    anyhow::anyhow!(
                        "--device {d}: {e} (build r1 with `--features cuda`, see docs/gpu.md)"
                    )
                })?;
                untrack_events(&dev);
                Ok(dev)
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

/// The device and dtype a config's `device` and `dtype` keys name, parsed as the flags
/// are (the same errors).
pub fn from_config(device: &str, dtype: &str) -> Result<(Device, DType)> {
    let d = DeviceArgs {
        device: device.to_string(),
        dtype: dtype.to_string(),
    };
    Ok((d.device()?, d.dtype()?))
}

/// `--device` and `--dtype` for commands driven by a config file: when given, they
/// replace the config's `device` and `dtype`.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceOverride {
    /// cpu, cuda or cuda:N (overrides the config's `device`).
    #[arg(long)]
    pub device: Option<String>,
    /// f32, bf16 or f16 (overrides the config's `dtype`).
    #[arg(long)]
    pub dtype: Option<String>,
}

impl DeviceOverride {
    /// Writes the flags that were given over a config's `device` and `dtype`.
    pub fn apply(&self, device: &mut String, dtype: &mut String) {
        if let Some(d) = &self.device {
            *device = d.clone();
        }
        if let Some(d) = &self.dtype {
            *dtype = d.clone();
        }
    }
}

/// candle records and waits on CUDA events around every use of a GPU buffer, so that a
/// buffer shared between streams is safe. r1 drives a GPU from one thread on one
/// stream, where those are two extra driver calls per kernel argument, on a decode
/// step of hundreds of small kernels. `R1_CUDA_EVENT_TRACKING=1` keeps candle's
/// default.
fn untrack_events(dev: &Device) {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(c) = dev {
        if std::env::var("R1_CUDA_EVENT_TRACKING").map_or(true, |v| v != "1") {
            // SAFETY: every tensor of this device is created and used on its one
            // stream, from the thread that runs the command.
            unsafe { c.disable_event_tracking() }
        }
    }
    #[cfg(not(feature = "cuda"))]
    let _ = dev;
}
