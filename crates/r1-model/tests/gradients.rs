//! The backward pass is right: finite differences on a tiny model in f64, and every
//! trainable weight receives a gradient (candle's fused ops would silently cut them).

mod common;
use candle_core::{DType, Device, Tensor, Var};
use r1_model::model::parameter_names;
use r1_model::scoring::completion_logprobs;
use r1_model::{Mode, Model, NamedTensors};

/// A weighted sum of completion log-probs. With `shared`, two completions follow the
/// same prompt, so the packed shared-prefix layout runs instead of one row each.
fn loss(model: &Model, shared: bool) -> Tensor {
    let (prompts, comps): (Vec<&[u32]>, Vec<&[u32]>) = if shared {
        (
            vec![&[5, 17, 40], &[9, 3], &[5, 17, 40]],
            vec![&[33, 7, 250, 12], &[101, 2], &[8, 44, 19]],
        )
    } else {
        (
            vec![&[5, 17, 40], &[9, 3]],
            vec![&[33, 7, 250, 12], &[101, 2]],
        )
    };
    let s = completion_logprobs(model, &prompts, &comps, 0.8, Mode::Train, false).unwrap();
    // Weighted so every position matters differently.
    let w = [
        1.0, -0.5, 0.25, 2.0, 0.75, -1.5, 0.0, 0.0, -0.3, 0.6, 1.2, 0.0,
    ];
    let n = comps.len();
    let w = Tensor::from_slice(&w[..4 * n], (n, 4), &Device::Cpu).unwrap();
    (s.logprobs.to_dtype(DType::F64).unwrap() * w)
        .unwrap()
        .sum_all()
        .unwrap()
}

fn vars_of(w: &NamedTensors) -> (NamedTensors, Vec<(String, Var)>) {
    let mut vars = vec![];
    let mut map = NamedTensors::new();
    for (k, t) in w {
        let v = Var::from_tensor(t).unwrap();
        map.insert(k.clone(), v.as_tensor().clone());
        vars.push((k.clone(), v));
    }
    (map, vars)
}

#[test]
fn backward_matches_finite_differences_in_f64() {
    for shared in [false, true] {
        finite_differences(shared);
    }
}

fn finite_differences(shared: bool) {
    let lm = common::load("tiny-qwen2", DType::F64);
    let (map, vars) = vars_of(&lm.weights);
    let dev = Device::Cpu;
    let model = Model::from_tensors(&lm.cfg, &map, &dev).unwrap();
    let grads = model.backward(&loss(&model, shared)).unwrap();
    let probes = [
        ("model.embed_tokens.weight", 33 * 64 + 5),
        ("model.embed_tokens.weight", 17 * 64 + 60),
        ("model.layers.0.self_attn.q_proj.bias", 3),
        ("model.layers.0.self_attn.k_proj.weight", 100),
        ("model.layers.1.self_attn.v_proj.weight", 517),
        ("model.layers.1.self_attn.o_proj.weight", 2000),
        ("model.layers.0.mlp.gate_proj.weight", 999),
        ("model.layers.1.mlp.down_proj.weight", 4321),
        ("model.layers.1.self_attn.v_proj.bias", 5),
        ("model.layers.1.mlp.up_proj.weight", 77),
        ("model.layers.0.input_layernorm.weight", 7),
        ("model.layers.1.post_attention_layernorm.weight", 30),
        ("model.norm.weight", 42),
    ];
    let eps = 1e-6;
    for (name, idx) in probes {
        let var = &vars.iter().find(|(n, _)| n == name).unwrap().1;
        let analytic: Vec<f64> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let at = |delta: f64| {
            let mut w = base.clone();
            w[idx] += delta;
            var.set(&Tensor::from_vec(w, var.shape(), &dev).unwrap())
                .unwrap();
            let v = loss(&model, shared).to_scalar::<f64>().unwrap();
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &dev).unwrap())
                .unwrap();
            v
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        let err = (numeric - analytic[idx]).abs() / (numeric.abs() + analytic[idx].abs()).max(1e-8);
        assert!(
            err < 1e-5,
            "{name}[{idx}] (shared {shared}): numeric {numeric} vs analytic {}",
            analytic[idx]
        );
    }
}

