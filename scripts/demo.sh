#!/usr/bin/env bash
# Compile the bundled example model with aic, run it, and compare with onnxruntime.
source "$(dirname "$0")/env.sh"
python examples/demo.py "$@"
