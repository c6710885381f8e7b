#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (CUDA 13 driver, cupy-cuda13x, torch with CUDA,
# the aic[cuda] extra installed; no network needed): the GPU tests, then the benchmark of the
# five benchmark models at batch 1 and 32 against torch eager / torch.compile (and
# onnxruntime's CUDA provider if installed). Results go to ${1:-gpu_results}/.
#   scripts/gpu_check.sh [OUT_DIR]        (PYTHON=... to pick the interpreter)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-gpu_results}"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
mkdir -p "$OUT"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1; "$PY" --version; } \
  | tee "$OUT/machine.txt"
echo "== GPU tests" | tee "$OUT/tests.txt"
"$PY" -m pytest -q -rs tests/cuda 2>&1 | tee -a "$OUT/tests.txt"
tests=${PIPESTATUS[0]}
echo "== benchmark" | tee "$OUT/bench.txt"
"$PY" scripts/gpu_bench.py --out "$OUT/bench.json" 2>&1 | tee -a "$OUT/bench.txt"
bench=${PIPESTATUS[0]}
echo "results in $OUT/ (tests exit $tests, benchmark exit $bench)"
exit $(( tests != 0 || bench != 0 ))
