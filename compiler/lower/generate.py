"""Lowering of ops that generate values: Constant, ConstantOfShape, EyeLike, Range, Shape, Size.

With static shapes, Shape and Size are compile-time constants; Constant becomes a weight.
"""

from __future__ import annotations

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Bin, Cast, Expr
from aic.ir.loop_tools import binop, select
from aic.ir.ops.generate import constant_value

from .core import ComputeTensor, ConstTensor, LowerCtx, Tensor, cdtype, const, idx, node_error
from .mathx import add, mul
from .sizes import shape_of, size_prod
from .table import compute


def _constant(ctx: LowerCtx, node: Node, array: np.ndarray) -> Tensor:
    t = node.outputs[0].type
    if array.size == 1:
        return ConstTensor(shape_of(t), t.dtype, array.reshape(-1)[0].item())
    return ctx.weight(np.ascontiguousarray(array.astype(t.dtype.numpy)).reshape(shape_of(t)), "k")


@compute("Constant", cheap=True)
def _constant_op(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    value = constant_value(node.attrs)
    if value is None:
        raise node_error(node, "needs exactly one value attribute")
    return [_constant(ctx, node, np.asarray(value))]


@compute("Shape", "Size", cheap=True)
def _shape(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    shape = shape_of(node.inputs[0].type)  # type: ignore[union-attr]
    if node.op == "Size":
        return [_constant(ctx, node, np.array(size_prod(shape), np.int64))]
    dims = np.array(shape[node.attrs.get("start", 0):node.attrs.get("end")], np.int64)
    return [_constant(ctx, node, dims)]


@compute("ConstantOfShape", cheap=True)
def _constant_of_shape(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    value = node.attrs.get("value")
    t = node.outputs[0].type
    fill = 0 if value is None else np.asarray(value).reshape(-1)[0].item()
    return [ConstTensor(shape_of(t), t.dtype, fill)]


@compute("EyeLike", cheap=True)
def _eye_like(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    t = node.outputs[0].type
    k = node.attrs.get("k", 0)

    def at(index: list[Expr]) -> Expr:
        on = Bin("eq", binop("sub", index[1], index[0]), idx(k))
        return select(on, const(1, t.dtype), const(0, t.dtype))

    return [ComputeTensor(shape_of(t), t.dtype, at)]


@compute("Range", cheap=True)
def _range(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    start, delta = ins[0], ins[2]
    assert start is not None and delta is not None
    t = node.outputs[0].type
    wide = t.dtype in (DType.float16, DType.bfloat16) and node.attrs.get("stash_type", 1) == 1
    dt = DType.float32 if wide else cdtype(t.dtype)

    def scalar(x: Tensor) -> Expr:
        v = x.at([idx(0)] * x.rank)
        return v if v.dtype == dt else Cast(dt, v)

    def at(index: list[Expr]) -> Expr:
        step = index[0] if dt == index[0].dtype else Cast(dt, index[0])
        return add(scalar(start), mul(step, scalar(delta)))

    return [ComputeTensor(shape_of(t), t.dtype, at)]
