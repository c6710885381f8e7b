"""Lowering of reductions: Reduce*, ArgMax/ArgMin, CumSum, TopK, and the `accumulate`
helper the normalizations and pools share.

`accumulate` folds `value(index)` over some axes into a stack accumulator. When the
innermost axis is reduced and long enough it keeps one partial result per vector lane
(the lane loop vectorizes; a long row not kept in CHAINS vectors, added in turn, so the adds
do not wait on each other) and folds the lanes at the end; otherwise it accumulates one
scalar per output element, which the scheduler vectorizes across output elements.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Allocate, Bin, Buffer, Cast, Const, Expr, If, Load, Scope, Stmt, Store
from aic.ir.loop_tools import binop, select, seq

from .checks import report, site_text
from .core import LowerCtx, Tensor, cdtype, const, idx, node_error, static_ints
from .mathx import absolute, add, call, div, exp, k, maximum, minimum, mul, sub
from .sizes import Size, Sym, SymbolicSizeError, bound, shape_of, size_const, size_prod
from .table import Emit, anchor

Combine = Callable[[Expr, Expr], Expr]
CHAINS = 4  # vector accumulators of a long reduced row (`accumulate`), folded into one at its end


def stack(ctx: LowerCtx, dtype: DType, size: int, hint: str = "acc") -> Buffer:
    if isinstance(size, Sym):
        raise SymbolicSizeError(f"a stack buffer of run-time size {size}")
    return Buffer(ctx.fresh(hint), dtype, size, Scope.STACK)


def accumulate(
    ctx: LowerCtx,
    index: list[Expr | None],
    extents: Sequence[int],
    value: Callable[[list[Expr]], Expr],
    init: Expr,
    combine: Combine,
    then: Callable[[Expr], Stmt],
    keep: Buffer | None = None,
    flatten: bool = False,
    keep_from: Expr | None = None,
) -> Stmt:
    """Fold `value(index)` over the axes of `index` that are None (sizes in `extents`), then `then(result)`.

    With `keep` (a buffer as long as the one reduced axis, from element `keep_from` on), each value is
    also stored there. With
    `flatten` (the reduced axes are trailing axes of a row-major tensor `value` reads), trailing reduced
    axes too short for partial lanes (a 7x7 or 14x14 map) are folded as one axis, so they vectorize."""
    free = [a for a, e in enumerate(index) if e is None]
    if flatten and keep is None and _flattens(free, index, extents, ctx.lanes):
        return _flattened(ctx, index, extents, value, init, combine, then, free[0])
    assert keep is None or len(free) == 1
    acc_dtype = init.dtype
    last = free[-1] if free else None
    lanes = ctx.lanes
    partial = last is not None and last == len(index) - 1 and bound(extents[last]) >= 2 * lanes

    def at(sub: dict[int, Expr]) -> list[Expr]:
        return [sub[a] if e is None else e for a, e in enumerate(index)]

    def fold(cell: Buffer, slot: Expr, position: Expr, sub: dict[int, Expr]) -> Stmt:
        v = value(at(sub))
        if keep is None:
            return Store(cell, slot, combine(Load(cell, slot), v))
        v = ctx.let(v, "e")
        kept = position if keep_from is None else binop("add", keep_from, position)
        return seq(Store(keep, kept, v), Store(cell, slot, combine(Load(cell, slot), v)))

    if not partial:
        acc = stack(ctx, acc_dtype, 1)

        def body(vs: list[Expr]) -> Stmt:
            return fold(acc, idx(0), vs[-1] if vs else idx(0), dict(zip(free, vs)))

        loops = ctx.loops([extents[a] for a in free], body, "r")
        with ctx.scope() as sc:
            done = sc.wrap(then(ctx.let(Load(acc, idx(0)), "s")))
        return Allocate(acc, seq(Store(acc, idx(0), init), loops, done))

    n = extents[last]
    # independent vector accumulators for a long row: one add waits for the last (4 cycles), two issue a cycle;
    # not where each value is also kept (softmax's exp: its instructions, not the adds' latency, set the pace),
    # nor on a scalar target (cuda: a block reduction, recognised by its one accumulator)
    chains = CHAINS if keep is None and lanes > 1 and isinstance(n, int) and n // lanes >= 2 * CHAINS else 1
    acc = stack(ctx, acc_dtype, lanes * chains)
    outer = free[:-1]

    def row(vs: list[Expr]) -> Stmt:
        base = dict(zip(outer, vs))

        def vector(first: Expr, chain: int) -> Stmt:
            """The vector of the row from element `first` into accumulator `chain`."""
            def one(lv: Expr) -> Stmt:
                pos = binop("add", first, lv)
                return fold(acc, binop("add", idx(chain * lanes), lv), pos, {**base, last: pos})

            return ctx.loop(lanes, one, "l")

        group = lanes * chains
        groups = ctx.loop(n // group, lambda g: seq(*(
            vector(binop("add", binop("mul", g, idx(group)), idx(j * lanes)), j) for j in range(chains))), "c")
        left = ctx.loop(n // lanes - n // group * chains,
                        lambda c: vector(binop("mul", binop("add", c, idx(n // group * chains)), idx(lanes)), 0), "c")
        start = n // lanes * lanes

        def rest(t: Expr) -> Stmt:
            pos = binop("add", idx(start), t)
            return fold(acc, idx(0), pos, {**base, last: pos})

        return seq(groups, left if chains > 1 else None, ctx.loop(n - start, rest, "rt"))

    init_lanes = ctx.loop(lanes * chains, lambda lv: Store(acc, lv, init), "l")
    loops = ctx.loops([extents[a] for a in outer], row, "r")
    chained = [Store(acc, idx(0), combine(Load(acc, idx(0), lanes), Load(acc, idx(j * lanes), lanes)))
               for j in range(1, chains)]
    with ctx.scope() as sc:
        done = sc.wrap(then(ctx.let(Load(acc, idx(0)), "s")))
    return Allocate(acc, seq(init_lanes, loops, *chained, fold_lanes(acc, lanes, combine), done))


def _flattens(free: list[int], index: list[Expr | None], extents: Sequence[int], lanes: int) -> bool:
    rows = free[:-1]
    return (len(free) >= 2 and free == list(range(free[0], len(index)))
            and all(isinstance(extents[a], int) for a in free) and extents[free[-1]] % lanes != 0
            and int(np.prod([extents[a] for a in rows])) > 1 and lanes > 1)


def _flattened(ctx: LowerCtx, index: list[Expr | None], extents: Sequence[int], value: Callable[[list[Expr]], Expr],
               init: Expr, combine: Combine, then: Callable[[Expr], Stmt], first: int) -> Stmt:
    """accumulate over the trailing axes from `first` as one axis of their product."""
    sizes = [int(e) for e in extents[first:]]

    def unflat(i: list[Expr]) -> list[Expr]:
        pos, parts = i[first], []
        for a in range(len(sizes)):
            inner = int(np.prod(sizes[a + 1:]))
            part = binop("div", pos, idx(inner)) if inner > 1 else pos
            parts.append(binop("mod", part, idx(sizes[a])) if a else part)
        return [*i[:first], *parts]

    return accumulate(ctx, [*index[:first], None], [*extents[:first], int(np.prod(sizes))],
                      lambda i: value(unflat(i)), init, combine, then)


def fold_lanes(acc: Buffer, lanes: int, combine: Combine) -> Stmt:
    """Reduce acc[0:lanes] into acc[0] by halving: acc[0:h] = combine(acc[0:h], acc[h:2h])."""
    steps = []
    width = lanes
    while width > 1:
        half = width // 2
        steps.append(Store(acc, idx(0), combine(Load(acc, idx(0), half), Load(acc, idx(half), half))))
        width = half
    return seq(*steps)


def reduce_each(
    ctx: LowerCtx,
    shape: Sequence[int],
    axes: Sequence[int],
    body: Callable[[list[Expr | None]], Stmt],
) -> Stmt:
    """Loop over the kept axes of `shape`; `body` gets the index with reduced axes set to None."""
    kept = [a for a in range(len(shape)) if a not in axes]

    def inner(vs: list[Expr]) -> Stmt:
        index: list[Expr | None] = [None] * len(shape)
        for a, v in zip(kept, vs):
            index[a] = v
        return body(index)

    return ctx.loops([shape[a] for a in kept], inner)


def out_index(index: Sequence[Expr | None], keepdims: bool) -> list[Expr]:
    """The output index of a reduction: reduced axes become 0 (keepdims) or disappear."""
    if keepdims:
        return [idx(0) if e is None else e for e in index]
    return [e for e in index if e is not None]


# ---------------------------------------------------------------- Reduce*


def lowest(dtype: DType) -> float | int | bool:
    if dtype == DType.bool:
        return False
    return -math.inf if dtype.is_float else int(np.iinfo(dtype.numpy).min)


def highest(dtype: DType) -> float | int | bool:
    if dtype == DType.bool:
        return True
    return math.inf if dtype.is_float else int(np.iinfo(dtype.numpy).max)


def reduce_axes(node: Node, rank: int) -> list[int]:
    """The reduced axes: from the axes input, or, when that is only known at run time and dims are
    kept, from the shapes (an axis of size 1 reduces the same whether or not it is listed)."""
    axes_input = node.inputs[1] if len(node.inputs) > 1 else None
    if axes_input is not None and axes_input.const is None and axes_input.sym is None:
        if not node.attrs.get("keepdims", 1):
            raise node_error(node, "axes (input 1) must be known at compile time when keepdims=0")
        shape_in, shape_out = shape_of(node.inputs[0].type), shape_of(node.outputs[0].type)  # type: ignore
        return [a for a in range(rank) if shape_out[a] == 1 and shape_in[a] != 1]
    axes = static_ints(node, 1, "axes")
    if not axes:
        return [] if node.attrs.get("noop_with_empty_axes", 0) else list(range(rank))
    return sorted(a % rank for a in axes)


_REDUCE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")


@anchor(*_REDUCE, prologue=True)
def _reduce(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    axes = reduce_axes(node, x.rank)
    keep = bool(node.attrs.get("keepdims", 1))
    dt = cdtype(x.dtype)
    op = node.op
    count = size_prod([x.shape[a] for a in axes])

    def one(init: float | int | bool, combine: Combine, pre: Callable[[Expr], Expr], post: Callable[[Expr], Expr],
            index: list[Expr | None], then: Callable[[Expr], Stmt]) -> Stmt:
        start = const(init, dt)
        return accumulate(ctx, index, x.shape, lambda i: pre(x.at(i)), start, combine, lambda s: then(post(s)),
                          flatten=True)

    def body(index: list[Expr | None]) -> Stmt:
        out = out_index(index, keep)
        if op == "ReduceLogSumExp":
            def with_peak(m: Expr) -> Stmt:
                peak = ctx.let(select(Bin("eq", sub(m, m), k(0, m)), m, k(0, m)), "peak")
                return one(0, add, lambda v: exp(sub(v, peak)), lambda s: add(call("log", s), peak), index,
                           lambda r: emit(0, out, r))

            return one(lowest(dt), maximum, lambda v: v, lambda s: s, index, with_peak)
        init, combine, pre, post = _spec(op, dt, count)
        return one(init, combine, pre, post, index, lambda r: emit(0, out, r))

    return reduce_each(ctx, x.shape, axes, body)


def _sqrt(s: Expr) -> Expr:
    return call("sqrt", s)


def _spec(op: str, dt: DType, count: Size) -> tuple[float | int | bool, Combine, Callable, Callable]:
    ident = lambda v: v  # noqa: E731
    square = lambda v: mul(v, v)  # noqa: E731
    if op in ("ReduceMax", "ReduceMin"):
        if dt == DType.bool:
            return (op == "ReduceMin"), (lambda a, b: Bin("or" if op == "ReduceMax" else "and", a, b)), ident, ident
        return (lowest(dt) if op == "ReduceMax" else highest(dt)), (maximum if op == "ReduceMax" else minimum), \
            ident, ident
    if op == "ReduceProd":
        return 1, mul, ident, ident
    pre = {"ReduceL1": absolute, "ReduceL2": square, "ReduceSumSquare": square}.get(op, ident)
    post: Callable[[Expr], Expr] = ident
    if op == "ReduceMean":
        if isinstance(count, Sym):  # a run-time count (at least 1: ranges start at 1)
            post = lambda s: div(s, size_const(count, s.dtype))  # noqa: E731
        else:
            post = (lambda s: div(s, k(count, s))) if count else (lambda s: k(0, s))
    elif op == "ReduceL2":
        post = _sqrt if dt.is_float else (lambda s: Cast(dt, _sqrt(Cast(DType.float64, s))))
    elif op == "ReduceLogSum":
        post = lambda s: call("log", s)  # noqa: E731
    return 0, add, pre, post


# ---------------------------------------------------------------- ArgMax / ArgMin


@anchor("ArgMax", "ArgMin", prologue=True)
def _arg(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    axis = node.attrs.get("axis", 0) % x.rank
    keep = bool(node.attrs.get("keepdims", 1))
    last = bool(node.attrs.get("select_last_index", 0))
    cmp = ("ge" if last else "gt") if node.op == "ArgMax" else ("le" if last else "lt")
    dt = cdtype(x.dtype)

    def body(index: list[Expr | None]) -> Stmt:
        best, where = stack(ctx, dt, 1, "best"), stack(ctx, INDEX, 1, "at")

        def step(r: Expr) -> Stmt:
            v = ctx.let(x.at([r if e is None else e for e in index]), "x")
            cur = Load(best, idx(0))
            better = Bin(cmp, v, cur) if dt != DType.bool else Bin(cmp, Cast(DType.int32, v), Cast(DType.int32, cur))
            if dt.is_float:  # a NaN wins over everything, first NaN kept
                better = Bin("and", Bin("or", better, Bin("ne", v, v)), Bin("eq", cur, cur))
            better = ctx.let(better, "b")
            return seq(Store(best, idx(0), select(better, v, cur)),
                       Store(where, idx(0), select(better, r, Load(where, idx(0)))))

        first = [idx(0) if e is None else e for e in index]
        init = seq(Store(best, idx(0), x.at(first)), Store(where, idx(0), idx(0)))
        loop = ctx.loop(x.shape[axis] - 1, lambda r: step(binop("add", r, idx(1))), "r")
        done = emit(0, out_index(index, keep), Load(where, idx(0)))
        return Allocate(best, Allocate(where, seq(init, loop, done)))

    return reduce_each(ctx, x.shape, [axis], body)


# ---------------------------------------------------------------- CumSum


@anchor("CumSum", "CumProd", prologue=True)
def _cumulate(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, axis_input = ins[0], ins[1]
    assert x is not None and axis_input is not None
    v = node.inputs[1]
    if v is not None and (v.const is not None or v.sym is not None):
        return _cumulate_along(ctx, node, x, (static_ints(node, 1, "axis") or [0])[0] % x.rank, emit)
    # The axis is only known at run time: one loop nest per possible axis, chosen by the axis value.
    chosen = ctx.let(Cast(INDEX, axis_input.at([idx(0)] * axis_input.rank)), "axis")
    name = v.name if v is not None else "axis"
    record = report(ctx, site_text(node, f"axis '{name}' must be in [{-x.rank}, {x.rank - 1}]"))
    choices: Stmt | None = record(Const(True, DType.bool), chosen, idx(-1))  # no axis matched: an error
    for axis in reversed(range(x.rank)):
        hit = Bin("or", Bin("eq", chosen, idx(axis)), Bin("eq", chosen, idx(axis - x.rank)))
        choices = If(hit, _cumulate_along(ctx, node, x, axis, emit), choices)
    return choices


def _cumulate_along(ctx: LowerCtx, node: Node, x: Tensor, axis: int, emit: Emit) -> Stmt:
    n = x.shape[axis]
    reverse, exclusive = node.attrs.get("reverse", 0), node.attrs.get("exclusive", 0)
    dt = cdtype(x.dtype)
    product = node.op == "CumProd"

    def body(index: list[Expr | None]) -> Stmt:
        acc = stack(ctx, dt, 1)

        def step(r: Expr) -> Stmt:
            pos = binop("sub", idx(n - 1), r) if reverse else r
            at = [pos if e is None else e for e in index]
            before = ctx.let(Load(acc, idx(0)), "prev")
            after = ctx.let(mul(before, x.at(at)) if product else add(before, x.at(at)), "next")
            return seq(Store(acc, idx(0), after), emit(0, at, before if exclusive else after))

        return Allocate(acc, seq(Store(acc, idx(0), const(1 if product else 0, dt)), ctx.loop(n, step, "r")))

    return reduce_each(ctx, x.shape, [axis], body)


# ---------------------------------------------------------------- TopK


@anchor("TopK", epilogue=False)
def _topk(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    axis = node.attrs.get("axis", -1) % x.rank
    kk = shape_of(node.outputs[0].type)[axis]
    n = x.shape[axis]
    cmp = "gt" if node.attrs.get("largest", 1) else "lt"
    dt = cdtype(x.dtype)
    if kk == 0:
        return seq()

    def body(index: list[Expr | None]) -> Stmt:
        vals, where = stack(ctx, dt, kk, "top"), stack(ctx, INDEX, kk, "at")

        def insert(r: Expr) -> Stmt:
            v = ctx.let(x.at([r if e is None else e for e in index]), "x")
            filled = ctx.let(binop("min", r, idx(kk)), "filled")

            def beats(j: Expr) -> Expr:
                return Bin("or", Bin("ge", j, filled), Bin(cmp, v, Load(vals, j)))

            def slot(jj: Expr) -> Stmt:
                j = ctx.let(binop("sub", idx(kk - 1), jj), "j")
                prev = ctx.let(binop("max", binop("sub", j, idx(1)), idx(0)), "p")
                take_prev = ctx.let(Bin("and", Bin("gt", j, idx(0)), beats(prev)), "shift")
                shift = seq(Store(vals, j, Load(vals, prev)), Store(where, j, Load(where, prev)))
                place = If(beats(j), seq(Store(vals, j, v), Store(where, j, r)))
                return If(take_prev, shift, place)

            return ctx.loop(kk, slot, "q")

        out = ctx.loop(kk, lambda j: seq(emit(0, [j if e is None else e for e in index], Load(vals, j)),
                                         emit(1, [j if e is None else e for e in index], Load(where, j))), "o")
        return Allocate(vals, Allocate(where, seq(ctx.loop(n, insert, "r"), out)))

    return reduce_each(ctx, x.shape, [axis], body)
