#!/usr/bin/env bash
# r1 beside the peer (transformers / TRL, ../shared/peer-bench) in one sitting.
#   PY=/path/to/python-with-torch-transformers-trl bash scripts/bench-side-by-side.sh [gen train grpo]
# Needs the peer's HF copy of the model at /tmp/peer/smollm2-135m-instruct-hf
# (../shared/peer-bench/convert_model.py makes it). Run on an idle machine (`uptime`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-/tmp/peer/venv/bin/python}
PEER=${PEER:-../shared/peer-bench}
R1=${R1:-${CARGO_TARGET_DIR:-target}/release/r1}
OUT=${OUT:-/tmp/r1-bench}
WHAT=${*:-gen train grpo}
mkdir -p "$OUT"
export PEER_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
echo "load before: $(cat /proc/loadavg)" | tee "$OUT/load.txt"
has() { [[ " $WHAT " == *" $1 "* ]]; }
if has gen; then
  "$R1" bench --what matmul,decode,gen --json "$OUT/r1-gen.json" 2>&1 | tee "$OUT/r1-gen.log"
  (cd "$PEER" && "$PY" bench_generate.py 1,8,32 2) 2>&1 | tee "$OUT/peer-gen.log"
fi
if has train; then
  "$R1" bench --what train --train-steps 3 --json "$OUT/r1-train.json" 2>&1 | tee "$OUT/r1-train.log"
  "$R1" bench --what train --train-steps 3 --gradient-checkpointing --json "$OUT/r1-train-ckpt.json" 2>&1 | tee "$OUT/r1-train-ckpt.log"
  (cd "$PEER" && /usr/bin/time -v "$PY" bench_train.py 3 1) 2>&1 | tee "$OUT/peer-train.log"
fi
if has grpo; then
  rm -rf "$OUT/r1-grpo"
  /usr/bin/time -v "$R1" zero --config configs/grpo-peer-match.toml --output "$OUT/r1-grpo" 2>&1 | tee "$OUT/r1-grpo.log"
  # The same with r1's default activation checkpointing (the memory-lean setting).
  rm -rf "$OUT/r1-grpo-ckpt"
  sed 's/^gradient_checkpointing = false/gradient_checkpointing = true/' configs/grpo-peer-match.toml > "$OUT/grpo-ckpt.toml"
  /usr/bin/time -v "$R1" zero --config "$OUT/grpo-ckpt.toml" --output "$OUT/r1-grpo-ckpt" 2>&1 | tee "$OUT/r1-grpo-ckpt.log"
  (cd "$PEER" && /usr/bin/time -v "$PY" grpo_run.py --beta 0.04 --lr 1e-5 --steps 2 --tag side_by_side --outdir "$OUT/peer-grpo") 2>&1 | tee "$OUT/peer-grpo.log"
fi
echo "load after: $(cat /proc/loadavg)" | tee -a "$OUT/load.txt"
