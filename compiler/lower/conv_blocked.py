"""Lowering of the blocked channel layout (NCHWc): BlockChannels, UnblockChannels and ConvBlocked.

A blocked tensor [N, C/B, H, W, B] has the B channels of a block side by side at every position,
so the channel block is the vector (B = 8 floats on AVX2):

- convolutions with one group (1x1 and kxk, any stride and padding) are products of positions (rows,
  one broadcast input value each) by output channels (two blocks = two vectors per row, four with
  AVX-512's 32 registers), over the reduction (taps x input channels): every tile is whole vectors
  whatever the map size (49 positions of a 7x7 map are 8 tiles of 6 and one of 1, not ragged rows), on
  the shared micro-kernel; the weights are packed at compile time as [panel][kh][kw][Cin][blocks][B]
  (`panel_plan`: the blocks left over end in a panel of their own);
- grouped convolutions whose groups are whole blocks (in and out) are those products per group, the weights
  packed per group; with padding, per group and band of output rows, over a zero-padded stack copy of the
  input rows the band reads (no bounds checks, no pass of its own: the copy is read back from L1), in tiles of
  3 output rows by 4 (2) columns where the row width allows (one address per tile);
- an entry convolution (a stem: a plain input of fewer channels than a block) is the one-group product over
  such band copies, the input's channels the lanes of one block;
- depthwise convolutions are one fused multiply-add of B channels per tap (an input vector times a
  weight vector), SPAN positions of a row at a time over a zero-padded copy of the block's plane (an entry
  depthwise convolution gathers a plain input's B channels into that copy; one with an input expansion computes
  the 1x1 expansion of each band of rows into it, by tiles of positions x one block): conv_blocked_depthwise.py;
- the epilogue (bias, activation, residual add, a squeeze-excite scale [N, C/B, 1, 1, B]) runs on
  the output vectors and stores them whole;
- an input scale (a squeeze-excite scale folded into its project 1x1 convolution) multiplies each strip of
  positions as it is copied into a stack buffer, which the weight panels then read from L1;
- the op's own activation (an elementwise op's lowering) runs before the fused epilogue; a depthwise
  convolution's second output, the mean over positions (a squeeze-excite pool), is summed per channel block
  as the block's plane is written (one vector add per output vector) and stored after the plane;
- BlockChannels is a kernel of its own (no fused producers: they stay vector epilogues of their own
  kernels), UnblockChannels a view fused into its readers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Allocate, Bin, Buffer, Expr, For, Load, Stmt, Store
from aic.ir.loop_tools import binop, select, seq
from aic.ir.ops.window import Window
from aic.ir.schedule import Unroll, Vectorize

from .conv import window_of
from .conv_blocked_depthwise import Expansion, blocked_depthwise
from .core import BufferTensor, ComputeTensor, LowerCtx, Tensor, clamp, const, delinear, idx, linear, node_error
from .mathx import add, mul
from .micro_kernel import micro_kernel, tiles
from .reduce import stack
from .sizes import shape_of
from .table import Emit, activate, anchor, compute
from .window import clamped, inside_input, tap_coords

ROWS = 6  # output positions per register tile: 6 x 2 (4) accumulator vectors, 2 (4) weight vectors, 1 broadcast
PAIR = 2  # output channel blocks per register tile
QUAD = 4  # the same with 32 vector registers (AVX-512)
STRIP = 12  # positions whose input stays in L1 while the weight panels pass (a multiple of every tile's rows)
GROUP_BAND_ROWS = 10  # grouped convolutions with padding: padded input rows of a group copied per band
GRID_ROWS = 3  # banded convolutions: a tile of 12 (6) positions is 3 output rows by 4 (2) columns

Finish = Callable[[list[Expr], Expr], Stmt]


@anchor("BlockChannels")
def _block(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    """A kernel of its own that takes no fused producer: an activation before a region's entry stays in its
    convolution's epilogue (vectors) instead of running here, on the channel-strided reads (scalars)."""
    x = ins[0]
    assert x is not None
    block, channels = node.attrs["block"], x.shape[1]

    def at(i: list[Expr]) -> Expr:
        c = binop("add", binop("mul", i[1], idx(block)), i[-1])
        if channels % block == 0:
            return x.at([i[0], c, *i[2:-1]])
        value = x.at([i[0], clamp(c, 0, channels - 1), *i[2:-1]])
        return select(Bin("lt", c, idx(channels)), value, const(0, x.dtype))

    return ctx.loops(shape_of(node.outputs[0].type), lambda i: emit(0, i, at(i)), "b")


