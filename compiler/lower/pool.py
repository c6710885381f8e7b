"""Lowering of pooling: MaxPool (with Indices), AveragePool, LpPool and the global pools.

Windowed pools fold each window with explicit bounds checks (positions in the padding,
or past it under ceil_mode, are skipped); global pools are reductions over the spatial
axes, which are contiguous, so they accumulate per vector lane.
"""

from __future__ import annotations

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Allocate, Bin, Cast, Expr, Load, Stmt, Store

from ..loop_util import binop, select, seq
from .conv import window_of
from .core import LowerCtx, Tensor, cdtype, clamp, const, idx
from .mathx import absolute, add, call, k, maximum, mul
from .reduce import accumulate, lowest, stack
from .table import Emit, anchor


def _window_coords(node: Node, x: Tensor, out: list[Expr], taps: list[Expr]) -> tuple[list[Expr], Expr | None, list]:
    """Input coordinates of kernel tap `taps` for output position `out`, and whether they are inside the input."""
    window = window_of(node, list(node.attrs["kernel_shape"]))
    coords, inside = [], None
    for i, (o, t, size) in enumerate(zip(out, taps, x.shape[2:])):
        begin = window.pad_amounts(i, size)[0]
        at = binop("add", binop("mul", o, idx(window.strides[i])), binop("mul", t, idx(window.dilations[i])))
        c = binop("sub", at, idx(begin))
        ok = Bin("and", Bin("ge", c, idx(0)), Bin("lt", c, idx(size)))
        inside = ok if inside is None else Bin("and", inside, ok)
        coords.append(c)
    return coords, inside, [window.pad_amounts(i, size) for i, size in enumerate(x.shape[2:])]


@anchor("MaxPool")
def _max_pool(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    kernel = list(node.attrs["kernel_shape"])
    out_shape = node.outputs[0].type.static_shape
    dt = cdtype(x.dtype)
    spatial = x.shape[2:]
    plane = int(np.prod(spatial))
    column_major = bool(node.attrs.get("storage_order", 0))

    def element(index: list[Expr]) -> Stmt:
        best, where = stack(ctx, dt, 1, "best"), stack(ctx, INDEX, 1, "at")

        def tap(taps: list[Expr]) -> Stmt:
            coords, inside, _ = _window_coords(node, x, index[2:], taps)
            v = ctx.let(x.at([*index[:2], *(clamp(c, 0, s - 1) for c, s in zip(coords, spatial))]), "x")
            cur = Load(best, idx(0))
            gt = Bin("gt", v, cur) if dt != DType.bool else Bin("gt", Cast(DType.int32, v), Cast(DType.int32, cur))
            if dt.is_float:
                gt = Bin("or", gt, Bin("and", Bin("ne", v, v), Bin("eq", cur, cur)))
            better = ctx.let(Bin("and", inside, gt) if inside is not None else gt, "b")
            flat: Expr = idx(0)
            order = list(zip(coords, spatial))
            for c, size in (reversed(order) if column_major else order):
                flat = binop("add", binop("mul", flat, idx(size)), c)
            return seq(Store(best, idx(0), select(better, v, cur)),
                       Store(where, idx(0), select(better, flat, Load(where, idx(0)))))

        base = binop("mul", binop("add", binop("mul", index[0], idx(x.shape[1])), index[1]), idx(plane))
        init = seq(Store(best, idx(0), const(lowest(dt), dt)), Store(where, idx(0), idx(0)))
        done = seq(emit(0, index, Load(best, idx(0))),
                   emit(1, index, binop("add", base, Load(where, idx(0)))) if emit.needed(1) else None)
        return Allocate(best, Allocate(where, seq(init, ctx.loops(kernel, tap, "t"), done)))

    return ctx.loops(out_shape, element)


@anchor("AveragePool", "LpPool")
def _avg_pool(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    kernel = list(node.attrs["kernel_shape"])
    out_shape = node.outputs[0].type.static_shape
    dt = cdtype(x.dtype)
    spatial = x.shape[2:]
    lp = node.op == "LpPool"
    p = node.attrs.get("p", 2)
    include = bool(node.attrs.get("count_include_pad", 0))

    def element(index: list[Expr]) -> Stmt:
        count = stack(ctx, dt, 1, "count")

        def term(full: list[Expr]) -> Expr:
            coords, inside, _ = _window_coords(node, x, index[2:], full[len(index):])
            v = x.at([*index[:2], *(clamp(c, 0, s - 1) for c, s in zip(coords, spatial))])
            if lp:
                v = _power(absolute(v), p)
            return select(inside, v, const(0, dt)) if inside is not None else v

        def counted(full: list[Expr]) -> Stmt:
            coords, inside, pads = _window_coords(node, x, index[2:], full)
            if include:
                inside = None
                for c, (b, e), s in zip(coords, pads, spatial):
                    ok = Bin("and", Bin("ge", c, idx(-b)), Bin("lt", c, idx(s + e)))
                    inside = ok if inside is None else Bin("and", inside, ok)
            one = select(inside, const(1, dt), const(0, dt)) if inside is not None else const(1, dt)
            return Store(count, idx(0), add(Load(count, idx(0)), one))

        def finish(total: Expr) -> Stmt:
            if lp:
                return emit(0, index, _root(total, p))
            return emit(0, index, Bin("div", total, Load(count, idx(0))))

        counting = None if lp else seq(Store(count, idx(0), const(0, dt)), ctx.loops(kernel, counted, "u"))
        fold = accumulate(ctx, [*index, *[None] * len(kernel)], [*out_shape, *kernel], term, const(0, dt), add, finish)
        return Allocate(count, seq(counting, fold))

    return ctx.loops(out_shape, element)


def _power(v: Expr, p: int) -> Expr:
    if p == 1:
        return v
    if p == 2:
        return mul(v, v)
    return call("pow", v, k(float(p), v))


def _root(v: Expr, p: int) -> Expr:
    if p == 1:
        return v
    if p == 2:
        return call("sqrt", v)
    return call("pow", v, k(1.0 / p, v))


@anchor("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", prologue=True)
def _global_pool(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    dt = cdtype(x.dtype)
    count = int(np.prod(x.shape[2:]))
    p = node.attrs.get("p", 2)
    rank = x.rank

    def per_channel(index: list[Expr]) -> Stmt:
        full: list[Expr | None] = [*index, *[None] * (rank - 2)]
        out = [*index, *[idx(0)] * (rank - 2)]
        if node.op == "GlobalMaxPool":
            return accumulate(ctx, full, x.shape, x.at, const(lowest(dt), dt), maximum, lambda s: emit(0, out, s))
        if node.op == "GlobalLpPool":
            return accumulate(ctx, full, x.shape, lambda i: _power(absolute(x.at(i)), p), const(0, dt), add,
                              lambda s: emit(0, out, _root(s, p)))
        return accumulate(ctx, full, x.shape, x.at, const(0, dt), add,
                          lambda s: emit(0, out, Bin("div", s, const(count, dt)) if count else const(0, dt)))

    return ctx.loops(x.shape[:2], per_channel)
