//! `r1 bench --what ops`: where a training step's time goes. Times each kind of op of
//! one forward + backward at the model's real shapes — the GEMMs of every projection
//! (forward, ∂x, ∂W), attention's batched GEMMs, the chunked lm_head log-prob, and the
//! fused element-wise kernels beside the composite candle ops they replace — then
//! multiplies by how often a step runs each, so the table adds up to an estimate of
//! the step that can be compared with the measured one.

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use r1_model::layers::{attention_probs_composite, rms_norm_composite, rope_composite};
use r1_model::logprobs::{token_logprobs, DEFAULT_CHUNK_ROWS};
use r1_model::model::{causal_mask, parameter_names, parameter_shape, positions};
use r1_model::{kernels, Mode, Model, ModelConfig, NamedTensors};
use std::time::Instant;

/// Median seconds of `f` over a few runs, after one warm-up run, each until the device
/// has finished the work `f` queued (GPU kernels run asynchronously).
fn time<T>(dev: &Device, mut f: impl FnMut() -> Result<T>) -> Result<f64> {
    f()?;
    dev.synchronize()?;
    let mut v = vec![];
    for _ in 0..3 {
        let t0 = Instant::now();
        f()?;
        dev.synchronize()?;
        v.push(t0.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    Ok(v[1])
}

struct Row {
    name: String,
    calls: usize,
    secs: f64,
    gflop: f64,
}

fn randn(shape: &[usize], dev: &Device) -> Result<Tensor> {
    Ok(Tensor::randn(0f32, 1.0, shape, dev)?)
}

/// Forward + backward of `f` on fresh variables shaped like `inputs`.
fn fwd_bwd(inputs: &[Tensor], f: &dyn Fn(&[Tensor]) -> Result<Tensor>) -> Result<f64> {
    let vars: Vec<Var> = inputs
        .iter()
        .map(Var::from_tensor)
        .collect::<Result<_, _>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let w = randn(f(&ts)?.dims(), inputs[0].device())?;
    time(inputs[0].device(), || {
        let y = f(&ts)?;
        let _ = (y * &w)?.sum_all()?.backward()?;
        Ok(())
    })
}

pub fn run(cfg: &ModelConfig, batch: usize, seq: usize, dev: &Device) -> Result<serde_json::Value> {
    let n = batch * seq;
    let (h, inter, v, l) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.vocab_size,
        cfg.num_hidden_layers,
    );
    let (nh, nkv, hd) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    );
    let mut rows: Vec<Row> = vec![];
    // Projections: forward x·Wᵀ, then the two backward GEMMs candle runs: ∂x = g·W
    // and ∂W = (xᵀ·g)ᵀ.
    let projections = [
        ("q/o proj", h, nh * hd, 2 * l),
        ("k/v proj", h, nkv * hd, 2 * l),
        ("gate/up/down proj", h, inter, 3 * l),
    ];
    for (name, din, dout, calls) in projections {
        let x = randn(&[n, din], dev)?;
        let w = randn(&[dout, din], dev)?;
        let g = randn(&[n, dout], dev)?;
        let flop = 2.0 * (n * din * dout) as f64;
        let fwd = time(dev, || Ok(x.matmul(&w.t()?)?))?;
        let dx = time(dev, || Ok(g.matmul(&w)?))?;
        let dw = time(dev, || Ok(x.t()?.matmul(&g)?))?;
        for (part, s) in [("fwd", fwd), ("∂x", dx), ("∂W", dw)] {
            rows.push(Row {
                name: format!("{name} {part} [{n}x{din}]·[{din}x{dout}]"),
                calls,
                secs: s,
                gflop: flop / 1e9,
            });
        }
    }
    // Attention: where r1's fused kernel runs (the CPU, or a GPU with
    // R1_CUDA_FLASH_ATTENTION=1), it is timed as a whole below against the GEMMs around
    // the fused softmax; elsewhere a step runs Q·Kᵀ and P·V as batched GEMMs (per batch
    // and KV group, query heads folded into rows) around the fused softmax.
    let rep = nh / nkv;
    let q = randn(&[batch, nkv, rep * seq, hd], dev)?;
    let k = randn(&[batch, nkv, seq, hd], dev)?;
    let fused_attention = kernels::attention::supported(&q);
    if !fused_attention {
        let p = randn(&[batch, nkv, rep * seq, seq], dev)?;
        let flop = 2.0 * (batch * nkv * rep * seq * seq * hd) as f64 / 1e9;
        let qk = time(dev, || Ok(q.matmul(&k.t()?)?))?;
        let pv = time(dev, || Ok(p.matmul(&k)?))?;
        rows.push(Row {
            name: "attention Q·Kᵀ (fwd; bwd runs 2 alike)".into(),
            calls: 3 * l,
            secs: qk,
            gflop: flop,
        });
        rows.push(Row {
            name: "attention P·V (fwd; bwd runs 2 alike)".into(),
            calls: 3 * l,
            secs: pv,
            gflop: flop,
        });
    }
    // lm_head log-probs, forward + backward (chunked GEMMs and the fused row kernels).
    let hid = randn(&[n, h], dev)?;
    // A trained model's scale (logits of std ≈ 1), not randn's (std ≈ 24).
    let lm = (randn(&[v, h], dev)? * 0.04)?;
    let tgt = Tensor::from_vec(
        (0..n as u32)
            .map(|i| (i * 7919) % v as u32)
            .collect::<Vec<_>>(),
        n,
        dev,
    )?;
    let s = fwd_bwd(&[hid.clone(), lm.clone()], &|t| {
        Ok(token_logprobs(&t[0], &t[1], &tgt, 1.0, false, DEFAULT_CHUNK_ROWS)?.logprobs)
    })?;
    // The forward alone is what the reference model's pass costs.
    let f = time(dev, || {
        Ok(token_logprobs(
            &hid,
            &lm,
            &tgt,
            1.0,
            false,
            DEFAULT_CHUNK_ROWS,
        )?)
    })?;
    rows.push(Row {
        name: format!("lm_head log-prob fwd [{n}x{h}]·[{h}x{v}] (part of the next)"),
        calls: 0,
        secs: f,
        gflop: 2.0 * (n * h * v) as f64 / 1e9,
    });
    rows.push(Row {
        name: format!("lm_head log-prob fwd+bwd [{n}x{h}]·[{h}x{v}]"),
        calls: 1,
        secs: s,
        gflop: 3.0 * 2.0 * (n * h * v) as f64 / 1e9,
    });
    // Element-wise ops, fused kernel and composite.
    let x = randn(&[batch, seq, h], dev)?;
    let wn = randn(&[h], dev)?;
    let xq = randn(&[batch, seq, nh * hd], dev)?;
    let ang = randn(&[batch, seq, hd / 2], dev)?;
    let (cos, sin) = (ang.cos()?, ang.sin()?);
    let sc = randn(&[batch, nkv, rep * seq, seq], dev)?;
    let mask = causal_mask(&vec![0; batch], 0, seq, dev)?;
    let fused_mask = kernels::attention::Mask::new(mask.clone());
    let gu = randn(&[batch, seq, inter], dev)?;
    let scale = 1.0 / (hd as f64).sqrt();
    type F<'a> = Box<dyn Fn(&[Tensor]) -> Result<Tensor> + 'a>;
    // (name, calls per step, inputs, fused, composite, whether the fused one runs here)
    type Entry<'a> = (&'a str, usize, Vec<Tensor>, F<'a>, F<'a>, bool);
    let mut ew: Vec<Entry> = vec![
        (
            "RMSNorm",
            2 * l + 1,
            vec![x.clone(), wn],
            Box::new(|t| Ok(kernels::rms_norm::rms_norm(&t[0], &t[1], 1e-5)?)),
            Box::new(|t| Ok(rms_norm_composite(&t[0], &t[1], 1e-5)?)),
            kernels::fused_supported(&x),
        ),
        (
            "RoPE + head split (q)",
            2 * l,
            vec![xq],
            Box::new(|t| Ok(kernels::rope::rope_split_heads(&t[0], &cos, &sin, nh)?)),
            Box::new(|t| {
                let x = t[0].reshape((batch, seq, nh, hd))?.transpose(1, 2)?;
                Ok(rope_composite(&x, &cos, &sin)?)
            }),
            kernels::fused_supported(&x),
        ),
        (
            "SwiGLU",
            l,
            vec![gu.clone(), gu],
            Box::new(|t| Ok(kernels::swiglu::swiglu(&t[0], &t[1])?)),
            Box::new(|t| Ok((t[0].silu()? * &t[1])?)),
            kernels::fused_supported(&x),
        ),
    ];
    if fused_attention {
        // The whole causal attention: r1's kernel against GEMMs around the fused softmax.
        let v = randn(&[batch, nkv, seq, hd], dev)?;
        ew.push((
            "causal attention (Q·Kᵀ, softmax, ·V)",
            l,
            vec![q, k, v],
            Box::new(|t| {
                Ok(kernels::attention::attention(
                    &t[0],
                    &t[1],
                    &t[2],
                    Some(&fused_mask),
                    scale,
                )?)
            }),
            Box::new(|t| {
                let s = t[0].matmul(&t[1].t()?)?;
                let p = kernels::softmax::scaled_masked_softmax(&s, Some(&mask), scale)?;
                Ok(p.matmul(&t[2])?)
            }),
            true,
        ));
    } else {
        ew.push((
            "softmax(scale·s + mask)",
            l,
            vec![sc.clone()],
            Box::new(|t| {
                Ok(kernels::softmax::scaled_masked_softmax(
                    &t[0],
                    Some(&mask),
                    scale,
                )?)
            }),
            Box::new(|t| Ok(attention_probs_composite(&t[0], Some(&mask), scale)?)),
            kernels::fused_supported(&sc),
        ));
    }
    let mut composite = vec![];
    for (name, calls, inputs, fused, comp, runs) in &ew {
        let c = fwd_bwd(inputs, comp.as_ref())?;
        // Where no fused kernel takes the tensor (f16, say), a step runs the composite.
        let (f, kind) = match runs {
            true => (fwd_bwd(inputs, fused.as_ref())?, "fused"),
            false => (c, "composite"),
        };
        rows.push(Row {
            name: format!("{name} fwd+bwd ({kind})"),
            calls: *calls,
            secs: f,
            gflop: 0.0,
        });
        composite
            .push(serde_json::json!({"op": name, "fused_ms": f * 1e3, "composite_ms": c * 1e3}));
        println!(
            "  {name:<28} fwd+bwd: fused {:>7.1} ms, composite {:>7.1} ms ({:.1}x)",
            f * 1e3,
            c * 1e3,
            c / f
        );
    }
    if let Some((fused, autograd)) = block_fwd_bwd(cfg, batch, seq, dev)? {
        println!(
            "  {:<28} fwd+bwd: fused {:>7.1} ms, autograd {:>6.1} ms ({:.1}x)",
            "decoder block (1 layer)",
            fused * 1e3,
            autograd * 1e3,
            autograd / fused
        );
        composite.push(serde_json::json!({"op": "decoder block (1 layer, with embedding and final norm)", "fused_ms": fused * 1e3, "autograd_ms": autograd * 1e3}));
    }
    println!(
        "\n  {:<58} {:>5} {:>9} {:>9} {:>8}",
        "op (one call)", "calls", "ms/call", "s/step", "GFLOP/s"
    );
    let mut total = 0.0;
    let mut json_rows = vec![];
    for r in &rows {
        let per_step = r.secs * r.calls as f64;
        total += per_step;
        let gf = if r.gflop > 0.0 {
            format!("{:.1}", r.gflop / r.secs)
        } else {
            "-".into()
        };
        println!(
            "  {:<58} {:>5} {:>9.2} {:>9.2} {:>8}",
            r.name,
            r.calls,
            r.secs * 1e3,
            per_step,
            gf
        );
        json_rows.push(serde_json::json!({"op": r.name, "calls": r.calls, "ms_per_call": r.secs * 1e3, "s_per_step": per_step, "gflops": if r.gflop > 0.0 { r.gflop / r.secs } else { 0.0 }}));
    }
    println!(
        "  {:<58} {:>5} {:>9} {:>9.2}",
        "sum (the rest: residual adds, embedding, grad bookkeeping, AdamW)", "", "", total
    );
    Ok(serde_json::json!({"ops": json_rows, "sum_s": total, "fused_vs_composite": composite}))
}

