"""Depthwise convolution (one input and one output channel per group), vectorized along output rows.

The input is first copied into a zero-padded scratch, split by stride phase: element
(c, *phase, *sub) holds padded input position sub * stride + phase, so kernel tap t of
output position o reads phase (t*d) % s at sub-position o + (t*d) // s, contiguous in o
whatever the stride. The kernel then has no bounds checks: per output row, every tap is one
vector fused multiply-add of an input row with a broadcast weight (one independent chain
per kernel row), and the epilogue (bias, BN, activation) runs on the same vectors. A row
is whole vectors plus one shorter vector, so nothing is left to scalar code.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from aic.ir.loop import Buffer, Call, Expr, For, Load, Stmt
from aic.ir.ops.window import Window
from aic.ir.schedule import Vectorize

from ..loop_util import binop, select, seq
from .core import LowerCtx, Tensor, const, idx, linear, store
from .mathx import add
from .window import clamped, inside_input


def depthwise(ctx: LowerCtx, x: Tensor, weights: np.ndarray, window: Window, outs: list[int],
              finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """Depthwise conv of float32 `x` [N, C, *spatial] with constant `weights` [C, 1, *kernel]."""
    n_batch, channels = x.shape[:2]
    spatial, kernel = list(x.shape[2:]), list(weights.shape[2:])
    strides, dils = list(window.strides), list(window.dilations)
    begins = [window.pad_amounts(i, d)[0] for i, d in enumerate(spatial)]
    subs = [-(-(s * (o - 1) + d * (k - 1) + 1) // s) for o, k, s, d in zip(outs, kernel, strides, dils)]
    shape = (n_batch, channels, *strides, *subs)
    xs, prep = _phase_split(ctx, x, shape, strides, begins)
    w = ctx.weight(np.ascontiguousarray(weights.reshape(channels, -1), np.float32), "w")
    rank = len(kernel)

    def row(n: Expr, c: Expr, lead: list[Expr], last: Expr) -> Stmt:
        o = [*lead, last]
        chains: list[Expr] = []
        for head in itertools.product(*(range(k) for k in kernel[:-1])):
            acc: Expr | None = None
            for t_last in range(kernel[-1]):
                taps = [*head, t_last]
                phase = [t * d % s for t, d, s in zip(taps, dils, strides)]
                sub = [binop("add", oi, idx(t * d // s)) for oi, t, d, s in zip(o, taps, dils, strides)]
                xv = Load(xs, linear([n, c, *map(idx, phase), *sub], shape))
                wv = w.at([c, idx(int(np.ravel_multi_index(taps, kernel)))])
                acc = binop("mul", xv, wv) if acc is None else Call("fma", (xv, wv, acc))
            assert acc is not None
            chains.append(acc)
        total = chains[0]
        for ch in chains[1:]:
            total = add(total, ch)
        return finish([n, c, *o], total)

    def image(i: list[Expr]) -> Stmt:
        return ctx.loops(outs[:-1], lambda lead: vector_row(ctx, outs[-1], lambda v: row(i[0], i[1], lead, v)), "oh") \
            if rank > 1 else vector_row(ctx, outs[-1], lambda v: row(i[0], i[1], [], v))

    return seq(prep, ctx.loops((n_batch, channels), image, "dc"))


def vector_row(ctx: LowerCtx, extent: int, body: Callable[[Expr], Stmt]) -> Stmt:
    """for v in extent: body(v), as whole vectors of the target's lanes plus one shorter vector."""
    lanes = ctx.lanes
    whole = extent // lanes * lanes
    main = ctx.loop(whole, body, "ow") if whole else None
    rest = ctx.loop(extent - whole, lambda v: body(binop("add", v, idx(whole))), "ot") if extent > whole else None
    for loop, n in ((main, lanes), (rest, extent - whole)):
        if isinstance(loop, For) and n >= 2:
            ctx.hints.append(Vectorize(loop.var.name, n))
    return seq(main, rest)


def _phase_split(ctx: LowerCtx, x: Tensor, shape: tuple[int, ...], strides: list[int],
                 begins: list[int]) -> tuple[Buffer, Stmt]:
    """Scratch [N, C, *strides, *subs]: element (n, c, *p, *q) = x[n, c, *(q*s + p - begin)] or 0 outside."""
    rank = len(strides)
    spatial = list(x.shape[2:])
    buf = ctx.scratch(x.dtype, int(np.prod(shape)))
    subs = list(shape[2 + rank:])
    if all(s == 1 for s in strides):
        zero = ctx.loops((int(np.prod(shape)),), lambda i: store(buf, i[0], const(0, x.dtype)), "z")

        def copy(i: list[Expr]) -> Stmt:
            to = [*i[:2], *(idx(0) for _ in strides), *(binop("add", c, idx(b)) for c, b in zip(i[2:], begins))]
            return store(buf, linear(to, shape), x.at(i))

        inner = [min(d, q - b) for d, q, b in zip(spatial, subs, begins)]  # rows that fit (ceil-mode outputs)
        return buf, seq(zero, ctx.loops((*x.shape[:2], *inner), copy, "p"))

    def fill(i: list[Expr]) -> Stmt:
        phase, sub = i[2:2 + rank], i[2 + rank:]
        coords = [binop("sub", binop("add", binop("mul", q, idx(s)), p), idx(b))
                  for q, p, s, b in zip(sub, phase, strides, begins)]
        value = select(inside_input(coords, spatial), x.at([*i[:2], *clamped(coords, spatial)]), const(0, x.dtype))
        return store(buf, linear(i, shape), value)

    return buf, ctx.loops(shape, fill, "p")

