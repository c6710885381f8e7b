"""Dense float32 convolutions on the matrix-product micro-kernel (compiler/lower/contraction.py).

Two tilings, both with weights packed at compile time so that the operand the micro-kernel reads as
vectors is contiguous:

- `conv_rows`: output channels (broadcast weights) x positions along the output's last axis (vector
  loads of an input row, vector stores). `pointwise_flat` runs a 1x1 stride-1 convolution as rows over
  the flattened positions (H*W contiguous in NCHW), so only the plane's last tile is short; planes that
  are not whole cache lines are read from a copy packed by strips of tile columns.
- `conv_tiled`: flattened output positions (broadcast inputs) x output channels (vector weights), every
  lane useful whatever the map size; the epilogue stores are scalar (NCHW). 1x1 convolutions, and strided
  ones whose weight panels are the outer loop, read a copy of the input packed by strips of positions.

Both prefetch the packed weights 8 KiB ahead of each k step (streamed.py `weights_ahead`).

The loop order follows the operands' sizes: when the weights outweigh the input (`WEIGHTS_OUTER`), the
weight tiles are the outer loop, so each is read from memory once while the input stays in cache; shallow
reductions (stems) loop over channel tiles outermost too, so their stores go plane by plane.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.graph import Node
from aic.ir.loop import Buffer, Expr, Load, Stmt
from aic.ir.loop_tools import binop, seq
from aic.ir.ops.window import Window
from aic.ir.schedule import MicroKernel, ScheduleError

from .contraction import ROWS, micro_kernel, register_tile, tile_order, weight_packing
from .core import BufferTensor, LowerCtx, Tensor, delinear, idx, linear, node_error, store
from .sizes import Size, size_prod
from .streamed import weights_ahead

TapRead = Callable[[Expr, Expr, list[Expr], list[Expr]], Expr]
WEIGHTS_OUTER = 4  # weights this many times the size of the input: loop over weight tiles outermost
CACHE_LINE = 64  # bytes
PACK_MIN_CHANNELS = 32  # 1x1 rows over misaligned planes read a packed copy above this many output channels
BLOCK_BYTES = 192 << 10  # packed input of one block of output rows: stays in L2 while the weight panels pass
L2_WEIGHTS = 1 << 20  # strided convolutions with weights over twice L2 take blocks of output rows
SHALLOW_DEPTH = 32  # products per output at most: rows loop over output channel tiles outermost


def pointwise_flat(ctx: LowerCtx, node: Node, x: BufferTensor, weights: np.ndarray, outs: list[int], group: int,
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
    # Planes that are not whole cache lines (14x14: 784 bytes) make every vector load straddle two lines;
    # their tiles read an aligned copy packed by strips of columns instead (measured: aligned planes gain
    # nothing from the copy, and shallow ones lose). With few output channels the copy's own pass over the
    # input is not repaid: those read the plane in place (SqueezeNet's squeezes to 16-32 channels: 0.83-0.87).
    misaligned = height * width * x.dtype.itemsize % CACHE_LINE != 0
    copy = misaligned and weights.shape[0] // group > PACK_MIN_CHANNELS
    return conv_rows(ctx, node, flat, weights.reshape(*weights.shape[:2], 1), window, [height * width], group,
                      to_plane, exact=True, channels_outer=outer, pack_columns=copy)


def _tap_offset(window: Window, padded: list[int], taps: list[Expr]) -> Expr:
    """Offset within one padded input plane of kernel tap `taps`."""
    strides = [size_prod(padded[i + 1:]) for i in range(len(padded))]
    off: Expr = idx(0)
    for t, d, st in zip(taps, window.dilations, strides):
        off = binop("add", off, binop("mul", t, idx(d * st)))
    return off


def _pack_strips(ctx: LowerCtx, x: Tensor, window: Window, kernel: list[int], outs: list[int],
                 rows: int) -> tuple[Buffer, Callable[[Expr, Expr, int], Stmt]]:
    """A scratch [N, strips, C, *kernel, rows] for the input of each strip of `rows` output positions, tap by
    tap: one contiguous stream per tile (the last strip is short); and `pack(n, block, size, count)`, the copy
    of `count` output rows (along the output's first axis) from row block * size of image n, out of the (padded)
    input `x`; blocks of `size` rows are whole strips."""
    n_batch, channels, positions = x.shape[0], x.shape[1], size_prod(outs)
    strips, taps = -(-positions // rows), int(np.prod(kernel))
    buf = ctx.scratch(x.dtype, n_batch * strips * channels * taps * rows)

    inner = size_prod(outs[1:])

    def pack(n: Expr, block: Expr, size: int, count: int) -> Stmt:
        def copy(i: list[Expr]) -> Stmt:
            # loops over the kernel's taps and the output's axes, so that only a position's strip and row are
            # divided out (dividing the flat position into coordinates made the copy of a 3x3 stride-2
            # convolution onto a 7x7 map a fifth of its kernel's time)
            c, ks, o = i[0], i[1:1 + len(kernel)], i[1 + len(kernel):]
            q = linear(o, (count, *outs[1:]))  # within the block, which starts a strip
            strip = binop("add", binop("mul", block, idx(size * inner // rows)), binop("div", q, idx(rows)))
            r = binop("mod", q, idx(rows))
            o = [binop("add", binop("mul", block, idx(size)), o[0]), *o[1:]]
            at = linear([n, strip, c, linear(ks, kernel), r], (n_batch, strips, channels, taps, rows))
            coords = [binop("add", binop("mul", oi, idx(s)), binop("mul", k, idx(d)))
                      for oi, k, s, d in zip(o, ks, window.strides, window.dilations)]
            return store(buf, at, x.at([n, c, *coords]))

        return ctx.loops((channels, *kernel, count, *outs[1:]), copy, "pk")

    return buf, pack


def position_rows(ctx: LowerCtx, positions: Size) -> int:
    """Output positions per tile of `conv_tiled`: ROWS (6), or with 32 vector registers (AVX-512) 7 where that
    leaves fewer positions short in the last tile: ResNet's maps (7x7 = 49, 14x14 = 196) are multiples of 7, and
    6-row tiles ended each strip on a tile of 1 or 4 positions, whose 2 or 8 accumulators leave the FMA latency
    uncovered (7 x 2 vectors: 14 accumulators; with 16 registers, AVX2, 7 rows would spill). Stage 4 of ResNet-50
    took 0.90-0.95 of its time (BENCHMARKS.md, "7-position tiles, paired channel tiles, 16-row Winograd tiles")."""
    if ctx.lanes < 16 or not isinstance(positions, int):
        return ROWS
    return min((ROWS, ROWS + 1), key=lambda r: -(-positions // r) * r - positions)


def conv_tiled(ctx: LowerCtx, node: Node, xp: Tensor, weights: np.ndarray, window: Window, outs: list[int],
                group: int, finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """Tiles of output positions (flattened) x output channels. The input is read from the padded `xp`, or
    (1x1 convolutions; strided ones whose weight panels are the outer loop) from a copy packed by strips of
    positions (`_pack_strips`), so each tile reads one contiguous stream instead of a few floats of every
    channel's plane."""
    n_batch, channels = xp.shape[:2]
    oc, kernel = weights.shape[0], list(weights.shape[2:])
    tile = register_tile(ctx, MicroKernel(position_rows(ctx, size_prod(outs)), 2 * ctx.lanes))  # positions x channels
    rows, width = tile.rows, tile.cols
    # Weights far larger than the input (deep layers, small maps): a panel of weights stays in cache while the
    # input streams, instead of all the weights streaming from memory once per strip of positions.
    image = size_prod(xp.shape[1:])  # (per image: the weights serve every image of a batch)
    heavy = isinstance(image, int) and weights.nbytes > WEIGHTS_OUTER * image * 4
    order = tile_order(ctx, "cols" if heavy else "rows")
    pointwise = all(k == 1 for k in kernel) and all(s == 1 for s in window.strides) and list(xp.shape[2:]) == outs
    strided = any(s > 1 for s in window.strides)
    # Strided convolutions whose weights outgrow L2 (not the input): read per strip, the weights would stream
    # from L3 once per strip; instead blocks of output rows are packed and every weight panel passes over each.
    lead = row_block(channels, kernel, outs, rows) if strided and group == 1 and not heavy \
        and weights.nbytes > L2_WEIGHTS else None
    order = "blocks" if lead is not None and order == "rows" else order
    pack: Stmt | None = None
    pack_rows = None
    if pointwise or (strided and order in ("cols", "blocks")):  # (measured: others read the padded planes faster)
        source, pack_rows = _pack_strips(ctx, xp, window, kernel, outs, rows)
        if order != "blocks":
            pack = ctx.loop(n_batch, lambda n: pack_rows(n, idx(0), outs[0], outs[0]), "n")  # one block: all rows
    elif isinstance(xp, BufferTensor):
        source = xp.buffer
    else:
        raise node_error(node, "the input must be materialized")
    packed_input = pack_rows is not None
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

        def part(p0: Expr, nrows: int, c0: Expr, cols: int, strip_at: Expr | None = None) -> Stmt:
            def a(r: Expr, ks: list[Expr]) -> Expr:
                # Loop-invariant parts (the row's offset, once rows are unrolled) are hoisted by the back end.
                ic, taps = ks[0], ks[1:]
                if packed_input:
                    at_strip = binop("div", p0, idx(rows)) if strip_at is None else strip_at  # (p0 starts a strip)
                    strip = binop("add", binop("mul", n, idx(strips)), at_strip)
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

            fetch, every = weights_ahead(lambda ks: [b(ks, idx(0), idx(0))], width)
            return micro_kernel(ctx, [icg, *kernel], nrows, width, cols, a, b, out, prefetch=fetch,
                                prefetch_every=every)

        def strip(p0: Expr, nrows: int) -> Stmt:
            whole = ctx.loop(ocg // width, lambda t: part(p0, nrows, binop("mul", t, idx(width)), width), "ct")
            rest = part(p0, nrows, idx(full_c), ocg - full_c) if ocg > full_c else None
            return seq(whole, rest)

        def panel(c0: Expr, cols: int) -> Stmt:
            whole = ctx.loop(positions // rows, lambda po: part(binop("mul", po, idx(rows)), rows, c0, cols), "po")
            rest = part(idx(full_p), positions - full_p, c0, cols) if positions > full_p else None
            return seq(whole, rest)

        if order == "blocks":  # each block of output rows is packed, then every weight panel passes over it
            assert lead is not None and pack_rows is not None
            inner = positions // outs[0]

            def rows_block(b: Expr, count: int) -> Stmt:
                start = binop("mul", b, idx(lead * inner))
                span = count * inner
                first = binop("mul", b, idx(lead * inner // rows))  # the block's first strip: each block's
                # strips indexed from it, so that the schedule sees the blocks' packed slices apart

                def panel_in(c0: Expr, cols: int) -> Stmt:
                    whole = ctx.loop(span // rows, lambda s: part(
                        binop("add", start, binop("mul", s, idx(rows))), rows, c0, cols, binop("add", first, s)), "po")
                    rest = part(binop("add", start, idx(span // rows * rows)), span % rows, c0, cols,
                                binop("add", first, idx(span // rows))) if span % rows else None
                    return seq(whole, rest)

                main = ctx.loop(ocg // width, lambda t: panel_in(binop("mul", t, idx(width)), width), "ct")
                return seq(pack_rows(n, b, lead, count), main,
                           panel_in(idx(full_c), ocg - full_c) if ocg > full_c else None)

            left = outs[0] % lead
            return seq(ctx.loop(outs[0] // lead, lambda b: rows_block(b, lead), "pb"),
                       rows_block(idx(outs[0] // lead), left) if left else None)
        if order == "cols":  # a panel of weights stays in cache while the input streams
            main = ctx.loop(ocg // width, lambda t: panel(binop("mul", t, idx(width)), width), "ct")
            return seq(main, panel(idx(full_c), ocg - full_c) if ocg > full_c else None)
        main = ctx.loop(positions // rows, lambda po: strip(binop("mul", po, idx(rows)), rows), "po")
        tail = strip(idx(full_p), positions - full_p) if positions > full_p else None
        return seq(main, tail)

    return seq(pack, ctx.loop(n_batch, lambda n: ctx.loop(group, lambda g: per_image(n, g), "g"), "n"))


def row_block(channels: int, kernel: list[int], outs: list[int], rows: int) -> int | None:
    """Output rows (along the first output axis) per block of the "blocks" order: whole strips of `rows`
    positions (so each block starts a strip), as many as keep the packed block within BLOCK_BYTES; None when
    a block would be all of the output."""
    inner = int(np.prod(outs[1:]))
    step = next(m for m in range(1, rows + 1) if m * inner % rows == 0)
    per_row = 4 * channels * int(np.prod(kernel)) * inner
    lead = max(1, BLOCK_BYTES // (per_row * step)) * step
    return lead if lead < outs[0] else None


def conv_rows(ctx: LowerCtx, node: Node, xp: Tensor, weights: np.ndarray, window: Window, outs: list[int],
               group: int, finish: Callable[[list[Expr], Expr], Stmt], read: TapRead | None = None,
               exact: bool = False, channels_outer: bool = False, pack_columns: bool = False) -> Stmt:
    """Stride-1 convolution, tiles of output channels (rows) by positions along the output's last axis
    (vector columns): the input row is contiguous, so are the stores. Short rows (at most one vector)
    are taken two at a time, so each weight feeds two vectors. `read(n, channel, output position, taps)`
    replaces reading the padded input `xp` (a strided convolution reads a phase-split copy). `exact`: the
    input has no slack after its rows, so the last tile of a row computes only its own columns.
    `channels_outer`: the channel tiles are the outermost loop (weights read once; the input once per
    tile), as they are for shallow reductions (`SHALLOW_DEPTH`: image stems, 1x1 convolutions of few input
    channels), whose tiles then write a few output planes at a time, in sequence. In the other order each
    row writes a piece of every plane, and with few products per output those scattered stores cost more
    than the products once the output is not in cache (SqueezeNet's 3x3 stem, 27 products per output: 1.04
    ms in the model, 0.58 with the planes outermost; ConvNeXt's 1x1s, 96 and 384 deep, lost 4-27% from
    reading their inputs once per tile). `pack_columns` (1-D): the tiles read a copy of the input packed by
    strips of tile columns."""
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
    columns, prep = _pack_columns(ctx, xp, width) if pack_columns else (None, None)
    strips = -(-last // width)
    channels_outer = channels_outer or icg * int(np.prod(kernel)) <= SHALLOW_DEPTH

    def block(n: Expr, g: Expr, lead: list[Expr], sp_rows: int, channel_tile: tuple[Expr, int] | None) -> Stmt:
        """Output positions lead[:-1], lead[-1] + j (j < sp_rows), all of the last axis; of the output channels
        of `channel_tile` (first, count), all of them if None."""

        def row_index(j: Expr) -> list[Expr]:
            return [*lead[:-1], binop("add", lead[-1], j)] if lead else []

        def tile(o0: Expr, nrows: int, w0: Expr, cols: int) -> Stmt:
            def a(r: Expr, ks: list[Expr]) -> Expr:
                at = binop("div", o0, idx(rows))
                if nrows > rows:  # rows of the next packed tile too
                    at, r = binop("add", at, binop("div", r, idx(rows))), binop("mod", r, idx(rows))
                return packed.at([g, at, *ks, r])

            def b(ks: list[Expr], j: Expr, c: Expr) -> Expr:
                ic, taps = ks[0], ks[1:]
                if columns is not None:
                    channel = binop("add", binop("mul", g, idx(icg)), ic)
                    strip = binop("add", binop("mul", n, idx(strips)), binop("div", w0, idx(width)))
                    return Load(columns, linear([strip, channel, c], (n_batch * strips, channels, width)))
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
            fetch, every = weights_ahead(lambda ks: [a(idx(r), ks) for r in range(0, nrows, rows)], rows)
            return micro_kernel(ctx, [icg, *kernel], nrows, compute, cols, a, b, out, sp_rows, prefetch=fetch,
                                prefetch_every=every)

        def channel_tiles(w0: Expr, cols: int) -> Stmt:
            # a column tile of one vector (a row's last) takes two packed tiles of channels at once: 6 accumulators
            # alone would leave the FMA latency uncovered
            pair = 2 * rows if cols <= lanes and rows == ROWS else rows
            whole = ctx.loop(ocg // pair, lambda t: tile(binop("mul", t, idx(pair)), pair, w0, cols), "ot")
            done = ocg // pair * pair
            single = tile(idx(done), rows, w0, cols) if full_r - done >= rows else None
            rest = tile(idx(full_r), ocg - full_r, w0, cols) if ocg > full_r else None
            return seq(whole, single, rest)

        def column_tiles(o0: Expr, nrows: int) -> Stmt:
            whole = ctx.loop(last // width, lambda t: tile(o0, nrows, binop("mul", t, idx(width)), width), "wt")
            rest = tile(o0, nrows, idx(full_c), last - full_c) if last > full_c else None
            return seq(whole, rest)

        if channel_tile is not None:
            return column_tiles(*channel_tile)
        whole = ctx.loop(last // width, lambda t: channel_tiles(binop("mul", t, idx(width)), width), "wt")
        rest = channel_tiles(idx(full_c), last - full_c) if last > full_c else None
        return seq(whole, rest)

    def image(n: Expr, g: Expr, channel_tile: tuple[Expr, int] | None) -> Stmt:
        if len(outs) == 1:
            return block(n, g, [], 1, channel_tile)
        height = outs[-2]

        def rows_of(prefix: list[Expr]) -> Stmt:
            whole = ctx.loop(height // stacked, lambda h: block(n, g, [*prefix, binop("mul", h, idx(stacked))],
                                                                   stacked, channel_tile), "oh")
            rest = block(n, g, [*prefix, idx(height // stacked * stacked)], height % stacked, channel_tile) \
                if height % stacked else None
            return seq(whole, rest)

        return ctx.loops(outs[:-2], rows_of, "od")

    def planes(n: Expr, g: Expr) -> Stmt:
        if not channels_outer:
            return image(n, g, None)
        whole = ctx.loop(ocg // rows, lambda t: image(n, g, (binop("mul", t, idx(rows)), rows)), "ot")
        rest = image(n, g, (idx(full_r), ocg - full_r)) if ocg > full_r else None
        return seq(whole, rest)

    return seq(prep, ctx.loop(n_batch, lambda n: ctx.loop(group, lambda g: planes(n, g), "g"), "n"))


def _pack_columns(ctx: LowerCtx, x: Tensor, width: int) -> tuple[Buffer, Stmt]:
    """x [N, C, P] copied to [N, strips, C, width]: each tile's columns of every channel, one aligned
    contiguous stream (the last strip is short)."""
    n_batch, channels, positions = x.shape
    strips, full = -(-positions // width), positions // width
    buf = ctx.scratch(x.dtype, n_batch * strips * channels * width)

    def copy(n: Expr, c: Expr, strip: Expr, r: Expr) -> Stmt:
        at = linear([n, strip, c, r], (n_batch, strips, channels, width))
        return store(buf, at, x.at([n, c, binop("add", binop("mul", strip, idx(width)), r)]))

    whole = ctx.loops((n_batch, channels, full, width), lambda i: copy(*i), "pc")
    rest = ctx.loops((n_batch, channels, positions - full * width), lambda i: copy(i[0], i[1], idx(full), i[2]),
                     "pr") if positions > full * width else None
    return buf, seq(whole, rest)
