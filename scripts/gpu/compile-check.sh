#!/usr/bin/env bash
# Compiles r1's CUDA kernels as kernels/cuda.rs does at run time (one NVRTC source:
# cuda_common.cuh, cuda_kernels.cu, cuda_attention.cu) and assembles the PTX for a GPU
# architecture with ptxas, printing each kernel's registers, shared memory and spills.
# Needs no GPU and no CUDA toolkit: NVRTC and ptxas come from NVIDIA's PyPI wheels.
#   bash scripts/gpu/compile-check.sh [sm_90]      (WORK=/tmp/r1-cuda-wheels by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=${1:-sm_90}
WORK=${WORK:-/tmp/r1-cuda-wheels}
CU=$WORK/wheels/nvidia/cu13
if [ ! -x "$CU/bin/ptxas" ]; then
  pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$WORK/whl" \
    "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-nvrtc==13.0.*"
  for f in "$WORK"/whl/*.whl; do unzip -qo "$f" -d "$WORK/wheels"; done
fi
K=crates/r1-model/src/kernels
cat $K/cuda_common.cuh $K/cuda_kernels.cu $K/cuda_attention.cu >"$WORK/r1.cu"
LD_LIBRARY_PATH=$CU/lib python3 - "$CU/lib/libnvrtc.so.13" "$WORK/r1.cu" "$WORK/r1.ptx" <<'PY'
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
prog = ctypes.c_void_p()
src = open(sys.argv[2], "rb").read()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"r1.cu", 0, None, None) == 0
rc = lib.nvrtcCompileProgram(prog, 0, None)  # cuda.rs passes no options either
n = ctypes.c_size_t()
lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
log = ctypes.create_string_buffer(n.value)
lib.nvrtcGetProgramLog(prog, log)
if log.value.strip():
    print(log.value.decode())
if rc != 0:
    sys.exit(f"NVRTC failed ({rc})")
lib.nvrtcGetPTXSize(prog, ctypes.byref(n))
ptx = ctypes.create_string_buffer(n.value)
lib.nvrtcGetPTX(prog, ptx)
open(sys.argv[3], "wb").write(ptx.value)
print(f"NVRTC: compiled, {n.value} bytes of PTX")
PY
"$CU/bin/ptxas" -arch="$ARCH" -v "$WORK/r1.ptx" -o "$WORK/r1.cubin" 2>&1 | python3 -c '
import re, sys
name = None
print("%-32s %9s %9s %9s" % ("kernel", "registers", "shared B", "spilled B"))
for line in sys.stdin:
    m = re.search(r"entry function .(\w+).", line)
    if m:
        name, spill = m.group(1), 0
        continue
    s = re.findall(r"(\d+) bytes spill", line)
    if s:
        spill = sum(map(int, s))
    m = re.search(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?", line)
    if m and name:
        print("%-32s %9s %9s %9s" % (name, m.group(1), m.group(2) or 0, spill))
        name = None
'
