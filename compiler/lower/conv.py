"""Lowering of convolutions: Conv, ConvTranspose, ConvInteger (any number of spatial dims).

Float32 Conv with constant weights and enough output channels per group runs as a direct
convolution on the matrix-product micro-kernel: a tile is `ROWS` output positions by
`2 * lanes` output channels; weights are packed at compile time to
[group, channel tiles, in channels, *kernel, tile width] so each tap is one contiguous
vector; the input is copied once into a zero-padded scratch buffer so the inner loop has
no bounds checks. 1x1 convolutions run over the flattened positions (H*W contiguous): output
channels x whole vectors of positions, or, where the positions are not a multiple of 4 or the
convolution is strided, positions x channels over a copy of the input packed by strips of
positions. Depthwise convolutions run on a zero-padded, phase-split copy of the input
(depthwise.py); other narrow ones use a direct nest whose output row vectorizes (stride 1).
ConvTranspose runs one stride-1 convolution per output phase (conv_transpose.py); with
dilations or non-constant weights it gathers per output element. The tile, the weight
packing and (for position x channel tiles) the order of the tile loops are schedule records,
as for matrix products (compiler/lower/contraction.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Bin, Buffer, Cast, Expr, Load, Stmt
from aic.ir.loop_tools import binop, select, seq
from aic.ir.ops.window import Window, make_window
from aic.ir.schedule import MicroKernel, ScheduleError

from .contraction import ROWS, micro_kernel, register_tile, tile_order, weight_packing
from .conv_transpose import conv_transpose_phases
from .core import (
    BufferTensor,
    ComputeTensor,
    LowerCtx,
    Tensor,
    cdtype,
    clamp,
    const,
    delinear,
    idx,
    linear,
    node_error,
    store,
)
from .depthwise import PhaseSplit, depthwise
from .mathx import add, mul
from .reduce import accumulate
from .sizes import shape_of, size_prod
from .table import Emit, anchor
from .window import clamped, inside_input, interior, padded_input, tap_coords, window_loops

TapRead = Callable[[Expr, Expr, list[Expr], list[Expr]], Expr]


def window_of(node: Node, kernel: list[int]) -> Window:
    return make_window(node.attrs, kernel, lambda msg: node_error(node, msg), bool(node.attrs.get("ceil_mode", 0)))


def _kernel_shape(node: Node, w: Tensor) -> list[int]:
    return list(node.attrs.get("kernel_shape") or w.shape[2:])


@anchor("Conv")
def _conv(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, w = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    kernel = _kernel_shape(node, w)
    window = window_of(node, kernel)
    out_shape = shape_of(node.outputs[0].type)
    outs = list(out_shape[2:])
    pads = [window.pad_amounts(i, d) for i, d in enumerate(x.shape[2:])]
    extents = [max(b + d + e, (o - 1) * s + span)
               for (b, e), d, o, s, span in zip(pads, x.shape[2:], outs, window.strides, window.spans)]
    group = node.attrs.get("group", 1)
    weights = node.inputs[1].const if node.inputs[1] is not None else None
    ocg = out_shape[1] // group
    dtype = cdtype(x.dtype)

    def finish(index: list[Expr], v: Expr) -> Stmt:
        if bias is not None:
            v = add(v, bias.at([index[1]]))
        return emit(0, index, v)

    if ctx.lanes == 1:  # scalar targets (cuda) tile the plain nest themselves (implicit GEMM)
        return _conv_direct(ctx, x, w, window, out_shape, group, dtype, finish, one_nest=True)
    fast = x.dtype == DType.float32 and weights is not None and ocg > 1
    pointwise = all(k == 1 for k in kernel) and not any(window.pads)
    if fast and pointwise and any(s > 1 for s in window.strides) and 2 * outs[-1] > ctx.lanes:
        # A strided 1x1 convolution is a 1x1 convolution of the subsampled input: copy that, then go on.
        strides = window.strides
        x = ComputeTensor((*x.shape[:2], *outs), x.dtype, lambda i, x=x: x.at(
            [*i[:2], *(binop("mul", o, idx(st)) for o, st in zip(i[2:], strides))]))
        window = window_of_strides(window)
        extents = list(outs)
    depth = x.shape[1] // group * int(np.prod(kernel))
    if fast and any(s > 1 for s in window.strides) and 2 * outs[-1] > ctx.lanes and depth <= STRIDED_ROWS_DEPTH:
        # Shallow strided convolutions (stems): rows over the stride-phase-split input, whose taps are contiguous.
        split = PhaseSplit(ctx, x, window, kernel, outs, local=False, slack=2 * ctx.lanes)
        return seq(split.prepare(), _conv_rows(ctx, node, x, np.asarray(weights, np.float32), window, outs, group,
                                               finish, split.read))
    if fast and pointwise and all(s == 1 for s in window.strides) and len(outs) == 2 and isinstance(
            x, BufferTensor) and outs[0] * outs[1] > ctx.lanes and outs[0] * outs[1] % 4 == 0:
        return _pointwise_flat(ctx, node, x, np.asarray(weights, np.float32), outs, group, finish)
    if fast and pointwise and ocg >= ctx.lanes:  # other 1x1 (7x7 maps, strided): tiles over a packed copy
        return _conv_tiled(ctx, node, x, np.asarray(weights, np.float32), window, outs, group, finish)
    if fast and all(s == 1 for s in window.strides) and 2 * outs[-1] > ctx.lanes and not _ragged_rows(
            ctx, outs, depth, ocg):
        slack = 0 if outs[-1] % ctx.lanes == 0 else 2 * ctx.lanes  # row tiles compute whole vectors
        xp, prep = padded_input(ctx, x, [b for b, _ in pads], extents, slack)
        return seq(prep, _conv_rows(ctx, node, xp, np.asarray(weights, np.float32), window, outs, group, finish))
    if fast and ocg >= ctx.lanes:
        xp, prep = padded_input(ctx, x, [b for b, _ in pads], extents)
        return seq(prep, _conv_tiled(ctx, node, xp, np.asarray(weights, np.float32), window, outs, group, finish))
    if x.dtype == DType.float32 and weights is not None and group == x.shape[1] == out_shape[1]:
        return depthwise(ctx, x, np.asarray(weights, np.float32), window, outs, finish)
    return _conv_direct(ctx, x, w, window, out_shape, group, dtype, finish)


ROWS_MAX_DEPTH = 512  # above this reduction depth, ragged rows go to position x channel tiles
WEIGHTS_OUTER = 4  # weights this many times the size of the input: loop over weight tiles outermost
STRIDED_ROWS_DEPTH = 64  # strided convolutions this shallow run as rows over a phase-split input


def _ragged_rows(ctx: LowerCtx, outs: list[int], depth: int, ocg: int) -> bool:
    """Whether output rows that are not whole vectors (7, 10, 14, 20 wide) are better tiled as flattened
    positions x output channels: every lane useful, at the cost of a scalar (strided) epilogue, which a deep
    reduction amortises (measured in BENCHMARKS.md)."""
    return outs[-1] % ctx.lanes != 0 and depth > ROWS_MAX_DEPTH and ocg >= 2 * ctx.lanes


def _pointwise_flat(ctx: LowerCtx, node: Node, x: BufferTensor, weights: np.ndarray, outs: list[int], group: int,
                    finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """A 1x1 stride-1 convolution of an NCHW plane is a matrix product over the flattened positions
    (H*W contiguous): rows over [N, C, H*W], so every tile but the last is whole vectors, whatever the
    row width; the output index (p div W, p mod W) folds back to p (core.linear)."""
    height, width = outs
    flat = BufferTensor((*x.shape[:2], height * width), x.dtype, lambda: x.buffer)

    def to_plane(index: list[Expr], v: Expr) -> Stmt:
        p = index[2]
        return finish([*index[:2], binop("div", p, idx(width)), binop("mod", p, idx(width))], v)

    window = Window((1,), (1,), (1,), (0, 0))
    outer = weights.nbytes > WEIGHTS_OUTER * x.shape[1] * height * width * 4  # small maps, large weights
    return _conv_rows(ctx, node, flat, weights.reshape(*weights.shape[:2], 1), window, [height * width], group,
                      to_plane, exact=True, channels_outer=outer)


def window_of_strides(window: Window) -> Window:
    """The same window with unit strides."""
    return Window(window.kernel, (1,) * window.rank, window.dilations, window.pads, window.auto_pad, window.ceil_mode)


def _tap_offset(window: Window, padded: list[int], taps: list[Expr]) -> Expr:
    """Offset within one padded input plane of kernel tap `taps`."""
    strides = [size_prod(padded[i + 1:]) for i in range(len(padded))]
    off: Expr = idx(0)
    for t, d, st in zip(taps, window.dilations, strides):
        off = binop("add", off, binop("mul", t, idx(d * st)))
    return off


def _pack_strips(ctx: LowerCtx, x: Tensor, window: Window, kernel: list[int], outs: list[int],
                 rows: int) -> tuple[Buffer, Stmt]:
    """The input of each strip of `rows` output positions, tap by tap, copied from the (padded) input `x` to
    [N, strips, C, *kernel, rows]: one contiguous stream per tile (the last strip is short)."""
    n_batch, channels, positions = x.shape[0], x.shape[1], size_prod(outs)
    strips, taps = -(-positions // rows), int(np.prod(kernel))
    buf = ctx.scratch(x.dtype, n_batch * strips * channels * taps * rows)

    def copy(i: list[Expr]) -> Stmt:
        n, c, tap, p = i
        strip, r = binop("div", p, idx(rows)), binop("mod", p, idx(rows))
        at = linear([n, strip, c, tap, r], (n_batch, strips, channels, taps, rows))
        ks = delinear(tap, kernel)
        coords = [binop("add", binop("mul", o, idx(s)), binop("mul", k, idx(d)))
                  for o, k, s, d in zip(delinear(p, outs), ks, window.strides, window.dilations)]
        return store(buf, at, x.at([n, c, *coords]))

    return buf, ctx.loops((n_batch, channels, taps, positions), copy, "pk")


def _conv_tiled(ctx: LowerCtx, node: Node, xp: Tensor, weights: np.ndarray, window: Window, outs: list[int],
                group: int, finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """Tiles of output positions (flattened) x output channels. The input is read from the padded `xp`, or
    (1x1 convolutions; strided ones whose weight panels are the outer loop) from a copy packed by strips of
    positions (`_pack_strips`), so each tile reads one contiguous stream instead of a few floats of every
    channel's plane."""
    n_batch, channels = xp.shape[:2]
    oc, kernel = weights.shape[0], list(weights.shape[2:])
    tile = register_tile(ctx, MicroKernel(ROWS, 2 * ctx.lanes))  # output positions x output channels
    rows, width = tile.rows, tile.cols
    # Weights far larger than the input (deep layers, small maps): a panel of weights stays in cache while the
    # input streams, instead of all the weights streaming from memory once per strip of positions.
    order = tile_order(ctx, "cols" if weights.nbytes > WEIGHTS_OUTER * xp.numel * 4 else "rows")
    pointwise = all(k == 1 for k in kernel) and all(s == 1 for s in window.strides) and list(xp.shape[2:]) == outs
    strided = any(s > 1 for s in window.strides)
    pack: Stmt | None = None
    if pointwise or (strided and order == "cols"):  # (measured: other convolutions read the padded planes faster)
        source, pack = _pack_strips(ctx, xp, window, kernel, outs, rows)
    elif isinstance(xp, BufferTensor):
        source = xp.buffer
    else:
        raise node_error(node, "the input must be materialized")
    packed_input = pack is not None
    strips = -(-size_prod(outs) // rows)
    padded = list(xp.shape[2:])
    icg = channels // group
    ocg = oc // group
    weight_packing(ctx, width, True, required=True)
    tiles = -(-ocg // width)
    w = np.zeros((group, tiles * width, icg, *kernel), np.float32)
    w[:, :ocg] = weights.reshape(group, ocg, icg, *kernel)
    w = w.reshape(group, tiles, width, icg, *kernel)
    packed = ctx.weight(np.ascontiguousarray(np.moveaxis(w, 2, -1)), "w")
    plane = size_prod(padded)
    positions = size_prod(outs)
    full_p, full_c = positions // rows * rows, ocg // width * width
    row_strides = [s * size_prod(padded[i + 1:]) for i, s in enumerate(window.strides)]

    def per_image(n: Expr, g: Expr) -> Stmt:
        chan0 = binop("mul", g, idx(icg))

        def part(p0: Expr, nrows: int, c0: Expr, cols: int) -> Stmt:
            def a(r: Expr, ks: list[Expr]) -> Expr:
                # Loop-invariant parts (the row's offset, once rows are unrolled) are hoisted by the back end.
                ic, taps = ks[0], ks[1:]
                if packed_input:
                    strip = binop("add", binop("mul", n, idx(strips)), binop("div", p0, idx(rows)))
                    at = linear([strip, binop("add", chan0, ic), linear(taps, kernel), r],
                                (n_batch * strips, channels, int(np.prod(kernel)), rows))
                    return Load(source, at)
                plane_start = binop("mul", binop("add", binop("add", binop("mul", n, idx(channels)), chan0), ic),
                                    idx(plane))
                row: Expr = idx(0)
                for c, st in zip(delinear(binop("add", p0, r), outs), row_strides):
                    row = binop("add", row, binop("mul", c, idx(st)))
                return Load(source, binop("add", binop("add", plane_start, row), _tap_offset(window, padded, taps)))

            def b(ks: list[Expr], _: Expr, c: Expr) -> Expr:
                return packed.at([g, binop("div", c0, idx(width)), *ks, c])

            def out(r: Expr, _: Expr, c: Expr, v: Expr) -> Stmt:
                coords = delinear(binop("add", p0, r), outs)
                channel = binop("add", binop("mul", g, idx(ocg)), binop("add", c0, c))
                return finish([n, channel, *coords], v)

            return micro_kernel(ctx, [icg, *kernel], nrows, width, cols, a, b, out)

        def strip(p0: Expr, nrows: int) -> Stmt:
            whole = ctx.loop(ocg // width, lambda t: part(p0, nrows, binop("mul", t, idx(width)), width), "ct")
            rest = part(p0, nrows, idx(full_c), ocg - full_c) if ocg > full_c else None
            return seq(whole, rest)

        def panel(c0: Expr, cols: int) -> Stmt:
            whole = ctx.loop(positions // rows, lambda po: part(binop("mul", po, idx(rows)), rows, c0, cols), "po")
            rest = part(idx(full_p), positions - full_p, c0, cols) if positions > full_p else None
            return seq(whole, rest)

        if order == "cols":  # a panel of weights stays in cache while the input streams
            main = ctx.loop(ocg // width, lambda t: panel(binop("mul", t, idx(width)), width), "ct")
            return seq(main, panel(idx(full_c), ocg - full_c) if ocg > full_c else None)
        main = ctx.loop(positions // rows, lambda po: strip(binop("mul", po, idx(rows)), rows), "po")
        tail = strip(idx(full_p), positions - full_p) if positions > full_p else None
        return seq(main, tail)

    return seq(pack, ctx.loop(n_batch, lambda n: ctx.loop(group, lambda g: per_image(n, g), "g"), "n"))


def _conv_rows(ctx: LowerCtx, node: Node, xp: Tensor, weights: np.ndarray, window: Window, outs: list[int],
               group: int, finish: Callable[[list[Expr], Expr], Stmt], read: TapRead | None = None,
               exact: bool = False, channels_outer: bool = False) -> Stmt:
    """Stride-1 convolution, tiles of output channels (rows) by positions along the output's last axis
    (vector columns): the input row is contiguous, so are the stores. Short rows (at most one vector)
    are taken two at a time, so each weight feeds two vectors. `read(n, channel, output position, taps)`
    replaces reading the padded input `xp` (a strided convolution reads a phase-split copy). `exact`: the
    input has no slack after its rows, so the last tile of a row computes only its own columns.
    `channels_outer`: the channel tiles are the outer loop (weights read once; the input once per tile)."""
    n_batch, channels = xp.shape[:2]
    icg = channels // group
    oc, kernel = weights.shape[0], list(weights.shape[2:])
    ocg = oc // group
    lanes = ctx.lanes
    last = outs[-1]
    width = min(2 * lanes, last)
    stacked = 2 if len(outs) > 1 and last <= lanes and outs[-2] > 1 else 1
    rows = ROWS if width > lanes or stacked > 1 else 2 * ROWS
    tile = register_tile(ctx, MicroKernel(rows, stacked * width))  # output channels x positions (of `stacked` rows)
    if tile.cols % stacked or tile.cols // stacked > last:
        raise ScheduleError(f"{tile}: cols must be {stacked} times a row width of at most {last}")
    rows, width = tile.rows, tile.cols // stacked
    if last % lanes == 0 and width % lanes:  # no slack after the rows to round a tile up to whole vectors
        raise ScheduleError(f"{tile}: a row width of {width} would read past the input; use a multiple of {lanes}")
    weight_packing(ctx, rows, True, required=True)
    tiles = -(-ocg // rows)
    w = np.zeros((group, tiles * rows, icg, *kernel), np.float32)
    w[:, :ocg] = weights.reshape(group, ocg, icg, *kernel)
    w = w.reshape(group, tiles, rows, icg, *kernel)
    packed = ctx.weight(np.ascontiguousarray(np.moveaxis(w, 2, -1)), "w")  # [g, tile, ic, *kernel, row]
    full_c, full_r = last // width * width, ocg // rows * rows

    def block(n: Expr, g: Expr, lead: list[Expr], sp_rows: int) -> Stmt:
        """Output positions lead[:-1], lead[-1] + j (j < sp_rows), all of the last axis."""

        def row_index(j: Expr) -> list[Expr]:
            return [*lead[:-1], binop("add", lead[-1], j)] if lead else []

        def tile(o0: Expr, nrows: int, w0: Expr, cols: int) -> Stmt:
            def a(r: Expr, ks: list[Expr]) -> Expr:
                return packed.at([g, binop("div", o0, idx(rows)), *ks, r])

            def b(ks: list[Expr], j: Expr, c: Expr) -> Expr:
                ic, taps = ks[0], ks[1:]
                if read is not None:
                    channel = binop("add", binop("mul", g, idx(icg)), ic)
                    return read(n, channel, [*row_index(j), binop("add", w0, c)], taps)
                coords = [binop("add", o, binop("mul", t, idx(d)))
                          for o, t, d in zip(row_index(j), taps, window.dilations)]
                col = binop("add", binop("add", w0, c), binop("mul", taps[-1], idx(window.dilations[-1])))
                return xp.at([n, binop("add", binop("mul", g, idx(icg)), ic), *coords, col])

            def out(r: Expr, j: Expr, c: Expr, v: Expr) -> Stmt:
                channel = binop("add", binop("mul", g, idx(ocg)), binop("add", o0, r))
                return finish([n, channel, *row_index(j), binop("add", w0, c)], v)

            compute = cols if exact else -(-cols // lanes) * lanes  # whole vectors read the slack; extra lanes dropped
            return micro_kernel(ctx, [icg, *kernel], nrows, compute, cols, a, b, out, sp_rows)

        def channel_tiles(w0: Expr, cols: int) -> Stmt:
            whole = ctx.loop(ocg // rows, lambda t: tile(binop("mul", t, idx(rows)), rows, w0, cols), "ot")
            rest = tile(idx(full_r), ocg - full_r, w0, cols) if ocg > full_r else None
            return seq(whole, rest)

        def column_tiles(o0: Expr, nrows: int) -> Stmt:
            whole = ctx.loop(last // width, lambda t: tile(o0, nrows, binop("mul", t, idx(width)), width), "wt")
            rest = tile(o0, nrows, idx(full_c), last - full_c) if last > full_c else None
            return seq(whole, rest)

        if channels_outer:  # each channel tile's weights stay in cache while the positions stream
            whole = ctx.loop(ocg // rows, lambda t: column_tiles(binop("mul", t, idx(rows)), rows), "ot")
            rest = column_tiles(idx(full_r), ocg - full_r) if ocg > full_r else None
            return seq(whole, rest)
        whole = ctx.loop(last // width, lambda t: channel_tiles(binop("mul", t, idx(width)), width), "wt")
        rest = channel_tiles(idx(full_c), last - full_c) if last > full_c else None
        return seq(whole, rest)

    def image(n: Expr, g: Expr) -> Stmt:
        if len(outs) == 1:
            return block(n, g, [], 1)
        height = outs[-2]

        def rows_of(prefix: list[Expr]) -> Stmt:
            whole = ctx.loop(height // stacked, lambda h: block(n, g, [*prefix, binop("mul", h, idx(stacked))],
                                                                   stacked), "oh")
            rest = block(n, g, [*prefix, idx(height // stacked * stacked)], height % stacked) \
                if height % stacked else None
            return seq(whole, rest)

        return ctx.loops(outs[:-2], rows_of, "od")

    return ctx.loop(n_batch, lambda n: ctx.loop(group, lambda g: image(n, g), "g"), "n")


def _conv_direct(ctx: LowerCtx, x: Tensor, w: Tensor, window: Window, out_shape: tuple[int, ...], group: int,
                 dtype: DType, finish: Callable[[list[Expr], Expr], Stmt], one_nest: bool = False) -> Stmt:
    """One dot product per output element; interior windows without bounds checks (`one_nest`: one
    loop nest, every window bounds-checked unless all lie inside)."""
    icg = w.shape[1]
    ocg = out_shape[1] // group
    kernel = list(w.shape[2:])
    rank = len(kernel)
    spatial = list(x.shape[2:])

    def element(index: list[Expr], inside: bool) -> Stmt:
        n, oc, o = index[0], index[1], index[2:]
        chan0 = binop("mul", binop("div", oc, idx(ocg)), idx(icg)) if group > 1 else idx(0)

        def term(full: list[Expr]) -> Expr:
            ic, taps = full[len(index)], full[len(index) + 1:]
            coords = tap_coords(window, spatial, o, taps)
            channel = binop("add", chan0, ic)
            wv = _as(w.at([oc, ic, *taps]), dtype)
            if inside:
                return mul(_as(x.at([n, channel, *coords]), dtype), wv)
            xv = _as(x.at([n, channel, *clamped(coords, spatial)]), dtype)
            return select(inside_input(coords, spatial), mul(xv, wv), const(0, dtype))

        return accumulate(ctx, [*index, *[None] * (rank + 1)], [*out_shape, icg, *kernel], term, const(0, dtype),
                          add, lambda s: finish(index, s))

    ranges = interior(window, spatial, out_shape[2:])
    if one_nest and ranges != [(0, o) for o in out_shape[2:]]:
        ranges = [(0, 0)] * rank
    return window_loops(ctx, out_shape[:2], out_shape[2:], ranges, element)


def _as(v: Expr, dtype: DType) -> Expr:
    return v if v.dtype == dtype else Cast(dtype, v)


@anchor("ConvTranspose")
def _conv_transpose(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, w = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    kernel = _kernel_shape(node, w)
    window = window_of(node, kernel)
    out_shape = shape_of(node.outputs[0].type)
    group = node.attrs.get("group", 1)
    icg, ocg = x.shape[1] // group, w.shape[1]
    spatial = x.shape[2:]
    padding = node.attrs.get("output_padding") or [0] * len(kernel)
    dtype = cdtype(x.dtype)
    if node.attrs.get("output_shape") or window.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins = []
        for i, (d, o) in enumerate(zip(spatial, out_shape[2:])):
            total = max(0, window.strides[i] * (d - 1) + padding[i] + window.spans[i] - o)
            begins.append(total // 2 if window.auto_pad == "SAME_UPPER" else total - total // 2)
    else:
        begins = list(window.pads[: len(kernel)])
    weights = node.inputs[1].const if node.inputs[1] is not None else None
    if x.dtype == DType.float32 and weights is not None and all(d == 1 for d in window.dilations):
        return conv_transpose_phases(ctx, x, np.asarray(weights, np.float32), list(window.strides), begins, out_shape,
                                     group, lambda i, v: emit(0, i, add(v, bias.at([i[1]])) if bias is not None else v))

    def element(index: list[Expr]) -> Stmt:
        n, oc, o = index[0], index[1], index[2:]
        g = binop("div", oc, idx(ocg))

        def term(full: list[Expr]) -> Expr:
            ic, taps = full[len(index)], full[len(index) + 1:]
            ok: Expr | None = None
            src = []
            for oi, t, s, d, b, size in zip(o, taps, window.strides, window.dilations, begins, spatial):
                num = binop("sub", binop("add", oi, idx(b)), binop("mul", t, idx(d)))
                q = binop("div", num, idx(s))
                cond = Bin("and", Bin("ge", num, idx(0)), Bin("lt", q, idx(size)))
                if s > 1:
                    cond = Bin("and", cond, Bin("eq", binop("mod", num, idx(s)), idx(0)))
                ok = cond if ok is None else Bin("and", ok, cond)
                src.append(clamp(q, 0, size - 1))
            channel = binop("add", binop("mul", g, idx(icg)), ic)
            xv = _as(x.at([n, channel, *src]), dtype)
            wv = _as(w.at([channel, binop("mod", oc, idx(ocg)), *taps]), dtype)
            return select(ok, mul(xv, wv), const(0, dtype)) if ok is not None else mul(xv, wv)

        def finish(s: Expr) -> Stmt:
            return emit(0, index, add(s, _as(bias.at([oc]), dtype)) if bias is not None else s)

        return accumulate(ctx, [*index, *[None] * (len(kernel) + 1)], [*out_shape, icg, *kernel], term,
                          const(0, dtype), add, finish)

    return ctx.loops(out_shape, element)


@anchor("ConvInteger")
def _conv_integer(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    xz, wz = (ins[i] if len(ins) > i else None for i in (2, 3))
    i32 = DType.int32
    kernel = _kernel_shape(node, w)
    window = window_of(node, kernel)
    out_shape = shape_of(node.outputs[0].type)
    group = node.attrs.get("group", 1)
    icg, ocg = w.shape[1], out_shape[1] // group
    pads = [window.pad_amounts(i, d) for i, d in enumerate(x.shape[2:])]
    zero_x = _as(xz.at([idx(0)] * xz.rank), i32) if xz is not None else const(0, i32)

    def element(index: list[Expr]) -> Stmt:
        n, oc, o = index[0], index[1], index[2:]
        chan0 = binop("mul", binop("div", oc, idx(ocg)), idx(icg))
        zero_w = _as(wz.at([oc] if wz.rank == 1 and wz.shape[0] > 1 else [idx(0)] * wz.rank), i32) \
            if wz is not None else const(0, i32)

        def term(full: list[Expr]) -> Expr:
            ic, taps = full[len(index)], full[len(index) + 1:]
            ok: Expr | None = None
            src = []
            for oi, t, s, d, (b, _), size in zip(o, taps, window.strides, window.dilations, pads, x.shape[2:]):
                coord = binop("sub", binop("add", binop("mul", oi, idx(s)), binop("mul", t, idx(d))), idx(b))
                cond = Bin("and", Bin("ge", coord, idx(0)), Bin("lt", coord, idx(size)))
                ok = cond if ok is None else Bin("and", ok, cond)
                src.append(clamp(coord, 0, size - 1))
            xv = Bin("sub", _as(x.at([n, binop("add", chan0, ic), *src]), i32), zero_x)
            wv = Bin("sub", _as(w.at([oc, ic, *taps]), i32), zero_w)
            return select(ok, mul(xv, wv), const(0, i32)) if ok is not None else mul(xv, wv)

        return accumulate(ctx, [*index, *[None] * (len(kernel) + 1)], [*out_shape, icg, *kernel], term,
                          const(0, i32), add, lambda s: emit(0, index, s))

    return ctx.loops(out_shape, element)
