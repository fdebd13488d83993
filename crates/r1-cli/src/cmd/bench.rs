//! `r1 bench`: the throughput figures users choose a trainer by. Same workloads as
//! `shared/peer-bench` (transformers / PyTorch) so the two can be compared in one sitting:
//! generation with 128 forced new tokens after a ~90-token chat prompt at batch 1/8/32
//! (T = 0.7, top-p 0.95); training forward + backward + AdamW at batch 8 × 256; a matmul.

use crate::device::DeviceArgs;
use anyhow::Result;
use candle_core::{DType, Tensor};
use r1_model::scoring::completion_logprobs;
use r1_model::{Message, Mode};
use r1_rollout::{LocalEngine, RolloutEngine, SamplingParams};
use r1_train::{AdamW, AdamWConfig, Trainable};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: Option<String>,
    /// Which benchmarks: any of matmul, decode, gen, train, ops (comma separated; decode
    /// times one decode step's projections at each --gen-batches size, ops profiles one
    /// training step op by op).
    #[arg(long, default_value = "matmul,gen,train")]
    what: String,
    #[arg(long, default_value = "1,8,32")]
    gen_batches: String,
    #[arg(long, default_value_t = 128)]
    new_tokens: usize,
    #[arg(long, default_value_t = 8)]
    train_batch: usize,
    #[arg(long, default_value_t = 256)]
    train_seq: usize,
    /// Timed training steps (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    train_steps: usize,
    /// Train with activation checkpointing.
    #[arg(long)]
    gradient_checkpointing: bool,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    #[command(flatten)]
    dev: DeviceArgs,
}

const SYSTEM: &str = "You are a helpful assistant. First think about the problem step by step, then give the answer. Put your reasoning inside <think> </think> tags and the final answer (just the number) inside <answer> </answer> tags, i.e. <think> reasoning here </think><answer> answer here </answer>.";

