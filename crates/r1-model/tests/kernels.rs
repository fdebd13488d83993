//! Every fused kernel against its composite equivalent (values and gradients, f32 and
//! f64), and its backward pass against finite differences in f64.

use candle_core::{DType, Device, Tensor, Var};
use r1_model::kernels::attention::Mask;
use r1_model::kernels::{
    attention, rms_norm::rms_norm, rope::rope_split_heads, softmax, swiglu::swiglu,
};
use r1_model::layers::{attention_logits_composite, rms_norm_composite, rope_composite};
use r1_model::model::causal_mask;

mod common;
use common::{max_diff, uniform as randn};

/// A scalar loss weighting every output element differently, so gradients differ per
/// element.
fn weighted_sum(y: &Tensor, seed: u64) -> Tensor {
    let w = randn(y.dims(), seed, y.dtype());
    (y * w).unwrap().sum_all().unwrap()
}

type Op<'a> = dyn Fn(&[Tensor]) -> Tensor + 'a;

/// Values and input gradients of `fused` and `composite` agree to `tol`.
fn check_against_composite(inputs: &[Tensor], fused: &Op<'_>, composite: &Op<'_>, tol: f64) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let (yf, yc) = (fused(&ts), composite(&ts));
    let d = max_diff(&yf, &yc);
    assert!(d < tol, "forward differs by {d}");
    let gf = weighted_sum(&yf, 99).backward().unwrap();
    let gc = weighted_sum(&yc, 99).backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        let a = gf.get(v.as_tensor()).expect("fused op gives no gradient");
        let b = gc.get(v.as_tensor()).unwrap();
        let d = max_diff(a, b);
        assert!(d < tol, "gradient of input {i} differs by {d}");
    }
}

/// The fused backward matches central finite differences at a few elements (f64).
fn check_finite_differences(inputs: &[Tensor], fused: &Op<'_>) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let grads = weighted_sum(&fused(&ts), 7).backward().unwrap();
    let eps = 1e-6;
    for (i, v) in vars.iter().enumerate() {
        let g: Vec<f64> = grads
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f64> = inputs[i].flatten_all().unwrap().to_vec1().unwrap();
        for k in [0, base.len() / 3, base.len() - 1] {
            let eval = |delta: f64| {
                let mut p = base.clone();
                p[k] += delta;
                let mut xs = inputs.to_vec();
                xs[i] = Tensor::from_vec(p, inputs[i].dims(), &Device::Cpu).unwrap();
                weighted_sum(&fused(&xs), 7).to_scalar::<f64>().unwrap()
            };
            let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
            let err = (fd - g[k]).abs() / (1.0 + fd.abs());
            assert!(
                err < 1e-7,
                "input {i}[{k}]: analytic {} vs numeric {fd}",
                g[k]
            );
        }
    }
}

#[test]
fn rms_norm_matches_composite() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let x = (randn(&[3, 5, 24], 1, dtype) * 3.0).unwrap();
        let w = randn(&[24], 2, dtype);
        let fused = |t: &[Tensor]| rms_norm(&t[0], &t[1], 1e-5).unwrap();
        let comp = |t: &[Tensor]| rms_norm_composite(&t[0], &t[1], 1e-5).unwrap();
        check_against_composite(&[x.clone(), w.clone()], &fused, &comp, tol);
        if dtype == DType::F64 {
            check_finite_differences(&[x, w], &fused);
        }
    }
}