#[test]
fn every_trainable_weight_gets_a_nonzero_gradient() {
    for (fixture, shared) in [
        ("tiny-llama", false),
        ("tiny-qwen2", false),
        ("tiny-llama", true),
    ] {
        let lm = common::load(fixture, DType::F32);
        let (map, vars) = vars_of(&lm.weights);
        let model = Model::from_tensors(&lm.cfg, &map, &Device::Cpu).unwrap();
        let grads = model.backward(&loss(&model, shared)).unwrap();
        for name in parameter_names(&lm.cfg) {
            let var = &vars.iter().find(|(n, _)| *n == name).unwrap().1;
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{fixture}: no gradient for {name}"));
            let norm: f32 = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(norm > 0.0, "{fixture}: zero gradient for {name}");
        }
    }
}

#[test]
fn chunked_logprobs_equal_the_full_log_softmax_in_value_and_gradient() {
    use r1_model::logprobs::token_logprobs;
    let dev = Device::Cpu;
    let h = Var::new(
        Tensor::randn(0f64, 1.0, (7, 5), &dev)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap(),
        &dev,
    )
    .unwrap();
    let w = Var::new(
        Tensor::randn(0f64, 1.0, (11, 5), &dev)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap(),
        &dev,
    )
    .unwrap();
    let tgt = Tensor::new(&[3u32, 0, 10, 10, 4, 7, 1], &dev).unwrap();
    let g = Tensor::new(&[1.0f64, -2.0, 0.5, 0.3, 0.0, 1.5, -1.0], &dev).unwrap();
    // Chunks of 3 rows: three chunks, the last one partial.
    let fast = token_logprobs(h.as_tensor(), w.as_tensor(), &tgt, 0.7, true, 3).unwrap();
    let logits = (h.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap() / 0.7).unwrap();
    let full = candle_nn::ops::log_softmax(&logits, 1).unwrap();
    let slow = full
        .gather(&tgt.unsqueeze(1).unwrap(), 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
    let d: f64 = (&fast.logprobs - &slow)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(d < 1e-12, "values differ by {d}");
    let gf = (fast.logprobs * &g)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gs = (slow * &g).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&h, &w] {
        let a = gf.get(v.as_tensor()).unwrap();
        let b = gs.get(v.as_tensor()).unwrap();
        let d: f64 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-12, "gradients differ by {d}");
    }
    // Entropy: H = -Σ p log p.
    let p = full.exp().unwrap();
    let ent = (p * &full).unwrap().sum(1).unwrap().neg().unwrap();
    let d: f64 = (fast.entropy.unwrap() - ent)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(d < 1e-10, "entropy differs by {d}");
}

#[test]
fn activation_checkpointing_gives_the_same_loss_and_gradients() {
    for (shared, fused) in [(true, true), (true, false), (false, true)] {
        let lm = common::load("tiny-qwen2", DType::F64);
        let (map, vars) = vars_of(&lm.weights);
        let mut plain = Model::from_tensors(&lm.cfg, &map, &Device::Cpu).unwrap();
        plain.set_fused_blocks(fused);
        let mut ckpt = plain.clone();
        ckpt.enable_checkpointing();
        same_loss_and_gradients(&plain, &ckpt, &vars, shared, 1e-12);
    }
}

