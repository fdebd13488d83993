#![allow(dead_code)]
use candle_core::{DType, Device, Tensor};
use r1_model::model::{causal_mask, positions};
use r1_model::{LoadedModel, Mode, Model};
use std::path::PathBuf;

/// Uniform values in [-1, 1) from a small LCG, so the kernel tests do not depend on
/// candle's RNG; drawn in f64 and converted to `dtype`, on the CPU.
pub fn uniform(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

pub fn load(name: &str, dtype: DType) -> LoadedModel {
    r1_model::load_path(&fixture(name), &Device::Cpu, dtype).unwrap()
}

/// Full logits `[b, t, vocab]` for a left-padded batch given its 0/1 attention mask.
pub fn logits(model: &Model, ids: &Tensor, attn: &[Vec<i64>], mode: Mode) -> Tensor {
    let (_b, t) = ids.dims2().unwrap();
    let pads: Vec<usize> = attn
        .iter()
        .map(|r| r.iter().take_while(|&&m| m == 0).count())
        .collect();
    let dev = ids.device();
    let pos = positions(&pads, 0, t, dev).unwrap();
    let mask = causal_mask(&pads, 0, t, dev).unwrap();
    let h = model.forward(ids, &pos, Some(&mask), None, mode).unwrap();
    h.broadcast_matmul(&model.lm_head.t().unwrap()).unwrap()
}

/// Largest absolute element-wise difference, in f64.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}
