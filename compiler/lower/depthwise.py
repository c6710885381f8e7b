"""Depthwise convolution (one input and one output channel per group), vectorized along output rows.

The same input layout serves MaxPool (padded with -inf instead of zeros).

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
from aic.ir.loop_tools import binop, seq
from aic.ir.ops.window import Window

from .core import LowerCtx, Tensor, const, idx, linear, store
from .mathx import add
from .rows import vector_row
from .sizes import size_prod

TapReader = Callable[[Expr, Expr, list[Expr], list[int]], Expr]


def phase_split_input(ctx: LowerCtx, x: Tensor, window: Window, kernel: list[int], outs: list[int],
                      fill: float = 0.0) -> tuple[TapReader, Stmt]:
    """The input copied into a `fill`-padded, phase-split scratch; read(n, c, out position, taps) is the
    (vector-friendly) load of kernel tap `taps` of that output position."""
    n_batch, channels = x.shape[:2]
    spatial = list(x.shape[2:])
    strides, dils = list(window.strides), list(window.dilations)
    begins = [window.pad_amounts(i, d)[0] for i, d in enumerate(spatial)]
    subs = [-(-(s * (o - 1) + d * (k - 1) + 1) // s) for o, k, s, d in zip(outs, kernel, strides, dils)]
    shape = (n_batch, channels, *strides, *subs)
    xs, prep = _phase_split(ctx, x, shape, strides, begins, fill)

    def read(n: Expr, c: Expr, o: list[Expr], taps: list[int]) -> Expr:
        phase = [t * d % s for t, d, s in zip(taps, dils, strides)]
        sub = [binop("add", oi, idx(t * d // s)) for oi, t, d, s in zip(o, taps, dils, strides)]
        return Load(xs, linear([n, c, *map(idx, phase), *sub], shape))

    return read, prep


def output_rows(ctx: LowerCtx, lead: tuple[int, ...], outs: list[int],
                row: Callable[[list[Expr], list[Expr]], Stmt]) -> Stmt:
    """Loops over `lead` axes and output rows; each row is vector_row over the last output axis;
    row(lead index, output position)."""
    def image(i: list[Expr]) -> Stmt:
        return ctx.loops(outs[:-1], lambda o: vector_row(ctx, outs[-1], lambda v: row(i, [*o, v])), "oh")

    return ctx.loops(lead, image, "dc")


def depthwise(ctx: LowerCtx, x: Tensor, weights: np.ndarray, window: Window, outs: list[int],
              finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """Depthwise conv of float32 `x` [N, C, *spatial] with constant `weights` [C, 1, *kernel]."""
    n_batch, channels = x.shape[:2]
    kernel = list(weights.shape[2:])
    read, prep = phase_split_input(ctx, x, window, kernel, outs)
    w = ctx.weight(np.ascontiguousarray(weights.reshape(channels, -1), np.float32), "w")

    def row(i: list[Expr], o: list[Expr]) -> Stmt:
        n, c = i
        chains: list[Expr] = []
        for head in itertools.product(*(range(k) for k in kernel[:-1])):
            acc: Expr | None = None
            for t_last in range(kernel[-1]):
                taps = [*head, t_last]
                xv = read(n, c, o, taps)
                wv = w.at([c, idx(int(np.ravel_multi_index(taps, kernel)))])
                acc = binop("mul", xv, wv) if acc is None else Call("fma", (xv, wv, acc))
            assert acc is not None
            chains.append(acc)
        total = chains[0]
        for ch in chains[1:]:
            total = add(total, ch)
        return finish([n, c, *o], total)

    return seq(prep, output_rows(ctx, (n_batch, channels), outs, row))


def _phase_split(ctx: LowerCtx, x: Tensor, shape: tuple[int, ...], strides: list[int],
                 begins: list[int], fill: float) -> tuple[Buffer, Stmt]:
    """Scratch [N, C, *strides, *subs]: element (n, c, *p, *q) = x[n, c, *(q*s + p - begin)], or `fill`
    outside x.

    Per phase and axis, sub-positions split into a zero head, a copied middle and a zero
    tail, so only the borders are written with zeros and the copy has no bounds checks
    (with unit strides the copy reads whole input rows: vectors)."""
    rank = len(strides)
    spatial = list(x.shape[2:])
    subs = list(shape[2 + rank:])
    buf = ctx.scratch(x.dtype, size_prod(shape))
    zero = const(fill, x.dtype)

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
