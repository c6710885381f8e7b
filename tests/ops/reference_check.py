"""Checks against onnx's ReferenceEvaluator, for ops or opsets onnxruntime has no CPU kernel for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from onnx.reference import ReferenceEvaluator

from tests.onnx_util import assert_close, node_model, run_interpreter


def check_reference(
    op_type: str,
    inputs: dict[str, np.ndarray],
    attrs: dict[str, Any] | None = None,
    outputs: Sequence[str] = ("y",),
    opset: int = 20,
    initializers: dict[str, np.ndarray] | None = None,
    input_names: Sequence[str] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> list[np.ndarray]:
    """Interpret a single-node model and compare every output with onnx's reference implementation."""
    model = node_model(op_type, inputs, outputs, attrs, opset, initializers, input_names)
    expected = ReferenceEvaluator(model).run(None, inputs)
    actual = run_interpreter(model, inputs)
    for name, a, e in zip(outputs, actual, expected):
        assert_close(a, np.asarray(e), rtol, atol, f"{op_type} output {name}")
    return actual
