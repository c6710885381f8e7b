"""Decomposing sequence-model ONNX ops into aic primitives: the shared emitter,
and the KV-cache update TensorScatter.

`Emit` writes one ONNX node's decomposition through its `ConvertContext`. An
op whose inputs are all constants is evaluated at once (through its reference
semantics) and becomes a constant, so a decomposition written once gives
constant masks, DFT matrices or windows when sizes are static and primitive
ops computing them at run time otherwise. The other decompositions live in
decompose_attention.py, decompose_rnn.py and decompose_spectral.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aic.ir import DType, Value, get_op

from .converters import ConvertContext, converter


class Emit:
    """Emits the aic ops of one ONNX node's decomposition, folding constant ones
    (those whose results have at most `fold_limit` elements, when given)."""

    def __init__(self, ctx: ConvertContext, fold_limit: int | None = None) -> None:
        self.ctx = ctx
        self.fold_limit = fold_limit

    def op(self, op: str, *inputs: Value | None, **attrs: Any) -> Value:
        """An intermediate single-output op (a constant when its inputs are)."""
        folded = self._fold(op, inputs, attrs)
        if folded is not None:
            return self.ctx.const(folded, op.lower())
        return self.ctx.op(op, *inputs, **attrs)

    def out(self, k: int, op: str, *inputs: Value | None, **attrs: Any) -> Value:
        """Like `op`, giving the ONNX node's `k`-th output (named like it)."""
        folded = self._fold(op, inputs, attrs)
        if folded is not None:
            name = self.ctx.output_names[k] or self.ctx.names.invent(f"{self.ctx.name}_out{k}")
            return self.ctx.builder.const(folded, name)
        return self.ctx.emit(op, list(inputs), attrs, first=k)[0]

    def split(self, x: Value, parts: int, axis: int = -1) -> list[Value]:
        """`x` cut into `parts` equal pieces along `axis`."""
        folded = self._fold("Split", (x,), {"axis": axis, "num_outputs": parts}, parts)
        if folded is not None:
            return [self.ctx.const(a, "split") for a in folded]
        return self.ctx.emit("Split", [x], {"axis": axis, "num_outputs": parts}, num_outputs=parts, final=False)

    def const(self, array: Any, dtype: Any = None, hint: str = "c") -> Value:
        return self.ctx.const(array, hint, dtype=dtype)

    def ints(self, values: list[int]) -> Value:
        return self.ctx.ints(values)

    def scalar(self, value: float | int, like: Value | np.dtype | type) -> Value:
        """A 0-d constant of `like`'s element type (a Value's, or a numpy dtype)."""
        dtype = like.type.dtype.numpy if isinstance(like, Value) else like
        return self.ctx.const(np.asarray(value, dtype=dtype), "scalar")

    def size(self, x: Value, axis: int) -> Value:
        """Dim `axis` of `x` as an int64 scalar (a constant when static)."""
        axis %= x.type.rank
        d = x.type.shape[axis]
        if isinstance(d, int):
            return self.scalar(d, np.int64)
        return self.op("Squeeze", self.op("Shape", x, start=axis, end=axis + 1))

    def shape(self, x: Value) -> Value:
        """The shape of `x` as an int64 vector (a constant when static)."""
        if all(isinstance(d, int) for d in x.type.shape):
            return self.ints(list(x.type.shape))
        return self.op("Shape", x)

    def arange(self, n: Value | int, dtype: Any = np.int64) -> Value:
        """0, 1, ..., n-1 (n an int or an int64 scalar Value)."""
        limit = self.scalar(n, np.int64) if isinstance(n, int) else n
        values = self.op("Range", self.scalar(0, np.int64), limit, self.scalar(1, np.int64))
        return values if np.dtype(dtype) == np.int64 else self.cast(values, dtype)

    def cast(self, x: Value, dtype: Any) -> Value:
        """`x` converted to a numpy element type (unchanged if it has it)."""
        if x.type.dtype.numpy == np.dtype(dtype):
            return x
        return self.op("Cast", x, to=DType.from_numpy(np.dtype(dtype)).onnx)

    def _fold(self, op: str, inputs: tuple[Value | None, ...], attrs: dict[str, Any], count: int = 1) -> Any:
        if not inputs or any(v is not None and v.const is None for v in inputs):
            return None
        opdef = get_op(op)
        checked = opdef.check_attrs(attrs, self.ctx.name)
        arrays = [v.const if v is not None else None for v in inputs]
        while arrays and arrays[-1] is None:
            arrays.pop()
        results = opdef.reference(arrays, checked)
        if self.fold_limit is not None and any(r.size > self.fold_limit for r in results):
            return None
        return results[0] if count == 1 else results


# TensorScatter --------------------------------------------------------------


@converter("TensorScatter", 24)
def tensor_scatter(ctx: ConvertContext) -> list[Value]:
    """Write `update` into the cache along `axis`, from each batch's write index
    (0 without `write_indices`; modulo the cache length in circular mode): a
    ScatterElements whose indices are write index + position in the update."""
    e = Emit(ctx)
    past, update, write = ctx.inputs[0], ctx.inputs[1], ctx.input(2)
    rank = past.type.rank
    axis = ctx.attrs.get("axis", -2)
    if not -rank <= axis < rank or axis % rank == 0:
        raise ctx.error(f"axis {axis} must name a non-batch dim of {past.type}")
    axis %= rank
    if update.type.rank != rank:
        raise ctx.error(f"update {update.type} must have the rank of the cache {past.type}")
    along = [1] * rank
    along[axis] = -1
    position = e.op("Reshape", e.arange(e.size(update, axis)), e.ints(along))
    if write is not None:
        position = e.op("Add", position, e.op("Reshape", write, e.ints([-1] + [1] * (rank - 1))))
    if ctx.attrs.get("mode", "linear") == "circular":
        position = e.op("Mod", position, e.size(past, axis))
    indices = e.op("Expand", position, e.shape(update))
    return [e.out(0, "ScatterElements", past, indices, update, axis=axis)]
