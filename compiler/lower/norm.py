"""Lowering of normalizations and the softmax family: BatchNormalization (inference,
elementwise per channel), LayerNormalization, ChannelLayerNorm, InstanceNormalization, GroupNormalization,
MeanVarianceNormalization, LpNormalization, LRN, Softmax, LogSoftmax, Hardmax.

Row normalizations run per row: a pass for the mean, a pass for the variance (two
passes, as accurate as the reference), then a pass writing each element through the
epilogue. Fused producers (LayerNorm(x + residual), Softmax(x * scale + mask)) are
recomputed in each pass instead of being stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Allocate, Bin, Cast, Expr, Load, Stmt, Store
from aic.ir.loop_tools import binop, select, seq

from .core import ComputeTensor, LowerCtx, Tensor, cdtype, const, idx
from .mathx import absolute, add, call, exp_nonpos, fast_max, mul, sub
from .norm_channels import blocked_channels, normalize_rows_as_lanes, positions_last, reads_channels_first
from .reduce import accumulate, lowest, reduce_each, stack
from .sizes import bound, size_const, size_max
from .table import Emit, anchor, compute


def _wide(v: Expr, dt: DType) -> Expr:
    return v if v.dtype == dt else Cast(dt, v)


def _stash(node: Node, x: Tensor) -> DType:
    """The type statistics are computed in (float32 at least; float64 inputs stay float64)."""
    return DType.float64 if x.dtype == DType.float64 else DType.float32


def normalize(
    ctx: LowerCtx,
    x: Tensor,
    axes: Sequence[int],
    epsilon: float,
    dt: DType,
    write: Callable[[list[Expr], Expr, Expr, Expr], Stmt],
    stats: Callable[[list[Expr], Expr, Expr], Stmt] | None = None,
) -> Stmt:
    """For each slice over `axes`: mean, inverse std; then write(index, x_hat, mean, inv_std) per element."""
    count = 1
    for a in axes:
        count *= x.shape[a]
    n = size_const(size_max(count, 1), dt)

    def slice_(index: list[Expr | None]) -> Stmt:
        def value(i: list[Expr]) -> Expr:
            return _wide(x.at(i), dt)

        def with_mean(total: Expr) -> Stmt:
            mean = ctx.let(Bin("div", total, n), "mean")

            def centered(i: list[Expr]) -> Expr:
                d = ctx.let(sub(value(i), mean), "d")
                return mul(d, d)

            def with_var(sq: Expr) -> Stmt:
                inv = ctx.let(Bin("div", const(1, dt), call("sqrt", add(Bin("div", sq, n), const(epsilon, dt)))), "inv")
                kept = [idx(0) if e is None else e for e in index]
                body = ctx.loops([x.shape[a] for a in axes],
                                 lambda vs: write(_fill(index, axes, vs), mul(sub(value(_fill(index, axes, vs)), mean),
                                                                             inv), mean, inv), "j")
                return seq(stats(kept, mean, inv) if stats else None, body)

            return accumulate(ctx, index, x.shape, centered, const(0, dt), add, with_var)

        return accumulate(ctx, index, x.shape, value, const(0, dt), add, with_mean)

    return reduce_each(ctx, x.shape, axes, slice_)


def _fill(index: list[Expr | None], axes: Sequence[int], vs: list[Expr]) -> list[Expr]:
    out = list(index)
    for a, v in zip(axes, vs):
        out[a] = v
    return out  # type: ignore[return-value]


@compute("BatchNormalization", elementwise=True)
def _batch_norm(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x, scale, bias, mean, var = ins[:5]
    assert x is not None and scale is not None and bias is not None and mean is not None and var is not None
    eps = node.attrs.get("epsilon", 1e-5)
    dt = cdtype(x.dtype)

    def at(index: list[Expr]) -> Expr:
        c = [index[1]] if x.rank > 1 else [idx(0)]
        inv = Bin("div", const(1, dt), call("sqrt", add(_wide(var.at(c), dt), const(eps, dt))))
        y = mul(mul(sub(_wide(x.at(index), dt), _wide(mean.at(c), dt)), inv), _wide(scale.at(c), dt))
        return add(y, _wide(bias.at(c), dt))

    return [ComputeTensor(x.shape, x.dtype, at)]


@anchor("LayerNormalization", prologue=True)
def _layer_norm(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, scale = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    assert x is not None and scale is not None
    axis = node.attrs.get("axis", -1) % x.rank
    axes = list(range(axis, x.rank))
    dt = _stash(node, x)
    normalized = x.shape[axis:]

    def param(t: Tensor, index: list[Expr]) -> Expr:
        lead = len(normalized) - t.rank
        return _wide(t.at([idx(0) if d == 1 else index[axis + lead + k] for k, d in enumerate(t.shape)]), dt)

    def write(index: list[Expr], xhat: Expr, mean: Expr, inv: Expr) -> Stmt:
        y = mul(xhat, param(scale, index))
        return emit(0, index, add(y, param(bias, index)) if bias is not None else y)

    def stats(index: list[Expr], mean: Expr, inv: Expr) -> Stmt:
        return seq(emit(1, index, mean) if emit.needed(1) else None, emit(2, index, inv) if emit.needed(2) else None)

    eps = node.attrs.get("epsilon", 1e-5)
    block = blocked_channels(node, axis)
    if block:  # vectors of one channel block: contiguous in the blocked source
        with ctx.vector_lanes(block):
            return normalize(ctx, x, axes, eps, dt, write, stats)
    if not (emit.needed(1) or emit.needed(2)) and reads_channels_first(node, x, axis, ctx.lanes):
        return normalize_rows_as_lanes(ctx, x, eps, dt, write)
    return normalize(ctx, x, axes, eps, dt, write, stats)


@anchor("ChannelLayerNorm", prologue=True)
def _channel_layer_norm(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, scale = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    assert x is not None and scale is not None
    dt = _stash(node, x)

    def write(index: list[Expr], xhat: Expr, mean: Expr, inv: Expr) -> Stmt:
        y = mul(xhat, _wide(scale.at([index[1]]), dt))
        return emit(0, index, add(y, _wide(bias.at([index[1]]), dt)) if bias is not None else y)

    eps = node.attrs.get("epsilon", 1e-5)
    if ctx.lanes < 2 or not all(isinstance(d, int) for d in x.shape[1:]):  # a scalar target; run-time map sizes
        return normalize(ctx, x, [1], eps, dt, write)
    view, index_of = positions_last(x)
    return normalize_rows_as_lanes(ctx, view, eps, dt, lambda i, xhat, mean, inv: write(index_of(i), xhat, mean, inv))


@anchor("InstanceNormalization", prologue=True)
def _instance_norm(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, scale, bias = ins[:3]
    assert x is not None and scale is not None and bias is not None
    dt = _stash(node, x)

    def write(index: list[Expr], xhat: Expr, mean: Expr, inv: Expr) -> Stmt:
        c = [index[1]]
        return emit(0, index, add(mul(xhat, _wide(scale.at(c), dt)), _wide(bias.at(c), dt)))

    return normalize(ctx, x, list(range(2, x.rank)), node.attrs.get("epsilon", 1e-5), dt, write)


@anchor("GroupNormalization", prologue=True)
def _group_norm(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, scale, bias = ins[:3]
    assert x is not None and scale is not None and bias is not None
    groups = node.attrs["num_groups"]
    per = x.shape[1] // groups
    dt = _stash(node, x)
    shape = (x.shape[0], groups, per, *x.shape[2:])

    def channel(index: list[Expr]) -> Expr:
        return binop("add", binop("mul", index[1], idx(per)), index[2])

    grouped = ComputeTensor(shape, x.dtype, lambda i: x.at([i[0], channel(i), *i[3:]]))

    def write(index: list[Expr], xhat: Expr, mean: Expr, inv: Expr) -> Stmt:
        c = [channel(index)]
        y = add(mul(xhat, _wide(scale.at(c), dt)), _wide(bias.at(c), dt))
        return emit(0, [index[0], c[0], *index[3:]], y)

    return normalize(ctx, grouped, list(range(2, len(shape))), node.attrs.get("epsilon", 1e-5), dt, write)


@anchor("MeanVarianceNormalization", prologue=True)
def _mvn(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    axes = sorted(a % x.rank for a in node.attrs.get("axes", [0, 2, 3]))
    dt = _stash(node, x)

    def write(index: list[Expr], xhat: Expr, mean: Expr, inv: Expr) -> Stmt:
        std = Bin("div", const(1, dt), inv)
        return emit(0, index, Bin("div", sub(_wide(x.at(index), dt), mean), add(std, const(1e-9, dt))))

    return normalize(ctx, x, axes, 0.0, dt, write)


@anchor("LpNormalization", prologue=True)
def _lp_norm(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    axis = node.attrs.get("axis", -1) % x.rank
    p = node.attrs.get("p", 2)
    dt = _stash(node, x)

    def row(index: list[Expr | None]) -> Stmt:
        def term(i: list[Expr]) -> Expr:
            v = _wide(x.at(i), dt)
            return absolute(v) if p == 1 else mul(v, v)

        def finish(total: Expr) -> Stmt:
            norm = ctx.let(total if p == 1 else call("sqrt", total), "norm")
            zero = Bin("eq", norm, const(0, dt))
            return ctx.loop(x.shape[axis], lambda j: emit(0, _fill(index, [axis], [j]), select(
                zero, const(0, dt), Bin("div", _wide(x.at(_fill(index, [axis], [j])), dt), norm))), "j")

        return accumulate(ctx, index, x.shape, term, const(0, dt), add, finish)

    return reduce_each(ctx, x.shape, [axis], row)


@anchor("LRN", prologue=True)
def _lrn(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    size = node.attrs["size"]
    alpha, beta, bias = node.attrs.get("alpha", 1e-4), node.attrs.get("beta", 0.75), node.attrs.get("bias", 1.0)
    dt = _stash(node, x)
    channels = x.shape[1]
    before = (size - 1) // 2

    def element(index: list[Expr]) -> Stmt:
        def term(i: list[Expr]) -> Expr:
            c = binop("sub", binop("add", index[1], i[-1]), idx(before))
            ok = Bin("and", Bin("ge", c, idx(0)), Bin("lt", c, idx(channels)))
            v = _wide(x.at([index[0], binop("min", binop("max", c, idx(0)), idx(channels - 1)), *index[2:]]), dt)
            return select(ok, mul(v, v), const(0, dt))

        def finish(total: Expr) -> Stmt:
            scale = add(const(bias, dt), mul(const(alpha / size, dt), total))
            return emit(0, index, Bin("div", _wide(x.at(index), dt), call("pow", scale, const(beta, dt))))

        return accumulate(ctx, [*index, None], [*x.shape, size], term, const(0, dt), add, finish)

    return ctx.loops(x.shape, element)


# ---------------------------------------------------------------- softmax family


ROW_BUFFER = 4096  # softmax rows up to this long keep their exponentials on the stack


@anchor("Softmax", "LogSoftmax", prologue=True)
def _softmax(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    axis = node.attrs.get("axis", -1) % x.rank
    dt = cdtype(x.dtype)
    log = node.op == "LogSoftmax"
    n = x.shape[axis]
    longest = bound(n)  # a run-time row length: its buffer holds the longest row
    keep = stack(ctx, dt, longest, "row") if not log and axis == x.rank - 1 and 0 < longest <= ROW_BUFFER else None

    def row(index: list[Expr | None]) -> Stmt:
        def with_max(m: Expr) -> Stmt:
            peak = ctx.let(m, "peak")

            def shifted(i: list[Expr]) -> Expr:
                return exp_nonpos(sub(x.at(i), peak))

            def finish(total: Expr) -> Stmt:
                scale = ctx.let(call("log", total) if log else Bin("div", const(1, dt), total), "norm")

                def out(j: Expr) -> Stmt:
                    at = _fill(index, [axis], [j])
                    if keep is not None:
                        return emit(0, at, mul(Load(keep, j), scale))
                    s = sub(x.at(at), peak)
                    return emit(0, at, sub(s, scale) if log else mul(exp_nonpos(s), scale))

                return ctx.loop(n, out, "j")

            return accumulate(ctx, index, x.shape, shifted, const(0, dt), add, finish, keep)

        return accumulate(ctx, index, x.shape, x.at, const(lowest(dt), dt), fast_max, with_max)

    body = reduce_each(ctx, x.shape, [axis], lambda index: Allocate(keep, row(index)) if keep is not None
                       else row(index))
    return body


@anchor("Hardmax", prologue=True)
def _hardmax(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    axis = node.attrs.get("axis", -1) % x.rank
    dt = cdtype(x.dtype)

    def row(index: list[Expr | None]) -> Stmt:
        best, where = stack(ctx, dt, 1, "best"), stack(ctx, INDEX, 1, "at")

        def step(j: Expr) -> Stmt:
            v = ctx.let(x.at(_fill(index, [axis], [j])), "x")
            better = ctx.let(Bin("gt", v, Load(best, idx(0))), "b")
            return seq(Store(best, idx(0), select(better, v, Load(best, idx(0)))),
                       Store(where, idx(0), select(better, j, Load(where, idx(0)))))

        init = seq(Store(best, idx(0), const(lowest(dt), dt)), Store(where, idx(0), idx(0)))
        scan = ctx.loop(x.shape[axis], step, "r")
        out = ctx.loop(x.shape[axis], lambda j: emit(0, _fill(index, [axis], [j]), select(
            Bin("eq", j, Load(where, idx(0))), const(1, dt), const(0, dt))), "j")
        return Allocate(best, Allocate(where, seq(init, scan, out)))

    return reduce_each(ctx, x.shape, [axis], row)
