#!/usr/bin/env bash
# Checks an r1 built with `--features cuda` on a machine with a GPU, on the repo's tiny
# fixture models (no download): the GPU's greedy tokens and training losses agree with
# the CPU's, training and generation run in f32 and bf16, and a GRPO run on the GPU
# checkpoints and resumes.
#   R1=path/to/r1 OUT=/tmp/r1-smoke bash scripts/gpu/smoke.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
R1=${R1:?path to an r1 binary built with --features cuda}
OUT=${OUT:-/tmp/r1-smoke}
F=tests/fixtures/tiny-llama
mkdir -p "$OUT"
fail=0
check() { if "$@"; then echo "ok: $*"; else echo "FAILED: $*"; fail=1; fi; }

# Greedy decoding is deterministic, so the GPU must produce the CPU's tokens.
for dev in cpu cuda; do
  "$R1" generate --model "$F" --device "$dev" --raw --prompt "1 2 3 4" --prompt "a b" \
    --temperature 0 --max-new-tokens 24 --output "$OUT/greedy-$dev.jsonl" >"$OUT/greedy-$dev.log" 2>&1
  echo "greedy on $dev: exit $?"
done
completions() { python3 -c 'import json,sys; [print(json.loads(l)["completion"]) for l in open(sys.argv[1])]' "$1"; }
check diff <(completions "$OUT/greedy-cpu.jsonl") <(completions "$OUT/greedy-cuda.jsonl")

# Training on the GPU: the same losses as on the CPU (f32), and bf16 runs.
for dev in cpu cuda; do
  "$R1" bench --model "$F" --device "$dev" --what train --train-batch 2 --train-seq 32 \
    --train-steps 3 --json "$OUT/train-$dev.json" >"$OUT/train-$dev.log" 2>&1
  echo "train on $dev: exit $?"; grep "train step" "$OUT/train-$dev.log"
done
check diff <(grep -o 'loss [0-9.]*' "$OUT/train-cpu.log") <(grep -o 'loss [0-9.]*' "$OUT/train-cuda.log")
check "$R1" bench --model "$F" --device cuda --dtype bf16 --what matmul,gen,train --gen-batches 1,4 \
  --new-tokens 16 --train-batch 2 --train-seq 32 --train-steps 2
check "$R1" bench --model "$F" --device cuda --what gen,train --gradient-checkpointing --gen-batches 4 \
  --new-tokens 16 --train-batch 2 --train-seq 32 --train-steps 2

# GRPO on the GPU with activation checkpointing (the default), a checkpoint, and a resume.
rm -rf "$OUT/zero"
check "$R1" zero --model "$F" --device cuda --max-steps 2 --save-steps 1 --eval-steps 0 \
  --max-completion-length 16 --output "$OUT/zero"
check "$R1" zero --resume "$OUT/zero" --max-steps 3
check test "$(grep -c '"reward"' "$OUT/zero/metrics.jsonl")" -eq 3
exit $fail
