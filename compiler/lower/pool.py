"""Lowering of pooling: MaxPool (with Indices), AveragePool, LpPool and the global pools.

Float32 MaxPool with unit strides reads a -inf padded copy of its input (as depthwise
convolutions do, depthwise.py): every tap of an output row is one vector, with no bounds
checks. (With strides the copy is scalar and costs more than it saves.)
Other windowed pools fold each window; interior windows read the input directly (see
window.py), border windows skip positions in the padding (or past it under ceil_mode).
Global pools are reductions over the spatial axes, which are contiguous, so they
accumulate per vector lane.
"""

from __future__ import annotations

import itertools
import math

from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Allocate, Bin, Cast, Expr, Load, Stmt, Store
from aic.ir.loop_tools import binop, select, seq

from .conv import window_of
from .core import LowerCtx, Tensor, cdtype, const, idx
from .depthwise import PhaseSplit, output_rows
from .mathx import absolute, add, call, fast_max, k, maximum, mul
from .reduce import accumulate, lowest, stack
from .sizes import bound, shape_of, size_const, size_prod
from .table import Emit, anchor
from .window import clamped, inside_input, interior, tap_coords, window_loops


def _geometry(node: Node, x: Tensor):
    window = window_of(node, list(node.attrs["kernel_shape"]))
    out_shape = shape_of(node.outputs[0].type)
    spatial = list(x.shape[2:])
    return window, out_shape, spatial, interior(window, spatial, out_shape[2:])


