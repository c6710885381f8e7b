"""Single-node ONNX models lowered to loop IR and evaluated by the loop evaluator, against onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from aic.compiler.program import build_program
from aic.frontend.onnx import load_model
from aic.ir import Graph, verify
from aic.ir.loop import Program
from aic.ir.loop_eval import run_program

from tests.onnx_util import assert_close, node_model, run_ort


def lower(graph: Graph) -> Program:
    verify(graph)
    return build_program(graph, "llvm -mtriple=x86_64-unknown-linux-gnu -mcpu=haswell -mattr=+avx2,+fma")


def check_lowered(
    op_type: str,
    inputs: dict[str, np.ndarray],
    attrs: dict[str, Any] | None = None,
    outputs: Sequence[str] = ("y",),
    opset: int = 21,
    initializers: dict[str, np.ndarray] | None = None,
    input_names: Sequence[str] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> Program:
    """Lower a one-node model, run it with the loop evaluator, compare every output with onnxruntime."""
    model = node_model(op_type, inputs, outputs, attrs, opset, initializers, input_names)
    expected = run_ort(model, inputs)
    program = lower(load_model(model))
    actual = run_program(program, inputs)
    for name, a, e in zip(outputs, actual, expected):
        assert_close(a, e, rtol, atol, f"{op_type} output {name}")
    return program
