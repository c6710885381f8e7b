"""Helpers shared by op definitions: broadcasting, axes, common inference rules."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..dims import Dim
from ..dtypes import DType
from ..types import TensorType
from .registry import InferContext


def broadcast_shapes(ctx: InferContext, *shapes: Sequence[Dim]) -> tuple[Dim, ...]:
    """Numpy-style multidirectional broadcasting of possibly symbolic shapes.

    A symbol against an int n > 1 resolves to n (the model promises they are
    equal); two different symbols keep the first.
    """
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = [s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0]
        result: Dim = 1
        for d in dims:
            if d == 1 or d == result:
                continue
            if result == 1:
                result = d
            elif isinstance(result, int) and isinstance(d, int):
                raise ctx.error(f"shapes {[list(s) for s in shapes]} do not broadcast")
            elif isinstance(result, str) and isinstance(d, int):
                result = d
        out.append(result)
    return tuple(out)


def norm_axis(ctx: InferContext, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def norm_axes(ctx: InferContext, axes: Sequence[int], rank: int) -> list[int]:
    out = [norm_axis(ctx, a, rank) for a in axes]
    if len(set(out)) != len(out):
        raise ctx.error(f"repeated axes {list(axes)}")
    return out


def same_as_input(ctx: InferContext) -> list[TensorType]:
    return [ctx.input(0)]


def broadcast_infer(dtype: DType | None = None):
    """Inference for broadcasting elementwise ops; output dtype is `dtype` or input 0's."""

    def infer(ctx: InferContext) -> list[TensorType]:
        types = [ctx.input(i) for i in range(len(ctx.types)) if ctx.has(i)]
        first = types[0].dtype
        return [TensorType(dtype or first, broadcast_shapes(ctx, *(t.shape for t in types)))]

    return infer


def check_same_dtype(ctx: InferContext, *indices: int) -> DType:
    dtypes = {ctx.input(i).dtype for i in indices if ctx.has(i)}
    if len(dtypes) > 1:
        raise ctx.error(f"inputs {list(indices)} must have one element type, got {sorted(d.name for d in dtypes)}")
    return dtypes.pop()


def output_numel_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict) -> Dim:
    return outs[0].numel


def as_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.asarray(array).astype(dtype, copy=False)