@anchor("MaxPool")
def _max_pool(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    window, out_shape, spatial, ranges = _geometry(node, x)
    kernel = list(window.kernel)
    dt = cdtype(x.dtype)
    if emit.needed(1):
        return ctx.loops(out_shape, lambda index: _max_with_index(ctx, node, x, index, emit))
    if x.dtype == DType.float32 and all(st == 1 for st in window.strides):  # strided: the copy costs more
        split = PhaseSplit(ctx, x, window, kernel, list(out_shape[2:]), -math.inf)

        def row(i: list[Expr], o: list[Expr]) -> Stmt:
            best: Expr | None = None
            for taps in itertools.product(*(range(kk) for kk in kernel)):
                v = split.read(i[0], i[1], o, list(taps))
                best = ctx.let(v if best is None else fast_max(v, best), "m")  # bound: select reads it twice
            assert best is not None
            return emit(0, [*i, *o], best)

        return split.channels(out_shape[:2], lambda i: output_rows(ctx, list(out_shape[2:]), i, row, split.row_spill))

    def element(index: list[Expr], inside: bool) -> Stmt:
        best = stack(ctx, dt, 1, "best")

        def tap(taps: list[Expr]) -> Stmt:
            coords = tap_coords(window, spatial, index[2:], taps)
            if inside:
                return Store(best, idx(0), fast_max(x.at([*index[:2], *coords]), Load(best, idx(0))))
            v = x.at([*index[:2], *clamped(coords, spatial)])
            ok = inside_input(coords, spatial)
            return Store(best, idx(0), select(ok, fast_max(v, Load(best, idx(0))), Load(best, idx(0))))

        init = Store(best, idx(0), const(lowest(dt), dt))
        return Allocate(best, seq(init, ctx.loops(kernel, tap, "t"), emit(0, index, Load(best, idx(0)))))

    return window_loops(ctx, out_shape[:2], out_shape[2:], ranges, element)


def _max_with_index(ctx: LowerCtx, node: Node, x: Tensor, index: list[Expr], emit: Emit) -> Stmt:
    """MaxPool with its Indices output: the flat input position of each window's first maximum."""
    window = window_of(node, list(node.attrs["kernel_shape"]))
    spatial = list(x.shape[2:])
    dt = cdtype(x.dtype)
    plane = size_prod(spatial)
    column_major = bool(node.attrs.get("storage_order", 0))
    best, where = stack(ctx, dt, 1, "best"), stack(ctx, INDEX, 1, "at")

    def tap(taps: list[Expr]) -> Stmt:
        coords = tap_coords(window, spatial, index[2:], taps)
        v = ctx.let(x.at([*index[:2], *clamped(coords, spatial)]), "x")
        cur = Load(best, idx(0))
        gt = Bin("gt", v, cur) if dt != DType.bool else Bin("gt", Cast(DType.int32, v), Cast(DType.int32, cur))
        if dt.is_float:
            gt = Bin("or", gt, Bin("and", Bin("ne", v, v), Bin("eq", cur, cur)))
        inside = inside_input(coords, spatial)
        better = ctx.let(Bin("and", inside, gt) if inside is not None else gt, "b")
        flat: Expr = idx(0)
        order = list(zip(coords, spatial))
        for c, size in reversed(order) if column_major else order:
            flat = binop("add", binop("mul", flat, idx(size)), c)
        return seq(Store(best, idx(0), select(better, v, cur)),
                   Store(where, idx(0), select(better, flat, Load(where, idx(0)))))

    base = binop("mul", binop("add", binop("mul", index[0], idx(x.shape[1])), index[1]), idx(plane))
    init = seq(Store(best, idx(0), const(lowest(dt), dt)), Store(where, idx(0), idx(0)))
    done = seq(emit(0, index, Load(best, idx(0))), emit(1, index, binop("add", base, Load(where, idx(0)))))
    return Allocate(best, Allocate(where, seq(init, ctx.loops(list(window.kernel), tap, "t"), done)))


@anchor("AveragePool", "LpPool")
def _avg_pool(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    window, out_shape, spatial, ranges = _geometry(node, x)
    kernel = list(window.kernel)
    dt = cdtype(x.dtype)
    lp = node.op == "LpPool"
    p = node.attrs.get("p", 2)
    include = bool(node.attrs.get("count_include_pad", 0))
    taps = size_prod(kernel)

    def element(index: list[Expr], inside: bool) -> Stmt:
        count = stack(ctx, dt, 1, "count")

        def term(full: list[Expr]) -> Expr:
            coords = tap_coords(window, spatial, index[2:], full[len(index):])
            if inside:
                v = x.at([*index[:2], *coords])
                return _power(absolute(v), p) if lp else v
            v = x.at([*index[:2], *clamped(coords, spatial)])
            v = _power(absolute(v), p) if lp else v
            return select(inside_input(coords, spatial), v, const(0, dt))

        def counted(full: list[Expr]) -> Stmt:
            coords = tap_coords(window, spatial, index[2:], full)
            ok = inside_input(coords, spatial)
            if include:
                ok = None
                for i, (c, s) in enumerate(zip(coords, spatial)):
                    b, e = window.pad_amounts(i, s)
                    cond = Bin("and", Bin("ge", c, idx(-b)), Bin("lt", c, idx(s + e)))
                    ok = cond if ok is None else Bin("and", ok, cond)
            one = select(ok, const(1, dt), const(0, dt)) if ok is not None else const(1, dt)
            return Store(count, idx(0), add(Load(count, idx(0)), one))

        def finish(total: Expr) -> Stmt:
            if lp:
                return emit(0, index, _root(total, p))
            divisor = const(taps, dt) if inside else Load(count, idx(0))
            return emit(0, index, Bin("div", total, divisor))

        counting = None if lp or inside else seq(Store(count, idx(0), const(0, dt)), ctx.loops(kernel, counted, "u"))
        fold = accumulate(ctx, [*index, *[None] * len(kernel)], [*out_shape, *kernel], term, const(0, dt), add, finish)
        return Allocate(count, seq(counting, fold))

    return window_loops(ctx, out_shape[:2], out_shape[2:], ranges, element)


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
    count = size_prod(x.shape[2:])
    p = node.attrs.get("p", 2)
    rank = x.rank

    def per_channel(index: list[Expr]) -> Stmt:
        full: list[Expr | None] = [*index, *[None] * (rank - 2)]
        out = [*index, *[idx(0)] * (rank - 2)]
        if node.op == "GlobalMaxPool":
            return accumulate(ctx, full, x.shape, x.at, const(lowest(dt), dt), maximum, lambda s: emit(0, out, s),
                              flatten=True)
        if node.op == "GlobalLpPool":
            return accumulate(ctx, full, x.shape, lambda i: _power(absolute(x.at(i)), p), const(0, dt), add,
                              lambda s: emit(0, out, _root(s, p)))
        mean = (lambda s: Bin("div", s, size_const(count, dt))) if bound(count) else (lambda s: const(0, dt))
        return accumulate(ctx, full, x.shape, x.at, const(0, dt), add, lambda s: emit(0, out, mean(s)), flatten=True)

    return ctx.loops(x.shape[:2], per_channel)
