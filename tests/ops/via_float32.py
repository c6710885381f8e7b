"""Checks for dtypes that onnxruntime has no CPU kernel for."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.onnx_util import assert_close, node_model, run_interpreter, run_ort


def check_via_float32(
    op_type: str,
    inputs: dict[str, np.ndarray],
    attrs: dict[str, Any] | None = None,
    opset: int = 20,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    outputs: tuple[str, ...] = ("y",),
    initializers: dict[str, np.ndarray] | None = None,
    input_names: list[str] | None = None,
) -> None:
    """Interpret the node on `inputs` as given (e.g. float64) and compare with
    onnxruntime on the same node over float32 copies of the float inputs
    (`initializers` are used unchanged by both); the aic outputs must keep the
    input's element type."""
    narrow = {n: a.astype(np.float32) if a.dtype.kind == "f" else a for n, a in inputs.items()}
    expected = run_ort(node_model(op_type, narrow, outputs, attrs, opset, initializers, input_names), narrow)
    actual = run_interpreter(node_model(op_type, inputs, outputs, attrs, opset, initializers, input_names), inputs)
    wide = next(iter(inputs.values())).dtype
    for name, a, e in zip(outputs, actual, expected):
        want = e.astype(wide) if e.dtype == np.float32 else e
        assert_close(a, want, rtol, atol, f"{op_type} output {name}")
