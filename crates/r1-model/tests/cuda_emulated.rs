//! r1's CUDA kernels (`src/kernels/cuda_*.cu`), run on the CPU.
//!
//! CI has no GPU, and a kernel's indexing, masking, reductions and backward formulas
//! are where its bugs live. `cuda_emulated/cuda_emu.h` is just enough of CUDA to run the
//! kernel source unchanged under the host C++ compiler: every thread of a block is a
//! fiber, `__syncthreads` and warp shuffles are barriers, and the warps take turns in a
//! random order, so a missing barrier shows up as a wrong result (or a deadlock).
//! Two checks launch the kernels as `kernels/cuda.rs` does and compare them with their
//! formulas computed directly in f64, in f32 (to 2e-5) and bf16 (to 4e-2):
//! - `attention_check.cpp`: the fused attention (`cuda_attention.cu`), output and all
//!   three gradients, over causal, left-padded, cached-prefix, shared-mask and
//!   unmasked cases and both head dims;
//! - `kernels_check.cpp`: RMSNorm, RoPE with the head split, the attention softmax,
//!   SwiGLU (each forward and backward) and AdamW (`cuda_kernels.cu`).
//!
//! On a GPU, `tests/cuda_kernels.rs` checks the compiled kernels against the CPU's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Two schedules and data sets each.
const SEEDS: [&str; 2] = ["1", "7"];

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cuda_emulated")
}

/// Compiles `source` (in `cuda_emulated/`) with the host C++ compiler.
fn build(source: &str) -> PathBuf {
    let exe = std::env::temp_dir().join(format!(
        "r1-{}-{}",
        source.trim_end_matches(".cpp"),
        std::process::id()
    ));
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    let built = Command::new(&cxx)
        .args(["-std=c++20", "-O2", "-o"])
        .arg(&exe)
        .arg(here().join(source))
        .output()
        .unwrap_or_else(|e| panic!("running the C++ compiler `{cxx}` (set CXX to pick one): {e}"));
    assert!(
        built.status.success(),
        "compiling {source} failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    exe
}

/// Runs `exe` once per seed, side by side; each run must pass all `cases` lines.
fn run_seeds(exe: &Path, cases: usize) {
    let runs: Vec<_> = SEEDS
        .iter()
        .map(|seed| {
            let child = Command::new(exe)
                .arg(seed)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("running the check");
            (seed, child)
        })
        .collect();
    for (seed, child) in runs {
        let run = child.wait_with_output().expect("running the check");
        let out = String::from_utf8_lossy(&run.stdout);
        println!("seed {seed}:\n{out}");
        assert!(
            run.status.success(),
            "seed {seed}: the emulated kernels differ from their formulas:\n{out}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(out.matches(" ok").count(), cases, "{out}");
    }
    let _ = std::fs::remove_file(exe);
}

#[test]
fn cuda_attention_kernels_match_the_formulas_under_emulation() {
    // 5 cases × f32, bf16.
    run_seeds(&build("attention_check.cpp"), 10);
}

#[test]
fn cuda_elementwise_kernels_match_the_formulas_under_emulation() {
    // RMSNorm, RoPE, two softmaxes, SwiGLU, AdamW × f32, bf16.
    run_seeds(&build("kernels_check.cpp"), 12);
}

/// `kernels/cuda.rs` sizes its launches from copies of the kernels' tile constants (it
/// is compiled only with the `cuda` feature, so this reads both sources as text).
#[test]
fn the_launch_code_uses_the_kernels_tile_sizes() {
    let dir = here().join("../../src/kernels");
    let cu = std::fs::read_to_string(dir.join("cuda_attention.cu")).unwrap();
    let rs = std::fs::read_to_string(dir.join("cuda.rs")).unwrap();
    for name in ["FA_SUB", "FA_ROWS", "FA_KEY_ROWS"] {
        let value = |text: &str, prefix: &str| -> usize {
            let line = text
                .lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .unwrap_or_else(|| panic!("{prefix} not found"));
            line.trim()
                .trim_end_matches(';')
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{prefix}: no number in {line:?}"))
        };
        assert_eq!(
            value(&cu, &format!("#define {name} ")),
            value(&rs, &format!("const {name}: usize = ")),
            "{name} differs between cuda_attention.cu and cuda.rs"
        );
    }
}
