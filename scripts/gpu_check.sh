#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (CUDA 13 driver, cupy-cuda13x, torch with CUDA,
# the aic[cuda] extra installed; no network needed): the GPU tests, then the benchmark of the
# five benchmark models at batch 1 and 32 against torch eager / torch.compile (and
# onnxruntime's CUDA provider if installed). Results go to ${1:-gpu_results}/. On a machine
# without network and without aic installed, first run scripts/gpu_wheels.sh where there is
# network and bring gpu_wheels/ along: what is missing is installed from it into .gpu_site/.
#   scripts/gpu_check.sh [OUT_DIR]        (PYTHON=... to pick the interpreter, JOBS=... test workers)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-gpu_results}"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
mkdir -p "$OUT"
# Without network: install what is missing from gpu_wheels/ (scripts/gpu_wheels.sh) into .gpu_site/.
if ! "$PY" -c "import aic, onnx, onnxruntime, pytest, xdist" 2>/dev/null && [ -d gpu_wheels ]; then
  "$PY" -m pip install -q --no-index --no-deps --find-links gpu_wheels --target .gpu_site gpu_wheels/*.whl \
    2>&1 | tail -3
  export PYTHONPATH="$ROOT/.gpu_site${PYTHONPATH:+:$PYTHONPATH}"
fi
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1; "$PY" --version; } \
  | tee "$OUT/machine.txt"
echo "== GPU tests" | tee "$OUT/tests.txt"
# -P and -p aic: the installed aic is imported before pytest puts the repository (with its aic/ folder) on sys.path
"$PY" -P -m pytest -q -rs -n "${JOBS:-8}" -p aic -p no:cacheprovider tests/cuda 2>&1 | tee -a "$OUT/tests.txt"
tests=${PIPESTATUS[0]}
echo "== benchmark" | tee "$OUT/bench.txt"
"$PY" -P scripts/gpu_bench.py --out "$OUT/bench.json" 2>&1 | tee -a "$OUT/bench.txt"
bench=${PIPESTATUS[0]}
echo "results in $OUT/ (tests exit $tests, benchmark exit $bench)"
exit $(( tests != 0 || bench != 0 ))
