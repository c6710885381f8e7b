"""Softmax, LogSoftmax and Hardmax along one axis (opset 13 semantics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..dims import dim_mul
from ..types import TensorType
from .common import norm_axis
from .conv import CONV_TYPES
from .registry import Attr, InferContext, OpDef, register


def _infer(ctx: InferContext) -> list[TensorType]:
    norm_axis(ctx, ctx.attrs["axis"], ctx.input(0).rank)
    return [ctx.input(0)]


def _shifted(x: np.ndarray, axis: int) -> np.ndarray:
    """x minus its maximum along axis, in float64."""
    wide = x.astype(np.float64)
    return wide - wide.max(axis=axis, keepdims=True)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(_shifted(x, axis))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    s = _shifted(x, axis)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def _hardmax(x: np.ndarray, axis: int) -> np.ndarray:
    first = np.expand_dims(np.argmax(x, axis=axis), axis)
    y = np.zeros_like(x)
    np.put_along_axis(y, first, 1, axis=axis)
    return y


def _define(name: str, fn: Callable[[np.ndarray, int], np.ndarray], per_element: int, doc: str) -> OpDef:
    def reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
        (x,) = inputs
        assert x is not None
        return [fn(x, attrs["axis"]).astype(x.dtype, copy=False)]

    return register(
        OpDef(
            name,
            _infer,
            reference,
            attrs={"axis": Attr("int", -1)},
            dtypes=CONV_TYPES,
            kind="reduction",
            flops=lambda ins, outs, attrs: dim_mul(per_element, outs[0].numel),
            doc=doc,
        )
    )


Softmax = _define("Softmax", _softmax, 5, "exp(x - max) / sum(exp(x - max)) along axis.")
LogSoftmax = _define("LogSoftmax", _log_softmax, 5, "x - max - log(sum(exp(x - max))) along axis.")
Hardmax = _define("Hardmax", _hardmax, 2, "1 at the first maximum along axis, 0 elsewhere.")