#[test]
fn rope_matches_composite() {
    let (b, t, heads, d) = (2, 5, 3, 8);
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let x = randn(&[b, t, heads * d], 3, dtype);
        // Rows at different positions, as in a left-padded batch.
        let ang = (randn(&[b, t, d / 2], 4, DType::F64) * 6.0).unwrap();
        let (cos, sin) = (
            ang.cos().unwrap().to_dtype(dtype).unwrap(),
            ang.sin().unwrap().to_dtype(dtype).unwrap(),
        );
        let (c2, s2) = (cos.clone(), sin.clone());
        let fused = move |t: &[Tensor]| rope_split_heads(&t[0], &c2, &s2, heads).unwrap();
        let comp = |ts: &[Tensor]| {
            let x = ts[0]
                .reshape((b, t, heads, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap();
            rope_composite(&x, &cos, &sin).unwrap()
        };
        check_against_composite(std::slice::from_ref(&x), &fused, &comp, tol);
        if dtype == DType::F64 {
            check_finite_differences(&[x], &fused);
        }
    }
}

#[test]
fn masked_softmax_matches_composite() {
    // Two KV groups of rep = 2 query heads over t = 4 new tokens after 2 cached ones,
    // with left padding in the second row: every masking case at once.
    let (b, g, rep, t, past) = (2, 2, 2, 4, 2);
    let mask = causal_mask(&[0, 3], past, t, &Device::Cpu).unwrap();
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let x = (randn(&[b, g, rep * t, past + t], 5, dtype) * 4.0).unwrap();
        let mk = mask.to_dtype(dtype).unwrap();
        let m2 = mk.clone();
        let fused =
            move |ts: &[Tensor]| softmax::scaled_masked_softmax(&ts[0], Some(&m2), 0.3).unwrap();
        let comp = |ts: &[Tensor]| {
            let z = attention_logits_composite(&ts[0], Some(&mk), 0.3).unwrap();
            candle_nn::ops::softmax(&z, candle_core::D::Minus1).unwrap()
        };
        check_against_composite(std::slice::from_ref(&x), &fused, &comp, tol);
        if dtype == DType::F64 {
            check_finite_differences(std::slice::from_ref(&x), &fused);
        }
        // Without a mask too.
        let fused = |ts: &[Tensor]| softmax::scaled_masked_softmax(&ts[0], None, 0.3).unwrap();
        let comp = |ts: &[Tensor]| {
            candle_nn::ops::softmax(&(&ts[0] * 0.3).unwrap(), candle_core::D::Minus1).unwrap()
        };
        check_against_composite(&[x], &fused, &comp, tol);
    }
}

/// `softmax(scale · q·kᵀ + mask) · v` from candle ops.
fn attention_composite(ts: &[Tensor], mask: Option<&Tensor>, scale: f64) -> Tensor {
    let s = ts[0].matmul(&ts[1].t().unwrap()).unwrap();
    let z = attention_logits_composite(&s, mask, scale).unwrap();
    let p = candle_nn::ops::softmax(&z, candle_core::D::Minus1).unwrap();
    p.matmul(&ts[2]).unwrap()
}

#[test]
fn fused_attention_matches_composite() {
    // (batch, KV groups, query heads per group, new tokens, cached ones, head dim,
    // left padding per row). Between them: a causal tail to skip, keys beyond the
    // queries, padding rows the mask hides entirely (uniform over all keys), more rows
    // than one register tile holds, partial key tiles, and both column widths.
    type Case = (usize, usize, usize, usize, usize, usize, &'static [usize]);
    let cases: [Case; 3] = [
        (2, 2, 2, 4, 2, 16, &[0, 3]),
        (1, 3, 3, 13, 0, 64, &[0]),
        (2, 1, 1, 40, 5, 32, &[7, 0]),
    ];
    for (b, g, rep, t, past, d, pad) in cases {
        let mask = causal_mask(pad, past, t, &Device::Cpu).unwrap();
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-5)] {
            let q = randn(&[b, g, rep * t, d], 11, dtype);
            let k = (randn(&[b, g, past + t, d], 12, dtype) * 2.0).unwrap();
            let v = randn(&[b, g, past + t, d], 13, dtype);
            let mk = mask.to_dtype(dtype).unwrap();
            let scale = 1.0 / (d as f64).sqrt();
            let fused = |ts: &[Tensor]| {
                attention::attention(&ts[0], &ts[1], &ts[2], Some(&Mask::new(mk.clone())), scale)
                    .unwrap()
            };
            let comp = |ts: &[Tensor]| attention_composite(ts, Some(&mk), scale);
            let inputs = [q, k, v];
            check_against_composite(&inputs, &fused, &comp, tol);
            if dtype == DType::F64 {
                // Finite differences without padding: a row the mask hides entirely
                // sits at −1e9, where f64 resolves steps of 1e-7 only.
                let causal = causal_mask(&vec![0; b], past, t, &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let fused = |ts: &[Tensor]| {
                    attention::attention(
                        &ts[0],
                        &ts[1],
                        &ts[2],
                        Some(&Mask::new(causal.clone())),
                        scale,
                    )
                    .unwrap()
                };
                check_finite_differences(&inputs, &fused);
            }
            let fused =
                |ts: &[Tensor]| attention::attention(&ts[0], &ts[1], &ts[2], None, scale).unwrap();
            let comp = |ts: &[Tensor]| attention_composite(ts, None, scale);
            check_against_composite(&inputs, &fused, &comp, tol);
            if dtype == DType::F64 {
                check_finite_differences(&inputs, &fused);
            }
        }
    }
}

