"""Normalization over the channels of a channels-first map, read in place (ConvNeXt's LayerNorm).

ChannelLayerNorm (the channels-first pass's form of the same LayerNorm between channels-first
convolutions) reads and writes the map channels-first: its positions, flattened, are the lanes
of `normalize_rows_as_lanes` over a channels-last view, and both its loads and its stores are
contiguous vectors.

`LayerNorm(Transpose(x, [0, 2, 3, 1]), axis=-1)` normalizes each position of an NCHW map over its
channels. Read through the fused transpose, one position's channels lie a whole plane apart, so a
per-position reduction gathers one float per cache line (and per page). Here the positions of a
row are the vector lanes instead: a tile of `lanes` neighbouring positions reads each channel as
one contiguous vector, and the mean, the variance (two passes, as accurate as the reference) and
the output are computed for the whole tile at once. The tile's channel slices (lanes x channels)
stay in L1 across the three passes; only the writes of the [.., W, C] output are strided.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Allocate, Bin, Buffer, Cast, Expr, Load, Stmt, Store
from aic.ir.loop_tools import binop, seq

from .core import BufferTensor, ComputeTensor, LowerCtx, Tensor, const, idx
from .mathx import add, call, mul, sub
from .reduce import stack

Write = Callable[[list[Expr], Expr, Expr, Expr], Stmt]
MIN_ROW = 8  # positions per row below which the per-position reduction is kept


def reads_channels_first(node: Node, x: Tensor, axis: int, lanes: int) -> bool:
    """Whether LayerNorm `node` over its last axis reads, through a fused Transpose (`x` computed, not
    stored), a tensor whose contiguous axis is the one before the last here."""
    src = node.inputs[0].producer if node.inputs[0] is not None else None
    if lanes < 2 or isinstance(x, BufferTensor) or src is None or src.op != "Transpose":
        return False  # a scalar target (CUDA) keeps the reduction its schedules expect
    if axis != x.rank - 1 or x.rank < 3:
        return False
    perm = list(src.attrs.get("perm", []))
    ints = all(isinstance(d, int) for d in x.shape)
    return len(perm) == x.rank and perm[-2] == x.rank - 1 and perm[-1] != x.rank - 1 and ints and (
        x.shape[-2] >= max(MIN_ROW, lanes) and x.shape[-1] >= 2)


def blocked_channels(node: Node, axis: int) -> int:
    """The block size B when LayerNorm `node` normalizes, over its last axis only, the channels of a blocked
    tensor [N, C/B, H, W, B] read through UnblockChannels and a Transpose to [N, H, W, C] (a depthwise
    convolution's output in the blocked layout): vectors of B lanes then read B contiguous floats; 0 otherwise."""
    src = node.inputs[0].producer if node.inputs[0] is not None else None
    if src is None or src.op != "Transpose" or src.inputs[0] is None or axis != node.inputs[0].type.rank - 1:
        return 0
    unblock = src.inputs[0].producer
    perm = list(src.attrs.get("perm", []))
    if unblock is None or unblock.op != "UnblockChannels" or unblock.inputs[0] is None or perm[-1:] != [1]:
        return 0
    return int(unblock.inputs[0].type.shape[-1])


def positions_last(x: Tensor) -> tuple[Tensor, Callable[[list[Expr]], list[Expr]]]:
    """A view [N, P, C] of `x` [N, C, spatial...] (P: the spatial positions, flattened) and the map from a view
    index to x's. The flat position's (div, mod) pairs fold back into it (core.linear), so the view's rows are
    x's contiguous planes."""
    n, chans, *spatial = x.shape

    def index_of(view: list[Expr]) -> list[Expr]:
        p, out, stride = view[1], [], math.prod(spatial)
        for k, d in enumerate(spatial):
            stride //= d
            e = p if stride == 1 else binop("div", p, idx(stride))
            out.append(e if k == 0 else binop("mod", e, idx(d)))
        return [view[0], view[2], *out]

    return ComputeTensor((n, math.prod(spatial), chans), x.dtype, lambda i: x.at(index_of(i))), index_of


def normalize_rows_as_lanes(ctx: LowerCtx, x: Tensor, epsilon: float, dt: DType, write: Write) -> Stmt:
    """Normalize `x` [..., W, C] over C with vectors along W: write(index, x_hat, mean, inv_std) per element."""
    *lead, width, chans = x.shape
    lanes = ctx.lanes
    count = const(float(chans), dt)

    def tile(outer: list[Expr], start: Expr, size: int) -> Stmt:
        mean, inv = stack(ctx, dt, size, "mean"), stack(ctx, dt, size, "inv")

        def at(c: Expr, lane: Expr) -> list[Expr]:
            return [*outer, binop("add", start, lane), c]

        def lanes_of(body: Callable[[Expr], Stmt]) -> Stmt:
            return ctx.loop(size, body, "l")

        def over_channels(body: Callable[[Expr, Expr], Stmt]) -> Stmt:
            return ctx.loop(chans, lambda c: lanes_of(lambda lane: body(c, lane)), "c")

        def value(c: Expr, lane: Expr) -> Expr:
            v = x.at(at(c, lane))
            return v if v.dtype == dt else Cast(dt, v)

        def centered(c: Expr, lane: Expr) -> Expr:
            return sub(value(c, lane), Load(mean, lane))

        def accumulate_into(buf: Buffer, term: Callable[[Expr, Expr], Expr]) -> Stmt:
            return seq(lanes_of(lambda lane: Store(buf, lane, const(0, dt))),
                       over_channels(lambda c, lane: Store(buf, lane, add(Load(buf, lane), term(c, lane)))))

        sums = accumulate_into(mean, value)
        to_mean = lanes_of(lambda lane: Store(mean, lane, Bin("div", Load(mean, lane), count)))
        squares = accumulate_into(inv, lambda c, lane: mul(centered(c, lane), centered(c, lane)))
        to_inv = lanes_of(lambda lane: Store(inv, lane, Bin("div", const(1, dt), call(
            "sqrt", add(Bin("div", Load(inv, lane), count), const(epsilon, dt))))))
        out = over_channels(lambda c, lane: write(at(c, lane), mul(centered(c, lane), Load(inv, lane)),
                                                  Load(mean, lane), Load(inv, lane)))
        return Allocate(mean, Allocate(inv, seq(sums, to_mean, squares, to_inv, out)))

    whole, rest = divmod(width, lanes)

    def row(outer: list[Expr]) -> Stmt:
        tiles = ctx.loop(whole, lambda t: tile(outer, binop("mul", t, idx(lanes)), lanes), "w")
        return seq(tiles, tile(outer, idx(whole * lanes), rest) if rest else None)

    return ctx.loops(lead, row, "p")
