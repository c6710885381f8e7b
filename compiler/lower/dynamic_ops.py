"""Lowerings of the ops whose output sizes depend on the data (see dynamic.py): NonZero,
Compress (a run-time condition), Unique and NonMaxSuppression.

Each is one serial kernel that counts before it writes, so every output lands C-contiguous
in its actual shape. Unique sorts (stable merge sort) and groups equal neighbours (a NaN
compares equal to anything there, so NaN inputs group arbitrarily); NonMaxSuppression sorts
each class's boxes by score and keeps them greedily, as the op table's reference does
(ir/ops/index.py, ir/ops/detection.py).
"""

from __future__ import annotations

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Allocate, Bin, Buffer, Cast, Expr, If, Load, Stmt, Store
from aic.ir.loop_tools import binop, select, seq

from .core import LowerCtx, Tensor, const, delinear, idx, store
from .dynamic import Sizes, argsort, bump, counter, dyn_loop, flat, get, nonzero, put, scalar
from .mathx import add, k, mul, sub
from .table import dynamic


def _prod(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _slices(node: Node) -> tuple[int, int, int, int]:
    """(outer, length, inner, output dim) of the input viewed as slices along the node's axis
    (the flattened input, one element per slice, when there is no axis)."""
    shape = node.inputs[0].type.static_shape  # type: ignore[union-attr]
    axis = node.attrs.get("axis")
    if axis is None:
        return 1, _prod(shape), 1, 0
    a = axis % len(shape)
    return _prod(shape[:a]), shape[a], _prod(shape[a + 1:]), a


def _with_dim(node: Node, dim: int, size: int) -> tuple[int, ...]:
    shape = node.inputs[0].type.static_shape  # type: ignore[union-attr]
    return (size,) if node.attrs.get("axis") is None else (*shape[:dim], size, *shape[dim + 1:])


def _offset(o: Expr, count: Expr, at: Expr, inner: int, e: Expr) -> Expr:
    """The flat index of element (o, at, e) of a [outer, count, inner] tensor."""
    return binop("add", binop("mul", binop("add", binop("mul", o, count), at), idx(inner)), e)


def _copy_slice(ctx: LowerCtx, out: Buffer, x: Tensor, geometry: tuple[int, int, int], count: Expr, to: Expr,
                source: Expr) -> Stmt:
    """out[o, to, e] = x[o, source, e] with out's slice axis `count` long."""
    outer, length, inner = geometry

    def one(oe: list[Expr]) -> Stmt:
        o, e = oe
        return store(out, _offset(o, count, to, inner, e), flat(x, _offset(o, idx(length), source, inner, e)))

    return ctx.loops((outer, inner), one, "e")


# ---------------------------------------------------------------- NonZero


def _nonzero_bounds(node: Node) -> list[tuple[int, ...]]:
    t = node.inputs[0].type  # type: ignore[union-attr]
    return [(max(t.rank, 1), _prod(t.static_shape))]


@dynamic("NonZero", bounds=_nonzero_bounds)
def _nonzero(ctx: LowerCtx, node: Node, ins: list[Tensor | None], outs: list[Buffer | None], sizes: Sizes) -> Stmt:
    x, out = ins[0], outs[0]
    assert x is not None and out is not None
    shape = x.shape or (1,)
    n = _prod(shape)
    count, at = counter(ctx, "nnz"), counter(ctx, "at")

    def fill(i: Expr) -> Stmt:
        coords = delinear(i, shape)
        writes = [Store(out, binop("add", binop("mul", idx(d), get(count)), get(at)), c) for d, c in enumerate(coords)]
        return If(nonzero(flat(x, i)), seq(*writes, bump(at)))

    body = seq(
        put(count, idx(0)),
        ctx.loop(n, lambda i: bump(count, Cast(INDEX, nonzero(flat(x, i))))),
        put(at, idx(0)),
        ctx.loop(n, fill),
        sizes(0, 1, get(count)),
    )
    return Allocate(count, Allocate(at, body))


# ---------------------------------------------------------------- Compress


def _compress_length(node: Node) -> int:
    cond = node.inputs[1].type.static_shape  # type: ignore[union-attr]
    return min(cond[0], _slices(node)[1])


def _compress_bounds(node: Node) -> list[tuple[int, ...]]:
    return [_with_dim(node, _slices(node)[3], _compress_length(node))]


@dynamic("Compress", bounds=_compress_bounds)
def _compress(ctx: LowerCtx, node: Node, ins: list[Tensor | None], outs: list[Buffer | None], sizes: Sizes) -> Stmt:
    x, cond, out = ins[0], ins[1], outs[0]
    assert x is not None and cond is not None and out is not None
    outer, length, inner, dim = _slices(node)
    n = _compress_length(node)
    kept, at = counter(ctx, "kept"), counter(ctx, "at")

    def pick(t: Expr) -> Stmt:
        copy = _copy_slice(ctx, out, x, (outer, length, inner), get(kept), get(at), t)
        return If(nonzero(flat(cond, t)), seq(copy, bump(at)))

    body = seq(
        put(kept, idx(0)),
        ctx.loop(n, lambda t: bump(kept, Cast(INDEX, nonzero(flat(cond, t))))),
        put(at, idx(0)),
        ctx.loop(n, pick),
        sizes(0, dim, get(kept)),
    )
    return Allocate(kept, Allocate(at, body))


# ---------------------------------------------------------------- Unique


def _unique_bounds(node: Node) -> list[tuple[int, ...]]:
    length = _slices(node)[1]
    return [node.inputs[0].type.static_shape if node.attrs.get("axis") is not None else (length,),  # type: ignore[union-attr]
            (length,), (length,), (length,)][: len(node.outputs)]


@dynamic("Unique", bounds=_unique_bounds)
def _unique(ctx: LowerCtx, node: Node, ins: list[Tensor | None], outs: list[Buffer | None], sizes: Sizes) -> Stmt:
    x = ins[0]
    assert x is not None
    y, first_out, inverse, counts = [*outs, None, None, None][:4]
    outer, n, inner, dim = _slices(node)
    if n == 0:
        return seq(*(sizes(i, dim if i == 0 else 0, idx(0)) for i in (0, 1, 3)))
    state = counter(ctx, "cmp")  # slice comparison: 0 equal, 1 less, 2 greater
    compare = _comparison(ctx, x, (outer, n, inner), state)

    def before(a: Expr, b: Expr) -> tuple[Stmt | None, Expr]:
        first, result = compare(a, b)
        return first, Bin("eq", result, idx(1))

    sort, perm = argsort(ctx, n, before)
    group, first, count = ctx.scratch(INDEX, n), ctx.scratch(INDEX, n), ctx.scratch(INDEX, n)
    g = counter(ctx, "g")

    def walk(kk: Expr) -> Stmt:
        p = Load(perm, kk)
        first_cmp, result = compare(Load(perm, binop("max", binop("sub", kk, idx(1)), idx(0))), p)
        new = Bin("or", Bin("eq", kk, idx(0)), Bin("ne", result, idx(0)))
        start = seq(bump(g), Store(first, get(g), p), Store(count, get(g), idx(0)))
        tally = Store(count, get(g), binop("add", Load(count, get(g)), idx(1)))
        return seq(first_cmp, If(new, start), tally, Store(group, kk, get(g)))

    u = binop("add", get(g), idx(1))
    steps = [sort, put(g, idx(-1)), ctx.loop(n, walk, "k")]
    if node.attrs.get("sorted", 1):
        def slot(gg: Expr) -> Expr:
            return gg
    else:  # order of first occurrence: a group's slot counts the groups first seen before it
        rank = ctx.scratch(INDEX, n)
        run = counter(ctx, "run")

        def prefix(i: Expr) -> Stmt:
            seen = ctx.let(Load(rank, i), "seen")
            return seq(Store(rank, i, get(run)), bump(run, seen))

        steps += [ctx.loop(n, lambda i: Store(rank, i, idx(0)), "z"),
                  dyn_loop(ctx, u, lambda gg: Store(rank, Load(first, gg), idx(1))),
                  put(run, idx(0)), ctx.loop(n, prefix, "r")]

        def slot(gg: Expr) -> Expr:
            return Load(rank, Load(first, gg))

        steps = [Allocate(run, seq(*steps))]

    def emit(gg: Expr) -> Stmt:
        s = ctx.let(slot(gg), "slot")
        f = ctx.let(Load(first, gg), "f")
        return seq(
            _copy_slice(ctx, y, x, (outer, n, inner), u, s, f) if y is not None else None,
            Store(first_out, s, f) if first_out is not None else None,
            Store(counts, s, Load(count, gg)) if counts is not None else None,
        )

    steps.append(dyn_loop(ctx, u, emit, "o"))
    if inverse is not None:
        steps.append(ctx.loop(n, lambda kk: Store(inverse, Load(perm, kk), slot(Load(group, kk))), "v"))
    steps += [sizes(0, dim, u), sizes(1, 0, u), sizes(3, 0, u)]
    return Allocate(state, Allocate(g, seq(*steps)))


def _comparison(ctx: LowerCtx, x: Tensor, geometry: tuple[int, int, int], state: Buffer):
    """compare(a, b) -> (statements, result): 0 when slices a and b are equal, 1 when a sorts
    first (lexicographic over the slice's elements in row-major order), 2 otherwise."""
    outer, length, inner = geometry

    def key(e: Expr) -> Expr:
        return Cast(INDEX, e) if e.dtype == DType.bool else e

    def element(slice_: Expr, oe: list[Expr]) -> Expr:
        o, e = oe
        return key(flat(x, _offset(o, idx(length), slice_, inner, e)))

    def order(va: Expr, vb: Expr) -> Expr:
        return select(Bin("lt", va, vb), idx(1), select(Bin("lt", vb, va), idx(2), idx(0)))

    def compare(a: Expr, b: Expr) -> tuple[Stmt | None, Expr]:
        if outer * inner == 1:
            zero = [idx(0), idx(0)]
            return None, order(element(a, zero), element(b, zero))

        def step(oe: list[Expr]) -> Stmt:
            va, vb = ctx.let(element(a, oe), "va"), ctx.let(element(b, oe), "vb")
            return put(state, select(Bin("eq", get(state), idx(0)), order(va, vb), get(state)))

        return seq(put(state, idx(0)), ctx.loops((outer, inner), step, "c")), get(state)

    return compare


# ---------------------------------------------------------------- NonMaxSuppression


def _nms_limit(node: Node) -> int | None:
    """max_output_boxes_per_class when known at compile time (absent: 0), else None."""
    v = node.inputs[2] if len(node.inputs) > 2 else None
    if v is None or (v.const is not None and v.const.size == 0):
        return 0
    if v.const is not None:
        return max(int(np.asarray(v.const).reshape(-1)[0]), 0)
    return None


def _nms_per_class(node: Node) -> int:
    n = node.inputs[0].type.static_shape[1]  # type: ignore[union-attr]
    limit = _nms_limit(node)
    return n if limit is None else min(n, limit)


def _nms_bounds(node: Node) -> list[tuple[int, ...]]:
    batches, classes, _ = node.inputs[1].type.static_shape  # type: ignore[union-attr]
    return [(batches * classes * _nms_per_class(node), 3)]


@dynamic("NonMaxSuppression", bounds=_nms_bounds)
def _nms(ctx: LowerCtx, node: Node, ins: list[Tensor | None], outs: list[Buffer | None], sizes: Sizes) -> Stmt:
    boxes, scores, out = ins[0], ins[1], outs[0]
    assert boxes is not None and scores is not None and out is not None
    batches, classes, n = scores.shape
    per_class = _nms_per_class(node)
    if per_class == 0:
        return sizes(0, 0, idx(0))
    limit, iou_limit, floor = (scalar(ins[i]) if i < len(ins) else None for i in (2, 3, 4))
    most = binop("max", Cast(INDEX, limit), idx(0)) if limit is not None else idx(0)  # an empty limit: 0
    threshold = iou_limit if iou_limit is not None else const(0.0, boxes.dtype)
    center = bool(node.attrs.get("center_point_box", 0))
    total, kept_count, hit = counter(ctx, "total"), counter(ctx, "kept"), counter(ctx, "hit")
    kept = ctx.scratch(INDEX, per_class)

    def corners(b: Expr, i: Expr) -> tuple[Expr, ...]:
        v = [ctx.let(boxes.at([b, i, idx(q)]), "c") for q in range(4)]
        if center:
            xc, yc, w, h = v
            hw, hh = ctx.let(Bin("div", w, k(2, w)), "hw"), ctx.let(Bin("div", h, k(2, h)), "hh")
            return tuple(ctx.let(e, "c") for e in (sub(yc, hh), sub(xc, hw), add(yc, hh), add(xc, hw)))
        return tuple(ctx.let(Bin(op, v[a], v[c]), "c") for op, a, c in (("min", 0, 2), ("min", 1, 3),
                                                                         ("max", 0, 2), ("max", 1, 3)))

    def suppresses(mine: tuple[Expr, ...], other: tuple[Expr, ...]) -> Expr:
        y0, x0, y1, x1 = mine
        oy0, ox0, oy1, ox1 = other
        dy = ctx.let(sub(Bin("min", y1, oy1), Bin("max", y0, oy0)), "dy")
        dx = ctx.let(sub(Bin("min", x1, ox1), Bin("max", x0, ox0)), "dx")
        area = ctx.let(mul(sub(y1, y0), sub(x1, x0)), "area")
        other_area = ctx.let(mul(sub(oy1, oy0), sub(ox1, ox0)), "oarea")
        inter = ctx.let(mul(dy, dx), "inter")
        union = ctx.let(sub(add(area, other_area), inter), "union")
        ok = Bin("gt", dy, k(0, dy))
        for e in (dx, inter, area, other_area, union):
            ok = Bin("and", ok, Bin("gt", e, k(0, e)))
        ok = ctx.let(ok, "ok")
        iou = Bin("div", inter, select(ok, union, k(1, union)))
        return Bin("and", ok, Bin("gt", iou, threshold))

    def per(bc: list[Expr]) -> Stmt:
        b, c = bc

        def score(i: Expr) -> Expr:
            return scores.at([b, c, i])

        sort, perm = argsort(ctx, n, lambda i, j: (None, Bin("gt", score(i), score(j))))

        def visit(t: Expr) -> Stmt:
            i = ctx.let(Load(perm, t), "box")
            ok = Bin("lt", get(kept_count), most)
            if floor is not None:
                ok = Bin("and", ok, Bin("gt", score(i), floor))
            mine = corners(b, i)

            def check(q: Expr) -> Stmt:
                overlap = suppresses(mine, corners(b, Load(kept, q)))
                return put(hit, binop("max", get(hit), Cast(INDEX, overlap)))

            row = binop("mul", get(total), idx(3))
            keep = seq(Store(kept, get(kept_count), i), Store(out, row, b), Store(out, binop("add", row, idx(1)), c),
                       Store(out, binop("add", row, idx(2)), i), bump(kept_count), bump(total))
            return If(ok, seq(put(hit, idx(0)), dyn_loop(ctx, get(kept_count), check, "q"),
                              If(Bin("eq", get(hit), idx(0)), keep)))

        return seq(sort, put(kept_count, idx(0)), ctx.loop(n, visit, "t"))

    body = seq(put(total, idx(0)), ctx.loops((batches, classes), per, "bc"), sizes(0, 0, get(total)))
    return Allocate(total, Allocate(kept_count, Allocate(hit, body)))
