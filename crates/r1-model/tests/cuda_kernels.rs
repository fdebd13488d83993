//! The CUDA kernels (`kernels/cuda_kernels.cu`, `kernels/cuda_attention.cu`) against the
//! CPU composites they replace: values and input gradients, in f32 (tight) and bf16
//! (bf16's rounding). Built only with `--features cuda`; on a machine without a GPU each
//! test says so and passes (`tests/cuda_emulated.rs` checks the attention kernels' source
//! without one).
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor, Var};
use r1_model::kernels::attention::{self, Mask};
use r1_model::kernels::{rms_norm::rms_norm, rope::rope_split_heads, softmax, swiglu::swiglu};
use r1_model::layers::{attention_probs_composite, rms_norm_composite, rope_composite};
use r1_model::model::causal_mask;

mod common;
use common::max_diff;

fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: no GPU ({e})");
            None
        }
    }
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    common::uniform(shape, seed, DType::F32)
}

type Op<'a> = dyn Fn(&[Tensor]) -> Tensor + 'a;

/// Output and input gradients of `f` for a loss weighting each output element
/// differently, in f32 on the CPU.
fn run(f: &Op<'_>, inputs: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts);
    let w = randn(y.dims(), 99)
        .to_dtype(y.dtype())
        .unwrap()
        .to_device(y.device())
        .unwrap();
    let grads = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
    let cpu = |t: &Tensor| {
        t.to_dtype(DType::F32)
            .unwrap()
            .to_device(&Device::Cpu)
            .unwrap()
    };
    let gs = vars
        .iter()
        .map(|v| cpu(grads.get(v.as_tensor()).expect("an input got no gradient")))
        .collect();
    (cpu(&y), gs)
}

/// The GPU kernel (`fused` on GPU tensors of `dtype`) against the CPU composite in f32.
fn check(inputs: &[Tensor], fused: &Op<'_>, composite: &Op<'_>, what: &str) {
    let Some(dev) = gpu() else { return };
    let (yc, gc) = run(composite, inputs);
    for (dtype, tol) in [(DType::F32, 2e-5), (DType::BF16, 4e-2)] {
        let on_gpu: Vec<Tensor> = inputs
            .iter()
            .map(|t| t.to_dtype(dtype).unwrap().to_device(&dev).unwrap())
            .collect();
        let (yf, gf) = run(fused, &on_gpu);
        // bf16 inputs are themselves rounded, so compare relative to the values' scale.
        let scale = |t: &Tensor| {
            1f64.max(
                t.abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64,
            )
        };
        let d = max_diff(&yf, &yc) / scale(&yc);
        assert!(d < tol, "{what} {dtype:?}: forward differs by {d}");
        for (i, (a, b)) in gf.iter().zip(&gc).enumerate() {
            let d = max_diff(a, b) / scale(b);
            assert!(
                d < tol,
                "{what} {dtype:?}: gradient of input {i} differs by {d}"
            );
        }
    }
}

#[test]
fn rms_norm_kernel_matches_composite() {
    // 28 rows: the backward pass's 16-row blocks, one of them partial; 576 columns
    // over 256 threads, the last pass partial.
    let x = (randn(&[4, 7, 576], 1) * 3.0).unwrap();
    let w = randn(&[576], 2);
    check(
        &[x, w],
        &|t| rms_norm(&t[0], &t[1], 1e-5).unwrap(),
        &|t| rms_norm_composite(&t[0], &t[1], 1e-5).unwrap(),
        "rms_norm",
    );
}

