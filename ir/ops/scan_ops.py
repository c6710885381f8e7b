"""Running products along an axis: CumProd (the multiplicative CumSum).

Products accumulate in the element type, one multiplication at a time, as a
sequential kernel computes them (integers wrap around).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DType
from ..types import TensorType
from .common import norm_axis
from .registry import Attr, InferContext, OpDef, register
from .symbolic import int_values

CUMPROD_TYPES = frozenset(
    {DType.uint32, DType.uint64, DType.int32, DType.int64, DType.float16, DType.float32, DType.float64, DType.bfloat16}
)


def _cumprod_infer(ctx: InferContext) -> list[TensorType]:
    t, at = ctx.input(0), ctx.input(1)
    if at.dtype not in (DType.int32, DType.int64) or at.numel != 1:
        raise ctx.error("axis must be a one-element int32 or int64 tensor")
    if t.rank == 0:
        raise ctx.error("input must have rank >= 1")
    axis = int_values(ctx, 1)
    if axis is not None:
        norm_axis(ctx, axis[0], t.rank)
    return [t]


def _cumprod_ref(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, at = inputs[0], inputs[1]
    assert x is not None and at is not None
    axis = int(at.reshape(-1)[0]) % x.ndim
    y = np.flip(x, axis) if attrs["reverse"] else x
    if attrs["exclusive"] and y.shape[axis]:  # shift by one: a leading 1, the last element dropped
        ones = np.ones_like(np.take(y, [0], axis=axis))
        y = np.concatenate([ones, np.take(y, np.arange(y.shape[axis] - 1), axis=axis)], axis=axis)
    with np.errstate(over="ignore"):
        total = np.multiply.accumulate(y, axis=axis, dtype=x.dtype)
    return [np.ascontiguousarray(np.flip(total, axis) if attrs["reverse"] else total)]


register(
    OpDef(
        "CumProd",
        _cumprod_infer,
        _cumprod_ref,
        attrs={"exclusive": Attr("int", 0, (0, 1)), "reverse": Attr("int", 0, (0, 1))},
        inputs=(2, 2),
        dtypes=CUMPROD_TYPES,
        flops=lambda ins, outs, attrs: outs[0].numel,
        doc="Running product along `axis` (exclusive: shifted by one, starting at 1; reverse: from the end).",
    )
)