#[test]
fn fused_attention_rejects_bad_shapes() {
    let q = randn(&[1, 2, 6, 16], 1, DType::F32);
    let k = randn(&[1, 2, 5, 16], 2, DType::F32);
    let mask = causal_mask(&[0], 0, 4, &Device::Cpu).unwrap();
    // 6 query rows are not a whole number of 4-token heads; keys 5 ≠ mask's 4.
    assert!(attention::attention(&q, &k, &k, Some(&Mask::new(mask)), 1.0).is_err());
    assert!(attention::attention(&q, &k, &randn(&[1, 2, 5, 8], 3, DType::F32), None, 1.0).is_err());
    assert!(
        attention::attention(&q, &randn(&[1, 1, 5, 16], 3, DType::F32), &k, None, 1.0).is_err()
    );
}

#[test]
fn swiglu_matches_composite() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let g = (randn(&[4, 7, 33], 6, dtype) * 5.0).unwrap();
        let u = randn(&[4, 7, 33], 7, dtype);
        let fused = |t: &[Tensor]| swiglu(&t[0], &t[1]).unwrap();
        let comp = |t: &[Tensor]| (t[0].silu().unwrap() * &t[1]).unwrap();
        check_against_composite(&[g.clone(), u.clone()], &fused, &comp, tol);
        if dtype == DType::F64 {
            check_finite_differences(&[g, u], &fused);
        }
    }
}

#[test]
fn kernels_parallelise_over_many_rows() {
    // Large enough that rayon splits the work: the results must not depend on the split.
    let x = randn(&[64, 40, 96], 8, DType::F32);
    let w = randn(&[96], 9, DType::F32);
    let d = max_diff(
        &rms_norm(&x, &w, 1e-6).unwrap(),
        &rms_norm_composite(&x, &w, 1e-6).unwrap(),
    );
    assert!(d < 1e-5, "{d}");
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let x = randn(&[2, 3, 8], 1, DType::F32);
    assert!(rms_norm(&x, &randn(&[7], 1, DType::F32), 1e-5).is_err());
    let ang = randn(&[2, 3, 2], 1, DType::F32);
    assert!(rope_split_heads(&x, &ang, &ang, 3).is_err());
    let s = randn(&[1, 1, 4, 5], 1, DType::F32);
    let mask = causal_mask(&[0], 0, 3, &Device::Cpu).unwrap();
    assert!(softmax::scaled_masked_softmax(&s, Some(&mask), 1.0).is_err());
    assert!(swiglu(&x, &randn(&[2, 3, 9], 1, DType::F32)).is_err());
}

