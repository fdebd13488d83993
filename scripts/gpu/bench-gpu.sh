#!/usr/bin/env bash
# r1 beside the peer (transformers / PyTorch / TRL) on one NVIDIA GPU, in one sitting:
# generation at batch 1/8/32, training 8 x 256 and the GRPO step of configs/grpo-peer-match.toml.
#   R1=path/to/r1-built-with-cuda PEER=../shared/peer-bench MODEL_DIR=hf-folder \
#     OUT=/tmp/r1-gpu bash scripts/gpu/bench-gpu.sh [gen train grpo flash]
# `flash` checks and times the fused GPU attention against cuBLAS around the softmax.
# MODEL_DIR is the peer's Hugging Face copy of SmolLM2-135M-Instruct (peer-bench's
# convert_model.py makes it); r1 reads its default GGUF from $R1_HOME/models.
# Peak GPU memory is what nvidia-smi reports for the whole device, sampled every 100 ms
# (the same yardstick for both sides); the peer also prints torch's own allocator peak.
set -uo pipefail
cd "$(dirname "$0")/../.."
R1=${R1:?path to an r1 binary built with --features cuda}
PEER=${PEER:-../shared/peer-bench}
MODEL_DIR=${MODEL_DIR:?the peer Hugging Face model folder}
PY=${PY:-python3}
OUT=${OUT:-/tmp/r1-gpu}
DTYPES=${DTYPES:-bf16 f32}
WHAT=${*:-gen train grpo}  # `flash` only when asked
mkdir -p "$OUT"
export PEER MODEL_DIR PEER_MODEL_DIR=$MODEL_DIR HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
has() { [[ " $WHAT " == *" $1 "* ]]; }

# run NAME CMD...: runs CMD with its output in $OUT/NAME.log and the device's memory sampled.
run() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$OUT/$name.mem" 2>/dev/null &
  local sampler=$!
  local t0=$SECONDS
  "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  local base peak
  base=$(head -1 "$OUT/$name.mem"); peak=$(sort -n "$OUT/$name.mem" | tail -1)
  echo "== $name: exit $rc, $((SECONDS - t0)) s, GPU memory peak ${peak:-?} MiB (idle ${base:-?} MiB)" | tee -a "$OUT/summary.txt"
}

for dt in $DTYPES; do
  if has gen; then
    run "r1-gen-$dt" "$R1" bench --device cuda --dtype "$dt" --what matmul,gen --json "$OUT/r1-gen-$dt.json"
    run "peer-gen-$dt" "$PY" scripts/gpu/peer_gpu.py gen "$dt"
  fi
  if has train; then
    run "r1-train-$dt" "$R1" bench --device cuda --dtype "$dt" --what train --train-steps 5 --json "$OUT/r1-train-$dt.json"
    run "peer-train-$dt" "$PY" scripts/gpu/peer_gpu.py train "$dt"
  fi
done
if has flash; then
  # The fused GPU attention (opt-in, R1_CUDA_FLASH_ATTENTION=1) against cuBLAS around the
  # fused softmax: its kernel test, one layer's attention forward + backward, and whole
  # training steps, each way in one sitting.
  run flash-test env R1_CUDA_FLASH_ATTENTION=1 cargo test --release --features cuda -p r1-model --test cuda_kernels
  for dt in $DTYPES; do
    run "r1-ops-$dt-flash" env R1_CUDA_FLASH_ATTENTION=1 "$R1" bench --device cuda --dtype "$dt" --what ops --json "$OUT/r1-ops-$dt-flash.json"
    for way in cublas flash cublas flash; do
      flag=0; [ "$way" = flash ] && flag=1
      run "r1-train-$dt-$way" env R1_CUDA_FLASH_ATTENTION=$flag "$R1" bench --device cuda --dtype "$dt" --what train --train-steps 5 --json "$OUT/r1-train-$dt-$way.json"
    done
  done
fi
if has grpo; then
  # f32 on both sides, as on the CPU: the same recipe, only the device changes.
  rm -rf "$OUT/r1-grpo"
  run r1-grpo "$R1" zero --config configs/grpo-peer-match.toml --device cuda --max-steps 3 --output "$OUT/r1-grpo"
  cp "$OUT/r1-grpo/metrics.jsonl" "$OUT/r1-grpo-metrics.jsonl" 2>/dev/null
  sed -e 's/use_cpu=True/use_cpu=False/' "$PEER/grpo_run.py" >"$PEER/grpo_run_gpu.py"
  run trl-grpo bash -c "cd '$PEER' && '$PY' grpo_run_gpu.py --beta 0.04 --lr 1e-5 --steps 3 --tag gpu --outdir '$OUT/trl-grpo'"
fi
cat "$OUT/summary.txt"
