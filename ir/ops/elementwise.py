"""Elementwise ops: arithmetic, math functions, comparisons, logic."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..dtypes import NUMERIC_TYPES, DType
from .common import broadcast_infer, check_same_dtype, output_numel_flops, same_as_input
from .registry import InferContext, OpDef, register


def binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], dtypes=NUMERIC_TYPES, doc: str = "") -> OpDef:
    def infer(ctx: InferContext):
        check_same_dtype(ctx, 0, 1)
        return broadcast_infer()(ctx)

    def reference(inputs, attrs):
        a, b = inputs
        return [np.asarray(fn(a, b)).astype(a.dtype, copy=False)]

    return register(
        OpDef(
            name,
            infer,
            reference,
            inputs=(2, 2),
            dtypes=frozenset(dtypes),
            kind="elementwise",
            flops=output_numel_flops,
            doc=doc,
        )
    )


def unary(name: str, fn: Callable[[np.ndarray], np.ndarray], dtypes=NUMERIC_TYPES, doc: str = "") -> OpDef:
    def reference(inputs, attrs):
        (x,) = inputs
        return [np.asarray(fn(x)).astype(x.dtype, copy=False)]

    return register(
        OpDef(
            name,
            same_as_input,
            reference,
            dtypes=frozenset(dtypes),
            kind="elementwise",
            flops=output_numel_flops,
            doc=doc,
        )
    )


Add = binary("Add", np.add)
Relu = unary(
    "Relu",
    lambda x: np.maximum(x, np.zeros((), x.dtype)),
    dtypes={d for d in NUMERIC_TYPES if d.is_signed} - {DType.bfloat16},
)