#[test]
fn probabilities_are_never_subnormal() {
    // Subnormal operands make the following GEMMs ~80× slower on x86: the kernels
    // flush them to zero.
    let x = (randn(&[1, 1, 4, 64], 3, DType::F32) * 60.0).unwrap();
    let p: Vec<f32> = softmax::scaled_masked_softmax(&x, None, 1.0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(p.iter().all(|&v| v == 0.0 || v >= f32::MIN_POSITIVE));
    assert!(p.contains(&0.0), "the test needs underflowing entries");
    let sums: f32 = p.iter().sum();
    assert!((sums - 4.0).abs() < 1e-5);
}

#[test]
fn streaming_projection_matches_gemm() {
    if !r1_model::kernels::matmul_small::available() {
        return;
    }
    use r1_model::kernels::matmul_small::matmul_wt;
    // Every tiling edge: rows and columns not multiples of 4, k not a multiple of 16;
    // from 9 rows the broadcast tiles (24 columns up to 16 rows, 12 up to 32), with
    // and without leftover columns.
    for (m, n, k) in [
        (1, 7, 5),
        (4, 8, 32),
        (6, 13, 37),
        (32, 130, 576),
        (9, 66, 100),
        (16, 48, 64),
        (20, 24, 37),
        (33, 20, 40),
    ] {
        let x = randn(&[m, k], m as u64, DType::F32);
        let w = randn(&[n, k], n as u64, DType::F32);
        let d = max_diff(
            &matmul_wt(&x, &w).unwrap(),
            &x.matmul(&w.t().unwrap()).unwrap(),
        );
        assert!(d < 1e-4, "{m}x{k} · {n}x{k}: {d}");
    }
    assert!(matmul_wt(
        &randn(&[2, 3], 1, DType::F32),
        &randn(&[4, 5], 1, DType::F32)
    )
    .is_err());
}

#[test]
fn several_weights_in_one_call_match_separate_products() {
    if !r1_model::kernels::matmul_small::available() {
        return;
    }
    use r1_model::kernels::matmul_small::matmul_wt_many;
    // q/k/v-like widths, one with leftover columns, at both tile shapes and below 9
    // rows; the kernel writes an uninitialised buffer, so a missed column or row
    // would show as garbage here.
    for m in [1, 5, 12, 29] {
        let k = 70;
        let x = randn(&[m, k], m as u64, DType::F32);
        let ws: Vec<Tensor> = [96, 24, 37]
            .iter()
            .map(|&n| randn(&[n, k], n as u64 + 7, DType::F32))
            .collect();
        let refs: Vec<&Tensor> = ws.iter().collect();
        let ys = matmul_wt_many(&x, &refs).unwrap();
        assert_eq!(ys.len(), 3);
        for (y, w) in ys.iter().zip(&ws) {
            let d = max_diff(y, &x.matmul(&w.t().unwrap()).unwrap());
            assert!(d < 1e-4, "m {m}, n {}: {d}", w.dim(0).unwrap());
        }
    }
    let x = randn(&[3, 8], 1, DType::F32);
    let (good, bad) = (randn(&[4, 8], 2, DType::F32), randn(&[4, 9], 3, DType::F32));
    assert!(matmul_wt_many(&x, &[&good, &bad]).is_err());
}

#[test]
fn decode_attention_matches_the_gemm_path() {
    use r1_model::kernels::attention_decode::attention;
    // 2 rows, 6 query heads over 2 KV heads, 3 new positions after 5 (then 37) cached
    // ones, the keys a strided view of a larger cache as in decoding, row 1 left-padded
    // by 2. At 40 positions f32 runs two blocks of 16 keys and a tail of 8 by AVX-512.
    let (b, nh, nkv, t) = (2, 6, 2, 3);
    for (dtype, past, d) in [
        (DType::F32, 5, 16),
        (DType::F64, 5, 16),
        (DType::F32, 37, 64),
        // Head size 48: three vectors per row, four rows per group.
        (DType::F32, 20, 48),
    ] {
        let s = past + t;
        let q = randn(&[b, nh, t, d], 1, dtype);
        let kc = randn(&[b, nkv, s + 4, d], 2, dtype);
        let vc = randn(&[b, nkv, s + 4, d], 3, dtype);
        let (k, v) = (kc.narrow(2, 0, s).unwrap(), vc.narrow(2, 0, s).unwrap());
        let mask = causal_mask(&[0, 2], past, t, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let scale = 0.25;
        let fast = attention(&q, &k, &v, Some(&mask), scale).unwrap();
        // Reference: repeat KV heads, scores, mask, softmax, weighted sum.
        let rep = nh / nkv;
        let kr = k
            .unsqueeze(2)
            .unwrap()
            .repeat((1, 1, rep, 1, 1))
            .unwrap()
            .reshape((b, nh, s, d))
            .unwrap();
        let vr = v
            .unsqueeze(2)
            .unwrap()
            .repeat((1, 1, rep, 1, 1))
            .unwrap()
            .reshape((b, nh, s, d))
            .unwrap();
        let scores = (q.matmul(&kr.t().unwrap()).unwrap() * scale)
            .unwrap()
            .broadcast_add(&mask)
            .unwrap();
        let p = candle_nn::ops::softmax(&scores, candle_core::D::Minus1).unwrap();
        let slow = p.matmul(&vr).unwrap();
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        let diff = max_diff(&fast, &slow);
        assert!(diff < tol, "{dtype:?}: {diff}");
    }
}
