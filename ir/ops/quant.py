"""DynamicQuantizeLinear: uint8 quantization of a float32 tensor with its own range.

Kept as one op (the frontend decomposes the other quantization ops into primitives) because
its range is a reduction over the whole tensor that every element's quantization then reads:
as primitives it was three kernels (two reductions and the quantizer), as one op it is one
kernel that reads its input twice (compiler/lower/quant_dynamic.py).

Semantics (onnxruntime's, every step in float32): the range of x widened to include 0,
scale = (max - min) / 255 (1 when max == min), zero point = round(clip(-min / scale, 0, 255)),
y = clip(round(x / scale) + zero point, 0, 255), rounding halves to even.
"""

from __future__ import annotations

import numpy as np

from ..dims import Dim
from ..dtypes import DType
from ..types import TensorType
from .registry import InferContext, OpDef, register

F32 = np.float32


def _infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    return [TensorType(DType.uint8, t.shape), TensorType(DType.float32, ()), TensorType(DType.uint8, ())]


def dynamic_quantize(x: np.ndarray) -> tuple[np.ndarray, np.float32, np.uint8]:
    """(y, scale, zero point) of float32 `x` in float32 arithmetic, as onnxruntime computes them."""
    x = np.asarray(x, F32)
    hi = np.maximum(x.max(initial=F32(0)), F32(0)) if x.size else F32(0)
    lo = np.minimum(x.min(initial=F32(0)), F32(0)) if x.size else F32(0)
    scale = F32(1) if hi == lo else F32((hi - lo) / F32(255))
    zero = np.round(np.clip(F32(-lo) / scale, F32(0), F32(255)))
    y = np.clip(np.round(x / scale) + zero, F32(0), F32(255))
    return y.astype(np.uint8), F32(scale), np.uint8(zero)


def _reference(inputs, attrs):
    y, scale, zero = dynamic_quantize(inputs[0])
    return [y, np.asarray(scale, F32), np.asarray(zero, np.uint8)]


def _flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict) -> Dim:
    return ins[0].numel  # type: ignore[union-attr]


register(
    OpDef(
        "DynamicQuantizeLinear",
        _infer,
        _reference,
        outputs=(3, 3),
        dtypes=frozenset({DType.float32}),
        kind="other",
        flops=_flops,
        doc="uint8 quantization with the range of x (widened to include 0): y, scale, zero point.",
    )
)
