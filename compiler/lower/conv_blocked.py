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
  the 1x1 expansion of each band of rows into it, by tiles of positions x one block: `expanded_rows`);
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
from dataclasses import dataclass

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node, Value
from aic.ir.loop import Allocate, Bin, Buffer, Call, Expr, For, If, Load, Stmt, Store
from aic.ir.loop_tools import binop, select, seq
from aic.ir.ops.registry import get_op
from aic.ir.ops.window import Window
from aic.ir.schedule import Unroll, Vectorize
from aic.ir.types import TensorType

from .conv import window_of
from .core import BufferTensor, ComputeTensor, LowerCtx, Tensor, clamp, const, delinear, idx, linear, node_error
from .depthwise import LOCAL_PLANE
from .mathx import add, maximum, minimum, mul
from .micro_kernel import micro_kernel, tiles
from .reduce import stack
from .sizes import shape_of
from .table import Emit, anchor, compute, lowering_of
from .window import clamped, inside_input, tap_coords

ROWS = 6  # output positions per register tile: 6 x 2 (4) accumulator vectors, 2 (4) weight vectors, 1 broadcast
PAIR = 2  # output channel blocks per register tile
QUAD = 4  # the same with 32 vector registers (AVX-512)
STRIP = 12  # positions whose input stays in L1 while the weight panels pass (a multiple of every tile's rows)
SPAN = 6  # depthwise: output positions along a row computed together (measured: 4 is slower)
WIDE_SPAN = 8  # the same with 32 vector registers (AVX-512: 5-10% faster than 6, measured: BENCHMARKS.md)
BAND_ROWS = 10  # depthwise planes larger than LOCAL_PLANE: padded input rows copied per band of output rows
GROUP_BAND_ROWS = 10  # grouped convolutions with padding: padded input rows of a group copied per band
GRID_ROWS = 3  # banded convolutions: a tile of 12 (6) positions is 3 output rows by 4 (2) columns
EXPAND_ROWS = 16  # an input expansion's register tile: positions along a row by one channel block (32 vector
# registers: the `fuse-expand` pass runs for AVX-512 targets; 3.5% faster than 8 positions at 112x112)
EXPAND_BAND_ROWS = 18  # an expanded band: 17 input rows for 8 output rows at stride 2 (1 row expanded twice)
WIDE_LANES = 32  # a sigmoid activation of an expansion's tile: lanes per vector (LLVM splits it into registers)

Finish = Callable[[list[Expr], Expr], Stmt]
Store_ = Callable[[int, list[Expr], Expr], Stmt]