/// Seconds for forward + backward of a one-layer model with random weights at the
/// step's shape, its block trained as one op with the hand-written backward and through
/// candle's autograd (embedding and final norm alike in both); `None` where the fused
/// block does not run (a GPU, or dtypes other than f32/f64).
fn block_fwd_bwd(
    cfg: &ModelConfig,
    batch: usize,
    seq: usize,
    dev: &Device,
) -> Result<Option<(f64, f64)>> {
    if !kernels::supported(&randn(&[1], dev)?) {
        return Ok(None);
    }
    let mut one = cfg.clone();
    one.num_hidden_layers = 1;
    let mut named = NamedTensors::new();
    for name in parameter_names(&one) {
        let w = (randn(&parameter_shape(&one, &name), dev)? * 0.05)?;
        named.insert(name, Var::from_tensor(&w)?.as_tensor().clone());
    }
    let mut model = Model::from_tensors(&one, &named, dev)?;
    let ids: Vec<u32> = (0..batch * seq)
        .map(|i| (i * 7919 % cfg.vocab_size) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (batch, seq), dev)?;
    let pad = vec![0; batch];
    let pos = positions(&pad, 0, seq, dev)?;
    let mask = causal_mask(&pad, 0, seq, dev)?;
    let w = randn(&[batch, seq, cfg.hidden_size], dev)?;
    let mut secs = [0.0; 2];
    for (i, fused) in [true, false].into_iter().enumerate() {
        model.set_fused_blocks(fused);
        secs[i] = time(dev, || {
            let h = model.forward(&ids, &pos, Some(&mask), None, Mode::Train)?;
            let _ = model.backward(&(h * &w)?.sum_all()?)?;
            Ok(())
        })?;
    }
    Ok(Some((secs[0], secs[1])))
}