@compute("UnblockChannels", cheap=True)
def _unblock(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = ins[0]
    assert x is not None
    block = x.shape[-1]
    t = node.outputs[0].type
    return [ComputeTensor(shape_of(t), t.dtype, lambda i: x.at(
        [i[0], binop("div", i[1], idx(block)), *i[2:], binop("mod", i[1], idx(block))]))]


@anchor("ConvBlocked")
def _conv_blocked(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    bias = ins[2] if len(ins) > 2 else None
    scale = ins[3] if len(ins) > 3 else None
    weights = node.inputs[1].const if node.inputs[1] is not None else None
    assert x is not None
    entry = node.attrs.get("block", 0) > 0  # a plain input [N, C, H, W]
    if weights is None or x.dtype != DType.float32 or x.rank != (4 if entry else 5):
        raise node_error(node, "blocked convolutions need float32 2-D inputs and constant weights")
    weights = np.asarray(weights, np.float32)
    block = node.attrs["block"] if entry else x.shape[-1]
    window = window_of(node, list(weights.shape[2:]))
    out_shape = list(shape_of(node.outputs[0].type))
    if any(d != 1 for d in window.dilations):
        raise node_error(node, f"blocked convolutions take unit dilations, got {list(window.dilations)}")

    activation = node.attrs.get("activation", "")

    def value(index: list[Expr], v: Expr) -> Expr:
        if bias is not None:
            v = add(v, bias.at([binop("add", binop("mul", index[1], idx(block)), index[-1])]))
        return activate(ctx, activation, v) if activation else v

    def finish(index: list[Expr], v: Expr) -> Stmt:
        return emit(0, index, value(index, v))

    group = node.attrs.get("group", 1)
    pooled = len(node.outputs) > 1 and emit.needed(1)
    if pooled and group == 1:
        raise node_error(node, "the mean output is computed by depthwise blocked convolutions only")
    if scale is not None and (group != 1 or weights.shape[2:] != (1, 1) or any(window.pads) or
                              any(st != 1 for st in window.strides) or x.shape[1] * block <= weights.shape[0]):
        raise node_error(node, f"an input scale needs a 1x1 convolution with one group, unit strides, no padding "
                               f"and more input than output channels, got weights {list(weights.shape)}")
    # one group, or groups of whole blocks in and out: products of positions by panels of output blocks
    products = group == 1 or (weights.shape[0] % (group * block) == 0 and weights.shape[1] % block == 0 and
                              weights.shape[1] * group == x.shape[1] * block)
    if products and activation:
        def channel_value(channel: Expr, v: Expr) -> Expr:
            return activate(ctx, activation, add(v, bias.at([channel])) if bias is not None else v)

        return blocked_products(ctx, x, weights, window, out_shape, lambda index, v: emit(0, index, v),
                                scale, channel_value, group)
    if products:
        return blocked_products(ctx, x, weights, window, out_shape, finish, scale, group=group)
    expand = Expansion.of(ctx, node, ins, block)
    channels = weights.shape[0] if expand else x.shape[1] * (1 if entry else block)  # the depthwise input's
    if group == weights.shape[0] == channels:
        return blocked_depthwise(ctx, x, weights, window, out_shape, value, emit, pooled, expand)
    raise node_error(node, f"blocked convolutions are dense, depthwise or grouped by whole blocks of {block} channels, "
                           f"not {group} groups of weights {list(weights.shape)}")


def pack_panels(weights: np.ndarray, block: int, first: int, panels: int, width: int) -> np.ndarray:
    """Output blocks first .. first + panels*width of [Cout, Cin, kh, kw] as [panels, kh, kw, Cin, width, block]
    (zero padded past Cout)."""
    cin = weights.shape[1]
    w = np.zeros((panels * width * block, cin, *weights.shape[2:]), np.float32)
    part = weights[first * block:(first + panels * width) * block]
    w[:len(part)] = part
    w = w.reshape(panels, width, block, cin, *weights.shape[2:])
    return np.ascontiguousarray(np.transpose(w, (0, 4, 5, 3, 1, 2)))


def panel_plan(out_blocks: int, wide: bool = False) -> list[tuple[int, int, int, int]]:
    """(first block, panels, blocks per panel, rows) covering the output blocks. With 16 vector registers: pairs
    of blocks by ROWS positions (12 accumulators); an odd count ends with three blocks by 4 positions. `wide`
    (32 registers): quads of blocks by ROWS positions (24 accumulators); the remainder ends with five blocks by 4
    positions (one over), two or three by ROWS (two by 2 * ROWS were 12% slower). One block alone: 2 * ROWS
    positions."""
    if out_blocks == 1:
        return [(0, 1, 1, 2 * ROWS)]
    width, tails = (QUAD, {1: (5, 4), 2: (2, ROWS), 3: (3, ROWS)}) if wide else (PAIR, {1: (3, 4)})
    last = tails.get(out_blocks % width, (0, 0))
    whole = (out_blocks - last[0]) // width
    plan = [(0, whole, width, ROWS)] if whole else []
    if last[0]:
        plan.append((whole * width, 1, *last))
    return plan


def blocked_products(ctx: LowerCtx, x: Tensor, weights: np.ndarray, window: Window, out_shape: list[int],
                     finish: Finish, scale: Tensor | None = None,
                     channel_value: Callable[[Expr, Expr], Expr] | None = None, group: int = 1) -> Stmt:
    """A convolution with one group, or `group` groups of whole channel blocks (each group a product of its own
    input blocks, panels of its own output blocks, weights packed per group; groups outermost): output positions
    (rows) x panels of output channel blocks (one vector each) over (kh, kw, input block, lane); input values
    read in the padding are zero (checked only when the window has padding; grouped: read from a zero-padded
    copy of each band's input rows, see `group_bands`). An input `scale` [N, C/B, 1, 1, B]
    (1x1, strips outermost only) is applied to each strip of positions as it is copied into a stack buffer
    [C/B, STRIP, B] that the panels read. `channel_value(channel, sum)` (bias and activation) runs on each
    finished register tile in place, a row's blocks (contiguous in the tile) as one vector of 2 or 3 target
    vectors: their long chains (SiLU) interleave; `finish` then only stores."""
    entry = x.rank == weights.ndim  # a plain input [N, C, *spatial] (group 1): read as one block of C lanes
    if entry:
        n_batch, lanes_in, *spatial = x.shape
        all_blocks, block = 1, out_shape[-1]
    else:
        n_batch, all_blocks, *spatial, block = x.shape
        lanes_in = block  # input lanes per input block
    in_blocks, out_blocks = all_blocks // group, out_shape[1] // group  # per group
    kernel = list(weights.shape[2:])
    outs = out_shape[2:-1]
    positions = int(np.prod(outs))
    amounts = [window.pad_amounts(i, d) for i, d in enumerate(spatial)]  # (explicit or auto_pad)
    padded = any(map(any, amounts))
    banded = (padded and group > 1) or entry  # each group's band of input rows copied (zero padded) onto the stack
    begins = [begin for begin, _ in amounts]
    extents = [max(b + d, (o - 1) * st + k) for b, d, o, st, k in zip(begins, spatial, outs, window.strides, kernel)]
    stride = window.strides[0]
    band = max(1, (GROUP_BAND_ROWS - kernel[0]) // stride + 1)
    band = min(outs[0], band - band % GRID_ROWS if band >= GRID_ROWS else band)
    band_shape = [in_blocks, (band - 1) * stride + kernel[0], extents[1], lanes_in]
    flat = isinstance(x, BufferTensor) and kernel == [1, 1] and not padded and all(s == 1 for s in window.strides) \
        and not entry
    xb = x.buffer if isinstance(x, BufferTensor) else None
    source = BufferTensor((n_batch, all_blocks, positions, block), x.dtype, lambda: xb) if flat else x

    def per_panel(n: Expr, packed: Tensor, panel: Expr, first: int, width: int, tile_rows: int, start: Expr,
                  count: int, strip: Buffer | None, gi: Expr | None, grid: Expr | None) -> Stmt:
        """Positions start .. start + count of one panel, in tiles of `tile_rows` (their input read from
        `strip` [C/B, STRIP, B] when given; `banded`: from the band buffer `strip` of the rows from `start`).
        `grid` (the band's first output row): each tile is GRID_ROWS output rows by tile_rows / GRID_ROWS
        columns, so its positions lie at constant offsets from one address."""
        def part(q0: Expr, rows: int) -> Stmt:
            p0 = binop("add", start, q0)

            def band_position(r: Expr) -> tuple[Expr, Expr]:
                """(row within the band, column) of the tile's position r."""
                if grid is None:
                    q = binop("add", q0, r)
                    return binop("div", q, idx(outs[1])), binop("mod", q, idx(outs[1]))
                cols = tile_rows // GRID_ROWS
                t, across = binop("div", q0, idx(tile_rows)), outs[1] // cols  # the tile; tiles across a row
                h0 = binop("mul", binop("div", t, idx(across)), idx(tile_rows // cols))
                w0 = binop("mul", binop("mod", t, idx(across)), idx(cols))
                return binop("add", h0, binop("div", r, idx(cols))), binop("add", w0, binop("mod", r, idx(cols)))

            def a(r: Expr, ks: list[Expr]) -> Expr:
                taps, kb, lane = ks[:-2], ks[-2], ks[-1]
                p = binop("add", p0, r)
                if banded:
                    assert strip is not None
                    oh, ow = band_position(r)
                    h = binop("add", binop("mul", oh, idx(stride)), taps[0])
                    w = binop("add", binop("mul", ow, idx(window.strides[1])), taps[1])
                    return Load(strip, linear([kb, h, w, lane], band_shape))
                if gi is not None:
                    kb = binop("add", kb, binop("mul", gi, idx(in_blocks)))
                if strip is not None:
                    return Load(strip, linear([kb, binop("add", q0, r), lane], [in_blocks, STRIP, block]))
                if flat:
                    return source.at([n, kb, p, lane])
                coords = tap_coords(window, spatial, delinear(p, outs), taps)
                if not padded:
                    return x.at([n, kb, *coords, lane])
                value = x.at([n, kb, *clamped(coords, spatial), lane])
                return select(inside_input(coords, spatial), value, const(0, x.dtype))

            def b(ks: list[Expr], g: Expr, c: Expr) -> Expr:
                taps, kb, lane = ks[:-2], ks[-2], ks[-1]
                inner = [panel, *taps, binop("add", binop("mul", kb, idx(lanes_in)), lane), g, c]
                return packed.at(inner if gi is None else [gi, *inner])

            def first_block() -> Expr:
                fb = binop("add", binop("mul", panel, idx(width)), idx(first))
                return fb if gi is None else binop("add", fb, binop("mul", gi, idx(out_blocks)))

            def out(r: Expr, g: Expr, c: Expr, v: Expr) -> Stmt:
                cb = binop("add", first_block(), g)
                if grid is not None:
                    oh, ow = band_position(r)
                    return finish([n, cb, binop("add", grid, oh), ow, c], v)
                return finish([n, cb, *delinear(binop("add", p0, r), outs), c], v)

            def tile(acc: Buffer) -> Stmt:
                assert channel_value is not None
                lanes = width * block
                first_channel = binop("mul", first_block(), idx(block))

                def row(r: Expr) -> Stmt:
                    def lane(j: Expr) -> Stmt:
                        at = binop("add", binop("mul", r, idx(lanes)), j)
                        return Store(acc, at, channel_value(binop("add", first_channel, j), Load(acc, at)))

                    loop = ctx.loop(lanes, lane, "tc")
                    if isinstance(loop, For):
                        ctx.hints.append(Vectorize(loop.var.name, lanes))
                    return loop

                loop = ctx.loop(rows, row, "tr")
                if isinstance(loop, For):
                    ctx.hints.append(Unroll(loop.var.name))
                return loop

            return micro_kernel(ctx, [*kernel, in_blocks, lanes_in], rows, block, block, a, b, out, groups=width,
                                tile=tile if channel_value is not None else None)

        return tiles(ctx, count, tile_rows, part, "pt")

    def pack(first: int, panels: int, width: int) -> np.ndarray:
        if group == 1:
            return pack_panels(weights, block, first, panels, width)
        size = out_blocks * block
        return np.stack([pack_panels(weights[g * size:(g + 1) * size], block, first, panels, width)
                         for g in range(group)])

    plan = [(first, panels, width, rows, ctx.weight(pack(first, panels, width), "w"))
            for first, panels, width, rows in panel_plan(out_blocks, ctx.lanes >= 16)]

    # A reduction deeper than the outputs (project convolutions): strips of positions outermost, so a strip's
    # input stays in L1 while every panel of weights passes over it, instead of the whole input streaming once
    # per panel. Otherwise (expand convolutions) panels outermost: each writes its few output planes in long
    # streams, where a strip would write a short piece of every plane (measured: BENCHMARKS.md). Weights larger
    # than an image's input (projects on 7x7 maps) also run panels outermost, streamed once instead of once per
    # strip (five times for 49 positions, the fifth strip a single position). Groups: panels outermost in each.
    larger = weights.nbytes > in_blocks * positions * block * 4 and scale is None
    weights_outer = in_blocks <= out_blocks or group > 1 or larger

    def panels_over(n: Expr, p0: Expr, count: int, strip: Buffer | None = None, gi: Expr | None = None,
                    grid: Expr | None = None) -> Stmt:
        return seq(*(ctx.loop(panels, lambda panel, f=first, w=width, r=rows, p=packed: per_panel(
            n, p, panel, f, w, r, p0, count, strip, gi, grid), "cp") for first, panels, width, rows, packed in plan))

    def group_bands(n: Expr, gi: Expr | None) -> Stmt:
        """Group gi (None: one group) by bands of `band` output rows: the padded input rows a band reads, of the
        group's input blocks (a plain input: its channels as the lanes of one block), copied into a stack buffer
        (zeros in the padding), then every panel over the band's positions."""
        def rows_of(first: Expr, count: int) -> Stmt:
            buf = stack(ctx, x.dtype, int(np.prod(band_shape)), "xp")
            top = binop("mul", first, idx(stride))  # the band's first padded input row

            def fill(i: list[Expr]) -> Stmt:
                kb, h, w = i
                coords = [binop("sub", binop("add", h, top), idx(begins[0])), binop("sub", w, idx(begins[1]))]
                source_block = kb if gi is None else binop("add", kb, binop("mul", gi, idx(in_blocks)))

                def lane(c: Expr) -> Stmt:
                    at = clamped(coords, spatial)
                    value = x.at([n, c, *at]) if entry else x.at([n, source_block, *at, c])
                    return Store(buf, linear([kb, h, w, c], band_shape),
                                 select(inside_input(coords, spatial), value, const(0, x.dtype)))

                loop = ctx.loop(lanes_in, lane, "pc")
                if isinstance(loop, For) and not entry:
                    ctx.hints.append(Vectorize(loop.var.name, min(block, ctx.lanes)))
                return loop

            input_rows = (count - 1) * stride + kernel[0]
            copy = ctx.loops([in_blocks, input_rows, extents[1]], fill, "pp")
            # tiles of GRID_ROWS output rows by tile rows / GRID_ROWS columns, where every panel's tiles divide so
            grid = first if count % GRID_ROWS == 0 and all(
                tile_rows % GRID_ROWS == 0 and outs[1] % (tile_rows // GRID_ROWS) == 0
                for *_, tile_rows, _ in plan) else None
            body = panels_over(n, binop("mul", first, idx(outs[1])), count * outs[1], buf, gi, grid)
            return Allocate(buf, seq(copy, body))

        return tiles(ctx, outs[0], band, rows_of, "bd")

    def scaled_strip(n: Expr, p0: Expr, count: int) -> Stmt:
        """The strip's input times the scale, copied into a stack buffer, then every panel over it."""
        assert scale is not None
        strip = stack(ctx, x.dtype, in_blocks * STRIP * block, "xs")

        def copy(i: list[Expr]) -> Stmt:
            kb, q = i

            def lane(c: Expr) -> Stmt:
                p = binop("add", p0, q)
                value = source.at([n, kb, p, c]) if flat else x.at([n, kb, *delinear(p, spatial), c])
                return Store(strip, linear([kb, q, c], [in_blocks, STRIP, block]),
                             mul(value, scale.at([n, kb, idx(0), idx(0), c])))

            loop = ctx.loop(block, lane, "sc")
            if isinstance(loop, For):
                ctx.hints.append(Vectorize(loop.var.name, min(block, ctx.lanes)))
            return loop

        return Allocate(strip, seq(ctx.loops([in_blocks, count], copy, "sq"), panels_over(n, p0, count, strip)))

    def per_image(n: Expr) -> Stmt:
        if banded:
            return group_bands(n, None) if group == 1 else ctx.loop(group, lambda gi: group_bands(n, gi), "g")
        if group > 1:
            return ctx.loop(group, lambda gi: panels_over(n, idx(0), positions, gi=gi), "g")
        if weights_outer:
            return panels_over(n, idx(0), positions)
        strip = panels_over if scale is None else scaled_strip
        return tiles(ctx, positions, STRIP, lambda p0, count: strip(n, p0, count), "ps")

    return ctx.loop(n_batch, per_image, "n")
