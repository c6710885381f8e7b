"""Lowering of indexed reads and writes: Gather, GatherElements, GatherND, OneHot, Compress
(constant condition), ScatterElements, ScatterND.

Gathers are compute lowerings (an index load, then a data load). Negative indices count
from the end. An index out of range is an error (as ONNX says): a check before the
kernel's loops reports it through the error channel (checks.py) and the run fails naming
the node and the index; the loops clamp it, so a kernel never touches memory outside a
buffer. Scatters copy the data, apply the updates in order (duplicates reduce as ONNX
says, the loop stays serial), then write the result out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Bin, Buffer, Cast, Expr, Load, Stmt
from aic.ir.loop_tools import binop, select, seq

from .checks import check_indices
from .core import ComputeTensor, LowerCtx, Tensor, clamp, delinear, idx, linear, node_error, store
from .mathx import add, maximum, minimum, mul
from .sizes import shape_of, size_max
from .table import Emit, anchor, compute


def index_value(ctx: LowerCtx, t: Tensor, at: list[Expr], size: int) -> Expr:
    """An index element read from `t`, made non-negative and clamped into [0, size)."""
    raw = t.at(at)
    v = ctx.let(raw if raw.dtype == INDEX else Cast(INDEX, raw), "ix")
    return clamp(select(Bin("lt", v, idx(0)), binop("add", v, idx(size)), v), 0, size_max(size - 1, 0))


def _checked(ctx: LowerCtx, node: Node, indices: Tensor, sizes: list[int], axis: str) -> None:
    """Add the run-time range check of input 1 (the indices)."""
    v = node.inputs[1]
    name = v.name if v is not None else "indices"
    check_indices(ctx, node, indices, sizes, f"indices '{name}' ({axis})", constant=v.const if v is not None else None)


def _inputs(node: Node, ins: list[Tensor | None], n: int) -> list[Tensor]:
    out = []
    for i in range(n):
        t = ins[i] if i < len(ins) else None
        if t is None:
            raise node_error(node, f"input {i} is required")
        out.append(t)
    return out


@compute("Gather")
def _gather(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    data, indices = _inputs(node, ins, 2)
    axis = node.attrs.get("axis", 0) % data.rank
    out = node.outputs[0].type
    q = indices.rank
    _checked(ctx, node, indices, [data.shape[axis]], f"axis {axis} of size {data.shape[axis]}")

    def at(index: list[Expr]) -> Expr:
        j = index_value(ctx, indices, index[axis:axis + q], data.shape[axis])
        return data.at([*index[:axis], j, *index[axis + q:]])

    return [ComputeTensor(shape_of(out), out.dtype, at)]


@compute("GatherElements")
def _gather_elements(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    data, indices = _inputs(node, ins, 2)
    axis = node.attrs.get("axis", 0) % data.rank
    out = node.outputs[0].type
    _checked(ctx, node, indices, [data.shape[axis]], f"axis {axis} of size {data.shape[axis]}")

    def at(index: list[Expr]) -> Expr:
        j = index_value(ctx, indices, index, data.shape[axis])
        return data.at([j if a == axis else e for a, e in enumerate(index)])

    return [ComputeTensor(shape_of(out), out.dtype, at)]


@compute("GatherND")
def _gather_nd(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    data, indices = _inputs(node, ins, 2)
    b = node.attrs.get("batch_dims", 0)
    depth = indices.shape[-1]
    out = node.outputs[0].type
    lead = indices.rank - 1  # output axes taken from the indices
    _checked(ctx, node, indices, list(data.shape[b:b + depth]), f"axes {b}..{b + depth - 1} of {list(data.shape)}")

    def at(index: list[Expr]) -> Expr:
        picked = [index_value(ctx, indices, [*index[:lead], idx(d)], data.shape[b + d]) for d in range(depth)]
        return data.at([*index[:b], *picked, *index[lead:]])

    return [ComputeTensor(shape_of(out), out.dtype, at)]


@compute("OneHot")
def _one_hot(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    indices, _, values = _inputs(node, ins, 3)
    out = node.outputs[0].type
    shape = shape_of(out)
    axis = node.attrs.get("axis", -1) % len(shape)
    depth = shape[axis]

    def at(index: list[Expr]) -> Expr:
        raw = indices.at([*index[:axis], *index[axis + 1:]])
        v = ctx.let(Cast(INDEX, raw) if raw.dtype != INDEX else raw, "ix")
        v = select(Bin("lt", v, idx(0)), binop("add", v, idx(depth)), v)
        return select(Bin("eq", v, index[axis]), values.at([idx(1)]), values.at([idx(0)]))

    return [ComputeTensor(shape, out.dtype, at)]


@compute("Compress")
def _compress(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = _inputs(node, ins, 1)[0]
    cond = node.inputs[1].const if len(node.inputs) > 1 and node.inputs[1] is not None else None
    if cond is None:
        raise node_error(node, "the condition must be a constant: the output size would depend on data")
    out = node.outputs[0].type
    axis = node.attrs.get("axis")
    picks = np.nonzero(np.asarray(cond).reshape(-1))[0]
    length = x.numel if axis is None else x.shape[axis % x.rank]
    table = ctx.weight(picks[picks < length].astype(np.int64), "sel")

    def at(index: list[Expr]) -> Expr:
        if axis is None:
            return x.at(delinear(table.at([index[0]]), x.shape))
        a = axis % x.rank
        return x.at([table.at([e]) if k == a else e for k, e in enumerate(index)])

    return [ComputeTensor(shape_of(out), out.dtype, at)]


# ---------------------------------------------------------------- scatters


Target = Callable[[list[Expr]], tuple[Expr, str]]


def _reduce(kind: str, old: Expr, new: Expr) -> Expr:
    if kind == "add":
        return add(old, new)
    if kind == "mul":
        return mul(old, new)
    if kind == "max":
        return maximum(old, new)
    if kind == "min":
        return minimum(old, new)
    return new


def _scatter(ctx: LowerCtx, data: Tensor, emit: Emit, updates: Tensor, target: Target) -> Stmt:
    """Copy `data` to a scratch buffer, write each update at `target(update index)`, emit the result."""
    buf = ctx.scratch(data.dtype, data.numel)
    shape = data.shape
    copy = ctx.loops(shape, lambda i: store(buf, linear(i, shape), data.at(i)), "d")

    def apply(index: list[Expr]) -> Stmt:
        flat, kind = target(index)
        old = Load(buf, flat)
        old = Cast(DType.float32, old) if data.dtype in (DType.float16, DType.bfloat16) else old
        return store(buf, flat, _reduce(kind, old, updates.at(index)))

    writes = ctx.loops(updates.shape, apply, "u")
    out = ctx.loops(shape, lambda i: emit(0, i, _load(buf, data.dtype, linear(i, shape))), "o")
    return seq(copy, writes, out)


def _load(buf: Buffer, dtype: DType, flat: Expr) -> Expr:
    v = Load(buf, flat)
    return Cast(DType.float32, v) if dtype in (DType.float16, DType.bfloat16) else v


@anchor("ScatterElements", epilogue=False)
def _scatter_elements(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    data, indices, updates = _inputs(node, ins, 3)
    axis = node.attrs.get("axis", 0) % data.rank
    kind = node.attrs.get("reduction", "none")
    _checked(ctx, node, indices, [data.shape[axis]], f"axis {axis} of size {data.shape[axis]}")

    def target(index: list[Expr]) -> tuple[Expr, str]:
        j = index_value(ctx, indices, index, data.shape[axis])
        return linear([j if a == axis else e for a, e in enumerate(index)], data.shape), kind

    return _scatter(ctx, data, emit, updates, target)


@anchor("ScatterND", epilogue=False)
def _scatter_nd(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    data, indices, updates = _inputs(node, ins, 3)
    depth = indices.shape[-1]
    lead = indices.rank - 1
    kind = node.attrs.get("reduction", "none")
    _checked(ctx, node, indices, list(data.shape[:depth]), f"axes 0..{depth - 1} of {list(data.shape)}")

    def target(index: list[Expr]) -> tuple[Expr, str]:
        picked = [index_value(ctx, indices, [*index[:lead], idx(d)], data.shape[d]) for d in range(depth)]
        return linear([*picked, *index[lead:]], data.shape), kind

    return _scatter(ctx, data, emit, updates, target)