@dataclass(frozen=True)
class Expansion:
    """A depthwise convolution's input expansion: a 1x1 convolution, weights packed [out block, in block, in lane,
    out lane], then its bias and activation."""

    weights: Tensor
    bias: Tensor | None
    activation: str
    clip: tuple[float, float] | None

    @staticmethod
    def of(ctx: LowerCtx, node: Node, ins: list[Tensor | None], block: int) -> Expansion | None:
        w = node.inputs[4].const if len(node.inputs) > 4 and node.inputs[4] is not None else None
        if w is None:
            return None
        mid, channels = w.shape[:2]
        packed = np.asarray(w, np.float32).reshape(mid // block, block, channels // block, block).transpose(0, 2, 3, 1)
        clip = node.attrs.get("expand_clip")
        return Expansion(ctx.weight(np.ascontiguousarray(packed), "we"), ins[5] if len(ins) > 5 else None,
                         node.attrs.get("expand_activation", ""), (clip[0], clip[1]) if clip else None)

    def value(self, ctx: LowerCtx, channel: Expr, v: Expr) -> Expr:
        v = add(v, self.bias.at([channel])) if self.bias is not None else v
        v = activate(ctx, self.activation, v) if self.activation else v
        if self.clip is None:
            return v
        return minimum(maximum(v, const(self.clip[0], v.dtype)), const(self.clip[1], v.dtype))


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


def activate(ctx: LowerCtx, op: str, v: Expr) -> Expr:
    """The elementwise op `op` (one input, default attributes) of `v`, by that op's own lowering."""
    node = Node(op, [None], [Value(op, TensorType(v.dtype, ()))], get_op(op).check_attrs({}), name=op)
    fn = lowering_of(node).fn
    assert fn is not None
    return fn(ctx, node, [ComputeTensor((), v.dtype, lambda i: v)])[0].at([])


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
    padded = any(window.pads)
    banded = (padded and group > 1) or entry  # each group's band of input rows copied (zero padded) onto the stack
    begins = [window.pad_amounts(i, d)[0] for i, d in enumerate(spatial)]
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


def blocked_depthwise(ctx: LowerCtx, x: Tensor, weights: np.ndarray, window: Window, out_shape: list[int],
                      value: Callable[[list[Expr], Expr], Expr], store: Store_, pooled: bool = False,
                      expand: Expansion | None = None) -> Stmt:
    """Depthwise: one vector multiply-add per tap (input vector x weight vector). A padded window first
    copies the channel block's plane into a zero-padded stack buffer (read back from L1), so no tap is
    bounds checked. SPAN (WIDE_SPAN) positions along a row are computed together, kernel row by kernel row: each
    weight vector is loaded once for all of them and each input vector once for every tap that reads it
    (stride 1: SPAN + kw - 1 per kernel row instead of SPAN x kw), in SPAN independent chains; a row's last
    positions are one shorter span (one chain per position each ran all taps in sequence, latency-bound: twice
    the time of the spans on rows of 28). Each output is value(index, sum of taps), written by store(0, ...).
    `pooled`: the sum of each span's values is stored in a slot of a stack buffer (a store, not a running sum:
    one more vector live across the tap loops made it spill), and after the plane the slots' mean is written
    by store(1, ...). A plain input [N, C, H, W] (an entry convolution) is read by the copy of each block's plane,
    the block's channels gathered into the lanes: no reorder of its own. With an `expand`, the copy of each band
    of input rows is the expansion of those rows (`expanded_rows`): the expanded input is never written out."""
    plain = x.rank == len(out_shape) - 1
    n_batch, in_blocks, *spatial = x.shape[:-1] if not plain else x.shape  # (plain: in_blocks are channels)
    blocks, block = out_shape[1], out_shape[-1]
    outs = out_shape[2:-1]
    width = WIDE_SPAN if ctx.lanes >= 16 else SPAN
    spans, rest = divmod(outs[1], width)
    per_row = spans + (rest > 0)
    slots = outs[0] * per_row
    partial = stack(ctx, x.dtype, slots * block, "part")

    def finish(items: list[tuple[list[Expr], Expr]], slot: Expr) -> Stmt:
        """Outputs (index, sum of taps) of one lane `c`, their values summed into `slot` when pooled."""
        if not pooled:
            return seq(*(store(0, index, value(index, v)) for index, v in items))
        at = binop("add", binop("mul", slot, idx(block)), items[0][0][-1])
        stmts = []
        for k, (index, v) in enumerate(items):
            with ctx.scope() as sc:  # each value bound just before its two uses: it dies there (no spills)
                y = ctx.let(value(index, v), "y")
                summed = add(Load(partial, at), y) if k else y
                stmts.append(sc.wrap(seq(store(0, index, y), Store(partial, at, summed))))
        return seq(*stmts)

    kernel = list(weights.shape[2:])
    packed = ctx.weight(np.moveaxis(weights.reshape(blocks, block, *kernel), 1, -1), "w")  # [C/B, kh, kw, B]
    begins = [window.pad_amounts(i, d)[0] for i, d in enumerate(spatial)]
    extents = [max(b + d, (o - 1) * st + k) for b, d, o, st, k in zip(begins, spatial, outs, window.strides, kernel)]
    inner = Window(window.kernel, window.strides, window.dilations, (0,) * 4)
    lanes: list[Stmt] = []

    def vector_loop(body: Callable[[Expr], Stmt]) -> Stmt:
        loop = ctx.loop(block, body, "c")
        lanes.append(loop)
        return loop

    def span(src: Tensor, n: Expr, cb: Expr, oh: Expr, ow: Expr, slot: Expr, src_oh: Expr, count: int) -> Stmt:
        """Outputs (oh, ow + t), t < count, read at row src_oh of `src`: accumulators on the stack, a loop over
        the kernel rows."""
        acc = stack(ctx, x.dtype, count * block)
        zero = const(0, x.dtype)
        init = vector_loop(lambda c: seq(*(Store(acc, binop("add", idx(t * block), c), zero) for t in range(count))))

        def kernel_row(i: Expr) -> Stmt:
            def lane(c: Expr) -> Stmt:
                wv = [ctx.let(packed.at([cb, i, idx(j), c]), "wv") for j in range(kernel[1])]
                loads: dict[int, Expr] = {}
                stores = []
                for t in range(count):
                    at = binop("add", idx(t * block), c)
                    total: Expr = Load(acc, at)
                    for j in range(kernel[1]):
                        col = t * window.strides[1] + j
                        if col not in loads:
                            coords = tap_coords(inner, extents, [src_oh, ow], [i, idx(col)])
                            loads[col] = ctx.let(src.at([n, cb, *coords, c]), "xv")
                        total = Call("fma", (loads[col], wv[j], total))
                    stores.append(Store(acc, at, total))
                return seq(*stores)

            return vector_loop(lane)

        rows = ctx.loop(kernel[0], kernel_row, "kr")
        done = vector_loop(lambda c: finish([
            ([n, cb, oh, binop("add", ow, idx(t)), c], Load(acc, binop("add", idx(t * block), c)))
            for t in range(count)], slot))
        return Allocate(acc, seq(init, rows, done))

    def output_rows(src: Tensor, n: Expr, cb: Expr, top: Expr | None = None, count: int = outs[0]) -> Stmt:
        """Output rows top .. top + count (all by default); with a `top`, `src` holds the band's rows from 0."""
        whole = spans * width

        def row(q: Expr) -> Stmt:
            oh = q if top is None else binop("add", top, q)
            first = binop("mul", oh, idx(per_row))
            tiled = ctx.loop(spans, lambda j: span(src, n, cb, oh, binop("mul", j, idx(width)),
                                                   binop("add", first, j), q, width), "ot")
            tail = span(src, n, cb, oh, idx(whole), binop("add", first, idx(spans)), q, rest) if rest else None
            return seq(tiled, tail)

        return ctx.loop(count, row, "oh")

    local = int(np.prod(extents)) * block <= LOCAL_PLANE
    # a padded plane up to LOCAL_PLANE floats is a stack buffer of its own iteration; a larger one (112x112
    # maps) is copied band by band: `band` output rows read `band_rows` padded input rows (L1-sized)
    stride = window.strides[0]
    band = extents[0] if local else max(1, ((EXPAND_BAND_ROWS if expand else BAND_ROWS) - kernel[0]) // stride + 1)
    band_rows = min(extents[0], (band - 1) * stride + kernel[0])

    def expanded_rows(buf: Buffer, shape: list[int], n: Expr, cb: Expr, top: Expr, count: int) -> Stmt:
        """The band's `count` padded rows from padded row `top`: each row inside the input is its expansion by
        register tiles of positions x one block, the padding zeros."""
        assert expand is not None
        height, width = spatial
        zero = const(0, x.dtype)
        # a sigmoid's long chains interleave when its vectors span several registers
        wide = expand.activation in ("Swish", "Sigmoid") and expand.clip is None

        def channel(c: Expr) -> Expr:
            return binop("add", binop("mul", cb, idx(block)), c)

        def row(h: Expr) -> Stmt:
            ih = binop("sub", binop("add", h, top), idx(begins[0]))

            def part(w0: Expr, count: int) -> Stmt:
                def a(r: Expr, ks: list[Expr]) -> Expr:
                    return x.at([n, ks[0], clamp(ih, 0, height - 1), binop("add", w0, r), ks[1]])

                def b(ks: list[Expr], _: Expr, c: Expr) -> Expr:
                    return expand.weights.at([cb, *ks, c])

                def out(r: Expr, _: Expr, c: Expr, v: Expr) -> Stmt:
                    at = linear([h, binop("add", idx(begins[1]), binop("add", w0, r)), c], shape)
                    return Store(buf, at, v if wide else expand.value(ctx, channel(c), v))

                def tile(acc: Buffer) -> Stmt:
                    """The bias row by row, then the activation over the whole tile as vectors of WIDE_LANES."""
                    assert expand is not None
                    bias = expand.bias
                    biased = None if bias is None else ctx.loop(count, lambda r: vector_loop(lambda c: Store(
                        acc, binop("add", binop("mul", r, idx(block)), c),
                        add(Load(acc, binop("add", binop("mul", r, idx(block)), c)), bias.at([channel(c)])))), "tb")
                    act = ctx.loop(count * block, lambda j: Store(acc, j, activate(ctx, expand.activation,
                                                                                   Load(acc, j))), "ta")
                    if isinstance(biased, For):
                        ctx.hints.append(Unroll(biased.var.name))
                    if isinstance(act, For):
                        ctx.hints.append(Vectorize(act.var.name, min(WIDE_LANES, count * block)))
                    return seq(biased, act)

                return micro_kernel(ctx, [in_blocks, block], count, block, block, a, b, out,
                                    tile=tile if wide else None)

            def zeros(first: int, columns: int) -> Stmt | None:
                if columns <= 0:
                    return None
                return ctx.loop(columns, lambda w: vector_loop(lambda c: Store(
                    buf, linear([h, binop("add", idx(first), w), c], shape), zero)), "ez")

            inside = seq(zeros(0, begins[1]), tiles(ctx, width, EXPAND_ROWS, part, "ew"),
                         zeros(begins[1] + width, extents[1] - begins[1] - width))
            condition = inside_input([ih], [height])
            assert condition is not None
            return If(condition, inside, zeros(0, extents[1]))

        return ctx.loop(count, row, "er")

    def rows_of(n: Expr, cb: Expr, first: Expr, count: int) -> Stmt:
        """Output rows first .. first + count of block cb from a padded copy of the input rows they read."""
        buf = stack(ctx, x.dtype, band_rows * extents[1] * block, "xp")
        top = binop("mul", first, idx(stride))  # the band's first padded input row
        shape = [band_rows, extents[1], block]

        def fill(hw: list[Expr]) -> Stmt:
            coords = [binop("sub", binop("add", hw[0], top), idx(begins[0])), binop("sub", hw[1], idx(begins[1]))]

            def read(c: Expr) -> Expr:
                at = clamped(coords, spatial)
                return x.at([n, binop("add", binop("mul", cb, idx(block)), c), *at]) if plain else \
                    x.at([n, cb, *at, c])

            return vector_loop(lambda c: Store(buf, linear([*hw, c], shape), select(
                inside_input(coords, spatial), read(c), const(0, x.dtype))))

        src = ComputeTensor((n_batch, blocks, *shape), x.dtype, lambda i: Load(buf, linear(i[2:], shape)))
        rows = (count - 1) * stride + kernel[0]
        copy = expanded_rows(buf, shape, n, cb, top, rows) if expand else ctx.loops([rows, extents[1]], fill, "pp")
        return Allocate(buf, seq(copy, output_rows(src, n, cb, first, count)))

    def plane(n: Expr, cb: Expr) -> Stmt:
        if extents == spatial and not plain and expand is None:
            return output_rows(x, n, cb)
        if local:
            return rows_of(n, cb, idx(0), outs[0])
        return tiles(ctx, outs[0], band, lambda first, count: rows_of(n, cb, first, count), "bd")

    def pooled_plane(n: Expr, cb: Expr) -> Stmt:
        """The plane, then the mean of its slots."""
        total = stack(ctx, x.dtype, block, "sum")
        zero = vector_loop(lambda c: Store(total, c, const(0, x.dtype)))
        sums = ctx.loop(slots, lambda q: vector_loop(lambda c: Store(total, c, add(
            Load(total, c), Load(partial, binop("add", binop("mul", q, idx(block)), c))))), "sq")
        mean = vector_loop(lambda c: store(1, [n, cb, idx(0), idx(0), c], mul(
            Load(total, c), const(1 / (outs[0] * outs[1]), x.dtype))))
        return Allocate(partial, Allocate(total, seq(plane(n, cb), zero, sums, mean)))

    if expand is not None and not (local or pooled):  # bands outermost: each block's expansion of a band reads
        # the band's input rows from L2 (planes outermost: the whole input passed through once per block)
        nest = ctx.loop(n_batch, lambda n: tiles(ctx, outs[0], band, lambda first, count: ctx.loop(
            blocks, lambda cb: rows_of(n, cb, first, count), "cb"), "bd"), "n")
    else:
        nest = ctx.loops([n_batch, blocks], lambda i: pooled_plane(*i) if pooled else plane(*i), "i")
    for loop in lanes:
        if isinstance(loop, For) and block >= 4:
            ctx.hints.append(Vectorize(loop.var.name, min(block, ctx.lanes)))
    return nest
