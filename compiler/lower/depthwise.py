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
from aic.ir.loop import Buffer, Call, Expr, Load, Stmt
from aic.ir.ops.window import Window

from ..loop_util import binop, seq
from .core import LowerCtx, Tensor, const, idx, linear, store
from .mathx import add
from .rows import vector_row


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


def _phase_split(ctx: LowerCtx, x: Tensor, shape: tuple[int, ...], strides: list[int],
                 begins: list[int]) -> tuple[Buffer, Stmt]:
    """Scratch [N, C, *strides, *subs]: element (n, c, *p, *q) = x[n, c, *(q*s + p - begin)], or 0 outside x.

    Per phase and axis, sub-positions split into a zero head, a copied middle and a zero
    tail, so only the borders are written with zeros and the copy has no bounds checks
    (with unit strides the copy reads whole input rows: vectors)."""
    rank = len(strides)
    spatial = list(x.shape[2:])
    subs = list(shape[2 + rank:])
    buf = ctx.scratch(x.dtype, int(np.prod(shape)))
    zero = const(0, x.dtype)

    def fill(n: Expr, c: Expr, phase: tuple[int, ...]) -> Stmt:
        ranges = []
        for p, s, b, d, q in zip(phase, strides, begins, spatial, subs):
            lo = min(q, max(0, -(-(b - p) // s)))
            ranges.append((lo, max(lo, min(q, (d - 1 + b - p) // s + 1))))

        def at(sub: list[Expr]) -> Expr:
            return linear([n, c, *map(idx, phase), *sub], shape)

        def level(a: int, sub: list[Expr]) -> Stmt:
            if a == rank:
                coords = [binop("sub", binop("add", binop("mul", q, idx(s)), idx(p)), idx(b))
                          for q, p, s, b in zip(sub, phase, strides, begins)]
                return store(buf, at(sub), x.at([n, c, *coords]))
            lo, hi = ranges[a]
            rest = subs[a + 1:]

            def zeros(start: int, stop: int) -> Stmt:
                return ctx.loops((stop - start, *rest), lambda i: store(
                    buf, at([*sub, binop("add", i[0], idx(start)), *i[1:]]), zero), "pz")

            middle = ctx.loop(hi - lo, lambda q: level(a + 1, [*sub, binop("add", q, idx(lo))]), "pq")
            return seq(zeros(0, lo) if lo else None, middle, zeros(hi, subs[a]) if hi < subs[a] else None)

        return level(0, [])

    combos = list(itertools.product(*(range(s) for s in strides)))
    return buf, ctx.loops(x.shape[:2], lambda i: seq(*(fill(i[0], i[1], ph) for ph in combos)), "p")