/// The hand-written block backward against candle's autograd through every op, for
/// both layouts, plain and checkpointed.
#[test]
fn fused_blocks_give_autograd_gradients() {
    for fixture in ["tiny-qwen2", "tiny-llama"] {
        for (shared, ckpt) in [(false, false), (true, false), (true, true)] {
            let lm = common::load(fixture, DType::F64);
            let (map, vars) = vars_of(&lm.weights);
            let mut autograd = Model::from_tensors(&lm.cfg, &map, &Device::Cpu).unwrap();
            autograd.set_fused_blocks(false);
            let mut fused = autograd.clone();
            fused.set_fused_blocks(true);
            if ckpt {
                fused.enable_checkpointing();
            }
            same_loss_and_gradients(&autograd, &fused, &vars, shared, 1e-11);
        }
    }
}

fn same_loss_and_gradients(
    plain: &Model,
    other: &Model,
    vars: &[(String, Var)],
    shared: bool,
    tol: f64,
) {
    let ckpt = other;
    let (l1, l2) = (loss(plain, shared), loss(ckpt, shared));
    assert_eq!(
        l1.to_scalar::<f64>().unwrap(),
        l2.to_scalar::<f64>().unwrap()
    );
    let g1 = plain.backward(&l1).unwrap();
    let g2 = ckpt.backward(&l2).unwrap();
    for (name, v) in vars {
        let a = g1
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no plain gradient for {name}"));
        let b = g2
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no checkpointed gradient for {name}"));
        let d: f64 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < tol, "{name}: gradients differ by {d}");
    }
}

/// A GRPO-like micro-batch: two prompts of different lengths, three samples each
/// (one empty completion, lengths differing), in a shuffled row order.
fn grouped_scores(model: &Model, shared: bool) -> (Tensor, Tensor) {
    let p1: &[u32] = &[5, 17, 40, 8];
    let p2: &[u32] = &[9, 3];
    let prompts = [p1, p2, p1, p2, p1, p2];
    let comps: [&[u32]; 6] = [
        &[33, 7, 250, 12, 6],
        &[101, 2],
        &[4],
        &[60, 61, 62, 63, 64],
        &[],
        &[70, 2, 9],
    ];
    let f = if shared {
        r1_model::scoring::completion_logprobs
    } else {
        r1_model::scoring::completion_logprobs_one_row_each
    };
    let s = f(model, &prompts, &comps, 0.8, Mode::Train, true).unwrap();
    let (b, t) = s.logprobs.dims2().unwrap();
    let w = Tensor::arange(0.0f64, (b * t) as f64, &Device::Cpu)
        .unwrap()
        .reshape((b, t))
        .unwrap()
        .sin()
        .unwrap();
    let loss = (s.logprobs.to_dtype(DType::F64).unwrap() * w)
        .unwrap()
        .sum_all()
        .unwrap();
    let ent = (s.entropy.unwrap() * &s.mask).unwrap();
    (loss, ent)
}

#[test]
fn shared_prompts_give_the_same_logprobs_and_gradients_as_one_row_each() {
    let lm = common::load("tiny-qwen2", DType::F64);
    let (map, vars) = vars_of(&lm.weights);
    let plain = Model::from_tensors(&lm.cfg, &map, &Device::Cpu).unwrap();
    let mut ckpt = plain.clone();
    ckpt.enable_checkpointing();
    let (l_ref, e_ref) = grouped_scores(&plain, false);
    let g_ref = plain.backward(&l_ref).unwrap();
    for (model, what) in [(&plain, "plain"), (&ckpt, "checkpointed")] {
        let (l, e) = grouped_scores(model, true);
        let (a, b): (f64, f64) = (l.to_scalar().unwrap(), l_ref.to_scalar().unwrap());
        assert!((a - b).abs() < 1e-10, "{what}: loss {a} vs {b}");
        assert!(
            common::max_diff(&e, &e_ref) < 1e-10,
            "{what}: entropies differ"
        );
        let g = model.backward(&l).unwrap();
        for (name, v) in &vars {
            let want = g_ref.get(v.as_tensor()).unwrap();
            let got = g
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
            let d = common::max_diff(got, want);
            assert!(d < 1e-10, "{what}: {name} gradients differ by {d}");
        }
    }
}