/// Peak resident memory of this process so far, in MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(a: Args) -> Result<()> {
    let device = a.dev.device()?;
    let dtype = a.dev.dtype()?;
    let what: Vec<&str> = a.what.split(',').map(str::trim).collect();
    if let Some(bad) = what
        .iter()
        .find(|w| !["matmul", "decode", "gen", "train", "ops"].contains(w))
    {
        anyhow::bail!("--what: unknown benchmark `{bad}` (use matmul, decode, gen, train, ops)");
    }
    // Checked before the model loads, so a typo fails at once.
    let batches: Vec<usize> = a
        .gen_batches
        .split(',')
        .map(|s| {
            let s = s.trim();
            s.parse().ok().filter(|&b| b > 0).ok_or_else(|| {
                anyhow::anyhow!("--gen-batches: `{s}` is not a positive whole number")
            })
        })
        .collect::<Result<_>>()?;
    let mut figures = serde_json::json!({ "load_before": loadavg(), "device": a.dev.device, "dtype": a.dev.dtype });
    println!("load average before: {}", loadavg());
    if what.contains(&"matmul") {
        let (m, k, n) = (2048, 576, 1536);
        let x = Tensor::randn(0f32, 1.0, (m, k), &device)?.to_dtype(dtype)?;
        let w = Tensor::randn(0f32, 1.0, (n, k), &device)?.to_dtype(dtype)?;
        let _ = x.matmul(&w.t()?)?;
        let reps = 20;
        let t0 = Instant::now();
        for _ in 0..reps {
            let y = x.matmul(&w.t()?)?;
            device.synchronize()?;
            drop(y);
        }
        let gflops = 2.0 * (m * k * n * reps) as f64 / t0.elapsed().as_secs_f64() / 1e9;
        println!("matmul {m}x{k} · {k}x{n}: {gflops:.1} GFLOP/s");
        figures["matmul_gflops"] = gflops.into();
    }
    let lm = r1_model::load(a.model.as_deref(), &device, dtype)?;
    println!(
        "model: {} ({} layers, hidden {}, vocab {})",
        lm.source.display(),
        lm.cfg.num_hidden_layers,
        lm.cfg.hidden_size,
        lm.cfg.vocab_size
    );
    if what.contains(&"decode") {
        figures["decode"] = super::bench_decode::run(&lm.model()?, &batches)?;
    }
    if what.contains(&"gen") {
        let model = lm.model()?;
        let tok = &lm.tokenizer;
        let mut rows = vec![];
        for &bs in &batches {
            let prompts: Vec<Vec<u32>> = (0..bs)
                .map(|i| {
                    let q = format!("What is {} + {}?", 10 + (i * 37) % 90, 10 + (i * 53) % 90);
                    let text = tok.apply_chat_template(
                        &[Message::new("system", SYSTEM), Message::new("user", &q)],
                        true,
                    )?;
                    tok.encode(&text, false)
                })
                .collect::<Result<_>>()?;
            let plen = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
            let params = SamplingParams {
                temperature: 0.7,
                top_p: 0.95,
                max_new_tokens: a.new_tokens,
                min_new_tokens: a.new_tokens,
                seed: 1,
                ..Default::default()
            };
            let mut engine = LocalEngine {
                model: &model,
                tokenizer: tok,
                on_tokens: None,
            };
            let t0 = Instant::now();
            let out = engine.generate(&prompts, 1, &params)?;
            let secs = t0.elapsed().as_secs_f64();
            let toks: usize = out.iter().flatten().map(|c| c.token_ids.len()).sum();
            let tps = toks as f64 / secs;
            println!("generate batch {bs:>3}: prompt {plen} tokens, {toks} new tokens in {secs:.2} s = {tps:.1} tokens/s");
            rows.push(serde_json::json!({"batch": bs, "prompt_len": plen, "new_tokens": toks, "seconds": secs, "tokens_per_s": tps}));
        }
        figures["generate"] = rows.into();
    }
    if what.contains(&"ops") {
        println!(
            "op profile of one training step at batch {} x {}:",
            a.train_batch, a.train_seq
        );
        figures["ops"] = super::bench_ops::run(&lm.cfg, a.train_batch, a.train_seq, &device)?;
    }
    if what.contains(&"train") {
        let trainable = Trainable::new(lm)?;
        let mut opt = AdamW::new(AdamWConfig::default(), trainable.vars.len());
        let (b, t) = (a.train_batch, a.train_seq);
        // Token ids spread over the vocabulary (ids 100..40100 on SmolLM2's 49k; the
        // whole vocabulary of a smaller model).
        let vocab = trainable.cfg.vocab_size;
        let (lo, span) = if vocab > 40100 {
            (100, 40000)
        } else {
            (0, vocab)
        };
        let ids: Vec<u32> = (0..b * t)
            .map(|i| ((i * 2654435761usize) % span + lo) as u32)
            .collect();
        let mut times = vec![];
        // Seconds since `t`, after the device has finished what was queued (GPU work is
        // asynchronous; on the CPU this is a plain clock read).
        let lap = |t: Instant| -> Result<f64> {
            device.synchronize()?;
            Ok(t.elapsed().as_secs_f64())
        };
        for step in 0..=a.train_steps {
            let t0 = Instant::now();
            let mut model = trainable.train_model()?;
            if a.gradient_checkpointing {
                model.enable_checkpointing();
            }
            let prompts: Vec<&[u32]> = (0..b).map(|r| &ids[r * t..r * t + 1]).collect();
            let comps: Vec<&[u32]> = (0..b).map(|r| &ids[r * t + 1..(r + 1) * t]).collect();
            let s = completion_logprobs(&model, &prompts, &comps, 1.0, Mode::Train, false)?;
            let loss = (s.logprobs.sum_all()? * (-1.0 / (b * (t - 1)) as f64))?;
            let fwd = lap(t0)?;
            let grads = model.backward(&loss)?;
            let bwd = lap(t0)? - fwd;
            opt.step(
                &trainable.vars,
                &r1_train::optim::grads_of(&trainable.vars, &grads),
                1e-5,
                1.0,
            )?;
            let secs = lap(t0)?;
            let loss = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            println!(
                "train step {step}{}: {secs:.2} s, {:.1} tokens/s, loss {loss:.3} (forward {fwd:.3} s, backward {bwd:.3} s, optimizer {:.3} s)",
                if step == 0 { " (warm-up)" } else { "" },
                (b * t) as f64 / secs,
                secs - fwd - bwd
            );
            if step > 0 {
                times.push(secs);
            }
        }
        let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
        println!(
            "train batch {b} x {t}: {:.1} tokens/s ({mean:.2} s per step)",
            (b * t) as f64 / mean
        );
        figures["train"] = serde_json::json!({"batch": b, "seq": t, "seconds": times, "tokens_per_s": (b * t) as f64 / mean});
    }
    let peak = peak_rss_mib();
    println!(
        "peak RSS: {peak:.0} MiB   load average after: {}",
        loadavg()
    );
    figures["peak_rss_mib"] = peak.into();
    if let Some(p) = a.json {
        std::fs::write(&p, serde_json::to_string_pretty(&figures)?)?;
    }
    Ok(())
}
