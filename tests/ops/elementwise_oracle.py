"""Checking elementwise ops against onnxruntime for every dtype, kernel or not.

Where onnxruntime has a kernel for the node's dtypes, the aic interpreter is
compared with it directly. Where it has none (bfloat16 everywhere, float64 for
many math functions, int16 Max, bool Where...), onnxruntime runs the same node
on wider copies of the inputs (16-bit floats and float64 -> float32, narrow
ints -> int32/int64, bool -> uint8; `widen` adds to these) and its outputs are converted back to the
output type that ONNX type inference gives the original node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np
import onnx
from aic.ir import DType
from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNotImplemented

from tests.onnx_util import assert_close, node_model, run_interpreter, run_ort

OPSET = 28  # aic ops follow the newest ONNX semantics
BF16 = np.dtype(ml_dtypes.bfloat16)
VIA = {
    np.dtype(np.float16): np.float32,
    BF16: np.float32,
    np.dtype(np.float64): np.float32,
    np.dtype(np.int8): np.int32,
    np.dtype(np.int16): np.int32,
    np.dtype(np.uint8): np.int32,
    np.dtype(np.uint16): np.int32,
    np.dtype(np.uint32): np.int64,
    np.dtype(np.uint64): np.int64,
    np.dtype(np.bool_): np.uint8,
}
# (rtol, atol) by output dtype: about two units in the last place for 16-bit floats.
TOLERANCE = {
    np.dtype(np.float16): (2e-3, 2e-3),
    BF16: (1e-2, 1e-2),
    np.dtype(np.float32): (1e-5, 1e-6),
    np.dtype(np.float64): (1e-12, 1e-12),
}
VIA_FLOAT32_TOLERANCE = (1e-5, 1e-6)  # float64 checked against onnxruntime's float32 kernel
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0]


def data(rng: np.random.Generator, dtype: DType, shape: Sequence[int], low=-4.0, high=4.0, special=True):
    """Random values of `dtype` in [low, high) (clipped to integer ranges); floats start with
    NaN, +-inf and +-0 when `special` and there is room."""
    if dtype is DType.bool:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.is_int:
        info = np.iinfo(dtype.numpy)
        lo, hi = max(int(low), info.min), min(int(high), info.max)
        return np.asarray(rng.integers(lo, hi, shape, dtype=dtype.numpy, endpoint=True))
    x = np.asarray(rng.uniform(low, high, shape))
    if special and x.size >= len(SPECIAL):
        x.reshape(-1)[: len(SPECIAL)] = SPECIAL
    return x.astype(dtype.numpy)


def _output_dtypes(model: onnx.ModelProto) -> list[np.dtype]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    return [onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type) for o in inferred.graph.output]


def _widen(arrays: dict[str, np.ndarray], keep: Sequence[str], via: dict) -> dict[str, np.ndarray]:
    return {n: a if n in keep else a.astype(via.get(a.dtype, a.dtype)) for n, a in arrays.items()}


def check(
    op: str,
    inputs: dict[str, np.ndarray],
    attrs: dict[str, Any] | None = None,
    *,
    initializers: dict[str, np.ndarray] | None = None,
    input_names: Sequence[str] | None = None,
    outputs: Sequence[str] = ("y",),
    opset: int = OPSET,
    rtol: float | None = None,
    atol: float | None = None,
    keep: Sequence[str] = (),
    widen: dict[np.dtype, type] | None = None,
) -> list[np.ndarray]:
    """Compare the aic interpreter with onnxruntime on one node (see the module docstring);
    inputs named in `keep` are never widened (a Where condition)."""
    via = {**VIA, **(widen or {})}
    initializers = initializers or {}
    model = node_model(op, inputs, outputs, attrs, opset, initializers, input_names)
    widened = False
    try:
        if any(a.dtype == BF16 for a in (*inputs.values(), *initializers.values())):
            raise OrtNotImplemented("onnxruntime's Python API takes no bfloat16 arrays")
        expected = run_ort(model, inputs)
    except OrtNotImplemented:
        wide_inputs, wide_inits = _widen(inputs, keep, via), _widen(initializers, keep, via)
        wide_model = node_model(op, wide_inputs, outputs, attrs, opset, wide_inits, input_names)
        expected = [e.astype(d) for e, d in zip(run_ort(wide_model, wide_inputs), _output_dtypes(model))]
        widened = True
    actual = run_interpreter(model, inputs)
    assert len(actual) == len(expected)
    for name, a, e in zip(outputs, actual, expected):
        tol = TOLERANCE.get(e.dtype, (0, 0))
        if widened and e.dtype == np.float64:
            tol = VIA_FLOAT32_TOLERANCE
        assert_close(a, e, tol[0] if rtol is None else rtol, tol[1] if atol is None else atol, f"{op} output {name}")
    return actual
