//! `r1`: train language models to reason the DeepSeek-R1 way.

mod alloc;
mod cmd;
mod device;
mod prompts;
mod run_config;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "r1",
    version,
    about = "DeepSeek-R1-style reasoning RL for open models, in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sample completions from a model.
    Generate(cmd::generate::Args),
    /// Convert a model (GGUF or HF folder) to a Hugging Face folder.
    Convert(cmd::convert::Args),
    /// Benchmark generation, training and matmul throughput.
    Bench(cmd::bench::Args),
    /// Check predicted answers against references (JSONL {"gold", "pred"} per line).
    Verify(cmd::verify::Args),
    /// Score completions with reward functions (JSONL in, JSONL out).
    Reward(cmd::reward::Args),
    /// Evaluate on a JSONL benchmark: pass@1 over k samples, cons@k, pass@k.
    Eval(cmd::eval::Args),
    /// Rejection sampling: sample, verify, filter; write SFT-ready JSONL.
    Sample(cmd::sample::Args),
    /// R1-Zero: GRPO with rule-based rewards on a model (default: SmolLM2 on arithmetic).
    Zero(cmd::zero::Args),
    /// Supervised fine-tuning on JSONL (prompt/completion or chat messages).
    Sft(cmd::sft::Args),
    /// Distillation: a teacher's filtered traces fine-tune a student (resumable).
    Distill(cmd::distill::Args),
    /// DeepSeek-R1's four stages from one TOML file (resumable, with a report).
    Pipeline(cmd::pipeline::Args),
    /// Draw the charts of a run folder (reward, accuracy, length, reflection).
    Plot { dir: std::path::PathBuf },
    /// Install the default model into the local cache (done on first use otherwise).
    Setup,
}

fn main() {
    alloc::tune();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => cmd::generate::run(a),
        Command::Convert(a) => cmd::convert::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Sample(a) => cmd::sample::run(a),
        Command::Zero(a) => cmd::zero::run(a),
        Command::Sft(a) => cmd::sft::run(a),
        Command::Distill(a) => cmd::distill::run(a),
        Command::Pipeline(a) => cmd::pipeline::run(a),
        Command::Plot { dir } => r1_metrics::plot_command(&dir),
        Command::Setup => {
            r1_model::registry::install_default().map(|p| println!("{}", p.display()))
        }
        // These go on past bad lines; the exit status says whether any failed.
        Command::Verify(a) => cmd::verify::run(a).map(exit_unless),
        Command::Reward(a) => cmd::reward::run(a).map(exit_unless),
    };
    if let Err(e) = result {
        // One line, the whole cause chain, no backtrace.
        eprintln!("error: {}", one_line(&format!("{e:#}")));
        std::process::exit(1);
    }
}

fn exit_unless(ok: bool) {
    if !ok {
        std::process::exit(2);
    }
}

/// Folds a multi-line message (TOML errors point at the line with a caret) into one
/// line, dropping the backtrace candle appends to its messages when RUST_BACKTRACE is
/// set (frames look like `   0: candle_core::...`).
fn one_line(msg: &str) -> String {
    let is_frame = |l: &str| {
        let t = l.trim_start();
        t.split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            || t.starts_with("at ")
            || t == "stack backtrace:"
    };
    msg.lines()
        .take_while(|l| !is_frame(l))
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "|")
        .collect::<Vec<_>>()
        .join(" ")
}