#[test]
fn rope_kernel_matches_composite() {
    let (b, t, heads, d) = (2, 5, 3, 64);
    let x = randn(&[b, t, heads * d], 3);
    let ang = (randn(&[b, t, d / 2], 4) * 6.0).unwrap();
    let (cos, sin) = (ang.cos().unwrap(), ang.sin().unwrap());
    let (gc, gs) = (cos.clone(), sin.clone());
    check(
        &[x],
        &move |ts| {
            let dev = ts[0].device();
            let c = gc.to_device(dev).unwrap();
            let s = gs.to_device(dev).unwrap();
            rope_split_heads(&ts[0], &c, &s, heads).unwrap()
        },
        &|ts| {
            let x = ts[0]
                .reshape((b, t, heads, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap();
            rope_composite(&x, &cos, &sin).unwrap()
        },
        "rope",
    );
}

#[test]
fn softmax_kernel_matches_composite() {
    // Two query heads per KV group over 5 new positions after 32 cached ones, a left-
    // padded row, and rows longer than a block (the no-mask case).
    let (b, g, rep, t, past) = (2, 3, 2, 5, 32);
    let s = past + t;
    let scores = (randn(&[b, g, rep * t, s], 5) * 4.0).unwrap();
    let mask = causal_mask(&[0, 3], past, t, &Device::Cpu).unwrap();
    let scale = 0.125;
    let m2 = mask.clone();
    check(
        &[scores],
        &move |ts| {
            let mk = m2.to_device(ts[0].device()).unwrap();
            softmax::scaled_masked_softmax(&ts[0], Some(&mk), scale).unwrap()
        },
        &|ts| attention_probs_composite(&ts[0], Some(&mask), scale).unwrap(),
        "masked softmax",
    );
    let long = (randn(&[1, 2, 3, 1500], 6) * 4.0).unwrap();
    check(
        &[long],
        &|ts| softmax::scaled_masked_softmax(&ts[0], None, scale).unwrap(),
        &|ts| attention_probs_composite(&ts[0], None, scale).unwrap(),
        "softmax without mask",
    );
}

#[test]
fn swiglu_kernel_matches_composite() {
    // Not a multiple of the block size.
    let g = (randn(&[3, 1000], 7) * 4.0).unwrap();
    let u = randn(&[3, 1000], 8);
    check(
        &[g, u],
        &|t| swiglu(&t[0], &t[1]).unwrap(),
        &|t| (t[0].silu().unwrap() * &t[1]).unwrap(),
        "swiglu",
    );
}

#[test]
fn fused_attention_kernel_matches_composite() {
    // The GPU attention is opt-in; this test is what it waits on.
    std::env::set_var("R1_CUDA_FLASH_ATTENTION", "1");
    /// Batch, KV heads, query heads per KV head, new positions, cached positions, head
    /// dim, and each row's padding (no mask if `None`).
    struct Case(usize, usize, usize, usize, usize, usize, Option<Vec<usize>>);
    // GQA over cached keys with a left-padded row whose first queries see nothing; head
    // dim 128; one mask for a batch of 2; more rows and keys than a block holds.
    let cases = [
        Case(2, 2, 3, 37, 40, 64, Some(vec![0, 45])),
        Case(1, 2, 2, 70, 0, 128, Some(vec![40])),
        Case(2, 1, 3, 20, 30, 64, Some(vec![3])),
        Case(1, 1, 3, 130, 0, 64, Some(vec![0])),
        Case(1, 3, 1, 45, 0, 64, None),
    ];
    for (i, Case(b, g, rep, t, past, d, pad)) in cases.into_iter().enumerate() {
        let s = past + t;
        let seed = 20 + 4 * i as u64;
        let q = randn(&[b, g, rep * t, d], seed);
        let k = randn(&[b, g, s, d], seed + 1);
        let v = randn(&[b, g, s, d], seed + 2);
        let scale = 1.0 / (d as f64).sqrt();
        let mask = pad.map(|p| causal_mask(&p, past, t, &Device::Cpu).unwrap());
        if let Some(dev) = gpu() {
            let probe = q.to_device(&dev).unwrap();
            assert!(
                attention::supported(&probe),
                "the fused GPU attention is not selected"
            );
        }
        let m2 = mask.clone();
        check(
            &[q, k, v],
            &move |ts| {
                let mk = m2.as_ref().map(|m| {
                    Mask::new(
                        m.to_dtype(ts[0].dtype())
                            .unwrap()
                            .to_device(ts[0].device())
                            .unwrap(),
                    )
                });
                attention::attention(&ts[0], &ts[1], &ts[2], mk.as_ref(), scale).unwrap()
            },
            &|ts| {
                let scores = ts[0].matmul(&ts[1].t().unwrap()).unwrap();
                attention_probs_composite(&scores, mask.as_ref(), scale)
                    .unwrap()
                    .matmul(&ts[2])
                    .unwrap()
            },
            &format!("fused attention, case {i}"),
        );
    }
}
