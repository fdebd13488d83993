//! `r1 bench --what decode`: the projections of one decode step, alone. Runs every
//! weight matrix of the model (7 per layer, then the lm_head) against `m` rows, in the
//! order a decode step does, so the weights stream from memory as they do when
//! sampling (one layer's weights fit in cache; the model's 0.5 GB does not). Prints
//! r1's streaming kernel beside candle's GEMM on the same pass, with GFLOP/s and the
//! weight bytes read per second, which bound decoding at small batch.

use anyhow::Result;
use candle_core::Tensor;
use r1_model::kernels::matmul_small::{available, matmul_wt};
use r1_model::Model;
use std::time::Instant;

/// Every projection weight in decode order.
fn weights(model: &Model) -> Vec<&Tensor> {
    let mut ws: Vec<&Tensor> = model.linears().map(|l| &l.weight).collect();
    ws.push(&model.lm_head);
    ws
}

/// Median seconds of one pass of `f` over all weights, after a warm-up pass.
fn pass(ws: &[&Tensor], m: usize, f: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<f64> {
    let xs: Vec<Tensor> = ws
        .iter()
        .map(|w| Tensor::randn(0f32, 1.0, (m, w.dim(1)?), w.device()))
        .collect::<candle_core::Result<_>>()?;
    let once = || -> Result<f64> {
        let t0 = Instant::now();
        for (x, w) in xs.iter().zip(ws) {
            drop(f(x, w)?);
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    once()?;
    let mut v = (0..5).map(|_| once()).collect::<Result<Vec<_>>>()?;
    v.sort_by(f64::total_cmp);
    Ok(v[2])
}

pub fn run(model: &Model, rows: &[usize]) -> Result<serde_json::Value> {
    let ws = weights(model);
    if !available() || !ws[0].device().is_cpu() {
        println!("decode projections: r1's streaming kernel needs an x86-64 CPU with AVX2");
        return Ok(serde_json::Value::Null);
    }
    let params: usize = ws.iter().map(|w| w.elem_count()).sum();
    let bytes = (params * ws[0].dtype().size_in_bytes()) as f64;
    let mut out = vec![];
    for &m in rows {
        let flop = 2.0 * (m * params) as f64;
        let r1 = pass(&ws, m, &|x, w| Ok(matmul_wt(x, w)?))?;
        let gemm = pass(&ws, m, &|x, w| Ok(x.matmul(&w.t()?)?))?;
        println!(
            "decode projections, {m:>2} rows: r1 {:.1} ms ({:.0} GFLOP/s, weights at {:.1} GB/s); GEMM {:.1} ms ({:.0} GFLOP/s)",
            r1 * 1e3,
            flop / r1 / 1e9,
            bytes / r1 / 1e9,
            gemm * 1e3,
            flop / gemm / 1e9
        );
        let attn = attention(&model.cfg, m, 160)?;
        out.push(serde_json::json!({"rows": m, "r1_ms": r1 * 1e3, "gemm_ms": gemm * 1e3,
            "r1_gflops": flop / r1 / 1e9, "gemm_gflops": flop / gemm / 1e9, "weights_gb_per_s": bytes / r1 / 1e9,
            "attention_ms": attn * 1e3}));
    }
    Ok(out.into())
}

/// One decode step's attention (every layer) at `m` rows against `past` cached
/// positions: r1's fused decode kernel on the model's head shapes.
pub fn attention(cfg: &r1_model::ModelConfig, m: usize, past: usize) -> Result<f64> {
    let dev = candle_core::Device::Cpu;
    let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    let d = cfg.hidden_size / nh;
    let q = Tensor::randn(0f32, 1.0, (m, nh, 1, d), &dev)?;
    let k = Tensor::randn(0f32, 1.0, (m, nkv, past + 1, d), &dev)?;
    let v = Tensor::randn(0f32, 1.0, (m, nkv, past + 1, d), &dev)?;
    let scale = 1.0 / (d as f64).sqrt();
    let run = || -> Result<f64> {
        let t0 = Instant::now();
        for _ in 0..cfg.num_hidden_layers {
            drop(r1_model::kernels::attention_decode::attention(
                &q, &k, &v, None, scale,
            )?);
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    run()?;
    let mut v = (0..5).map(|_| run()).collect::<Result<Vec<_>>>()?;
    v.sort_by(f64::total_cmp);
    println!(
        "decode attention, {m:>2} rows over {past} cached positions, {} layers: {:.2} ms",
        cfg.num_hidden_layers,
        v[2] * 1e3
    );
    Ok(v[2])
}
