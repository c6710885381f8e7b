#!/usr/bin/env bash
# Wheels for scripts/gpu_check.sh on a GPU machine without network: aic itself (pure Python) and
# the Python packages its cuda target and GPU tests need beyond what such a machine has
# (numpy, torch, cupy). No llvmlite: the cuda target does not use LLVM. Written to gpu_wheels/.
#   scripts/gpu_wheels.sh [PYTHON_VERSION]    (default 3.12: the GPU machine's interpreter)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYVER="${1:-3.12}"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
rm -rf gpu_wheels && mkdir gpu_wheels
"$PY" -m pip wheel -q --no-deps -w gpu_wheels .
"$PY" -m pip download -q --only-binary=:all: --no-deps --python-version "$PYVER" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_28_x86_64 -d gpu_wheels \
  onnx protobuf ml_dtypes typing_extensions rich markdown-it-py mdurl pygments \
  pytest iniconfig pluggy packaging pytest-xdist execnet onnxruntime flatbuffers
du -sh gpu_wheels
