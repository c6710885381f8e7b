"""Lowering of ConvInteger with constant int8/uint8 weights as an int8 implicit-GEMM kernel.

The convolution is the product of a [positions, K] matrix of input windows by the weights
[K, output channels], K = input channels x kernel taps, computed on the int8 micro-kernel of
quant_matmul.py (`int_tile`): int32 accumulators, the zero-point correction and the fused float epilogue
(Cast, scale Mul, bias, requantisation) in the tile's store. Two tile shapes:
- row tiles: output channels (broadcast weight lanes) x positions along one output row (vectors), so the
  epilogue and its stores are vectors; channel tiles outermost (their weights stay in cache);
- position tiles: flattened output positions (broadcast activation lanes) x output channels (vectors of
  packed weights), every lane useful whatever the row length, with a scalar (strided) epilogue that
  only a deep reduction amortises (`_by_rows` chooses; measured in BENCHMARKS.md).
No im2col: a prologue copies the input once into a "lane plane" (`LanePlane`) of int32, each lane holding
`per` consecutive input channels of one pixel (shifted to the uint8 range; two int16 halves for `dotw`,
four bytes for `dot4`), the padding filled with the activation zero point, split by stride phase for row
tiles, so a window tap of `per` channels is one load and the inner loop has no bounds checks. Weights
are packed at compile time to [group, channel panels, ceil(icg / per), *kernel, panel width] lanes:
- 16 int32 lanes (AVX-512) with zero weight zero points: `dot4` on bytes (one `vpdpbusd` with VNNI);
- 8 int32 lanes (AVX2) with zero weight zero points and few pairs of consecutive input channels that could
  saturate int16 (`conv_split`, MAX_CONV_FIXES, MAX_TILE_FIXES): `dot4sat` on bytes (`vpmaddubsw` + `vpmaddwd`
  by ones) of W_safe, then in the same registers the sparse remainder A x W_fix as a second `dot4sat` product
  over the plane lanes that hold a fix of the tile's channels (`_fix_tables`: at most one delta per byte pair,
  so it cannot saturate), the column sums taken over W_safe + W_fix;
- otherwise `dotw` on int16 pairs (one `vpmaddwd`): the weights' zero points are subtracted at compile
  time (|w - zw| <= 255 and 0 <= a <= 255 keep every pair sum exact in int32), so no row sums are needed.
With the activations a (zero point za) in the uint8 range, sum (a - za)(w - zw) = acc - za * colsum(w - zw),
the column sums taken at compile time over all of K (padding pixels hold za and contribute nothing).
Grouped convolutions run the same kernel per group. Depthwise ones (one input and one output channel per
group), whose lanes would be mostly padding, run the float32 depthwise kernel (depthwise.py) on a - za and
w - zw instead: every product and sum is an integer below 2^24, so float32 computes them exactly.
Non-constant weights, symbolic spatial sizes and scalar targets (ctx.lanes == 1) take the plain nest of
conv.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Bin, Cast, Const, Expr, Load, Stmt
from aic.ir.loop_tools import binop, seq
from aic.ir.ops.window import Window
from aic.ir.schedule import MicroKernel

from .contraction import register_tile
from .conv import conv_integer_nest, window_of
from .core import ComputeTensor, LowerCtx, Tensor, delinear, idx, linear, store
from .depthwise import depthwise
from .quant_matmul import PanelStage, int_tile, int_tiles, saturation_free
from .sizes import shape_of, size_prod
from .table import Emit, anchor

I32, F32 = DType.int32, DType.float32
QUANT = (DType.int8, DType.uint8)


def packed_conv_weights(w: np.ndarray, zero: np.ndarray, group: int, per: int, width: int) -> tuple[
        np.ndarray, np.ndarray]:
    """Weights [OC, icg, *kernel] minus their zero points (one per output channel) -> (int32 lanes
    [group, ceil(ocg / width), ceil(icg / per), *kernel, width] of `per` int16 (per 2) or int8 (per 4)
    values, input channels c * per + q of lane c; the int32 column sums [OC] of w - zero). Zero padded."""
    oc, icg, *kernel = w.shape
    ocg = oc // group
    shifted = w.astype(np.int32) - zero.astype(np.int32).reshape(-1, *[1] * (w.ndim - 1))
    sums = shifted.reshape(oc, -1).sum(axis=1, dtype=np.int32)
    panels, lanes = -(-ocg // width), -(-icg // per)
    padded = np.zeros((group, panels * width, lanes * per, *kernel), np.int32)
    padded[:, :ocg, :icg] = shifted.reshape(group, ocg, icg, *kernel)
    blocks = padded.reshape(group, panels, width, lanes, per, *kernel)
    taps = list(range(5, 5 + len(kernel)))
    order = np.ascontiguousarray(blocks.transpose(0, 1, 3, *taps, 2, 4))  # [g, panel, lane, *kernel, col, q]
    values = order.astype(np.int16 if per == 2 else np.int8)
    return np.ascontiguousarray(values).view(np.int32).reshape(order.shape[:-1]), sums


def row_tile(last: int, lanes: int) -> MicroKernel:
    """Output channels x positions of an output row: 4 x 2 vectors, or 8 x 1 vector for rows of at most one
    vector (8 accumulators, the loads and the broadcast fit AVX2's 16 registers)."""
    return MicroKernel(4, 2 * lanes) if last > lanes else MicroKernel(8, lanes)


@anchor("ConvInteger")
def _conv_integer(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, w_value = ins[0], node.inputs[1]
    xz = ins[2] if len(ins) > 2 else None
    wz_value = node.inputs[3] if len(node.inputs) > 3 else None
    static = x is not None and all(isinstance(d, int) for d in x.shape[1:])
    if (ctx.lanes == 1 or x is None or w_value is None or w_value.const is None or not static
            or x.dtype not in QUANT or (wz_value is not None and wz_value.const is None)):
        return conv_integer_nest(ctx, node, ins, emit)
    weights = np.asarray(w_value.const).astype(np.int32)
    out_channels, icg, *kernel = weights.shape
    zero_w = np.zeros(out_channels, np.int32) + (0 if wz_value is None else np.asarray(wz_value.const).astype(
        np.int32).reshape(-1))
    if w_value.type.dtype == DType.uint8:  # read as int8: b - 128, zero point - 128
        weights, zero_w = weights - 128, zero_w - 128
    window = window_of(node, kernel)
    outs = list(shape_of(node.outputs[0].type)[2:])
    group = node.attrs.get("group", 1)
    ocg = out_channels // group
    shift = 128 if x.dtype == DType.int8 else 0  # int8 activations are read as uint8 a + 128
    za = Cast(I32, xz.at([idx(0)] * xz.rank)) if xz is not None else Const(0, I32)
    if icg == 1 and ocg == 1 and int(np.prod(kernel)) * 255 * 255 < 1 << 24:
        return _depthwise_exact(ctx, x, weights - zero_w.reshape(-1, *[1] * len(kernel), 1), za, window, outs,
                                emit)
    by_rows = _by_rows(icg * int(np.prod(kernel)), window.strides, outs[-1], ctx.lanes)
    per, fixes = 2, None
    if not zero_w.any() and ctx.lanes >= 16:
        per = 4
    elif not zero_w.any() and ctx.lanes == 8:  # AVX2: vpmaddubsw on bytes where few pairs need a fix
        safe, split = conv_split(weights)
        if len(split[-1]) <= (MAX_CONV_FIXES if by_rows else MAX_TILE_FIXES) * weights.size:
            per, weights, fixes = 4, safe, split if len(split[-1]) else None
    zero_a = ctx.let(Bin("add", za, Const(shift, I32)) if shift else za, "za")
    plane = LanePlane(ctx, x, window, kernel, outs, group, per, split=by_rows, slack=4 * ctx.lanes)
    tiles = _row_tiles if by_rows else _position_tiles  # each tile adds its channels' fixes in its registers
    body = tiles(ctx, plane, weights, zero_w, group, per, outs, zero_a, emit, fixes)
    return seq(plane.fill(shift, zero_a), ctx.loop(x.shape[0], lambda n: ctx.loop(group, lambda g: body(n, g), "g"),
                                                   "n"))


# dot4sat when at most this fraction of the weights needs a fix (each tile adds its channels' fixes as a second
# product), per tile shape; measured in BENCHMARKS.md (row tiles at 1% 1.20x of dotw, the 3-channel stem at 1.7% 0.95x)
MAX_CONV_FIXES = 1 / 64  # row tiles
MAX_TILE_FIXES = 1 / 128  # position tiles (16 channels a panel: more fix entries per tile)
Fixes = tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]  # output channel, input channel, taps, delta


def conv_split(weights: np.ndarray) -> tuple[np.ndarray, Fixes]:
    """int8-range weights [OC, icg, *kernel] -> (W_safe, the fixes): no pair of consecutive input channels (the
    byte pairs of a lane of 4) of one output channel and tap of W_safe can saturate `vpmaddubsw`'s int16 sums;
    W = W_safe + delta at each fix's (output channel, input channel, *taps) (quant_matmul.saturation_free), the
    fixes in output channel order."""
    oc, icg, *kernel = weights.shape
    safe, (ic, col, delta) = saturation_free(np.moveaxis(weights, 1, 0).reshape(icg, -1).astype(np.int8))
    order = np.argsort(col // int(np.prod(kernel)), kind="stable")
    ic, col, delta = ic[order], col[order], delta[order]
    channel, *taps = np.unravel_index(col, (oc, *kernel))
    return np.moveaxis(safe.astype(np.int32).reshape(icg, oc, *kernel), 0, 1), (channel, ic, list(taps), delta)


def pairs_safe(weights: np.ndarray) -> bool:
    """Whether no pair of consecutive input channels (the byte pairs of a lane of 4) of one output channel and
    tap can saturate `vpmaddubsw`'s int16 sums (weights [OC, icg, *kernel], int8): `dot4sat` needs no fix."""
    return not len(conv_split(weights)[1][-1])


def _dot(ctx: LowerCtx, per: int) -> str:
    """The intrinsic for lanes of `per` channels: int16 pairs, or bytes (exact with VNNI's 16 lanes; on 8 lanes
    the saturating `vpmaddubsw`, chosen only for pair-safe weights)."""
    return "dotw" if per == 2 else "dot4" if ctx.lanes >= 16 else "dot4sat"


ROWS_MAX_DEPTH = 512  # reductions at least this deep amortise the scalar epilogue of position tiles


def _by_rows(depth: int, strides: tuple[int, ...], last: int, lanes: int) -> bool:
    """Row tiles (whose epilogue and stores are vectors along an output row) unless the reduction is deep
    enough to amortise the scalar epilogue of position tiles and rows would waste lanes (not whole vectors)
    or need a stride-phase-split copy of the input (scalar). Measured in BENCHMARKS.md."""
    return depth < ROWS_MAX_DEPTH or (all(s == 1 for s in strides) and last % lanes == 0)


TileBody = Callable[[Expr, Expr], Stmt]


def _row_tiles(ctx: LowerCtx, plane: LanePlane, weights: np.ndarray, zero_w: np.ndarray, group: int, per: int,
               outs: list[int], zero_a: Expr, emit: Emit, fixes: Fixes | None = None) -> TileBody:
    """Tiles of output channels (broadcast weight lanes) x positions along an output row (vectors of the
    stride-phase-split plane); channel tiles outermost, so their weights stay in cache. With `fixes` each tile
    adds A x W_fix of its channels in its registers after the main loop (`_fix_tables`)."""
    lanes, ocg, kernel = ctx.lanes, weights.shape[0] // group, list(weights.shape[2:])
    tile = register_tile(ctx, row_tile(outs[-1], lanes))
    if tile.cols % lanes:
        tile = MicroKernel(tile.rows, -(-tile.cols // lanes) * lanes)
    rows, width = tile.rows, tile.cols
    packed, sums = packed_conv_weights(weights, zero_w, group, per, rows)
    tables = None
    if fixes is not None:
        np.add.at(sums, fixes[0], fixes[3].astype(np.int32))  # the column sums of W = W_safe + W_fix
        tables = _fix_tables(ctx, plane, fixes, ocg, rows)
    packed_t, colsum = ctx.weight(packed, "wq"), ctx.weight(sums, "wsum")
    last = outs[-1]
    full_w, full_r = last // width * width, ocg // rows * rows
    steps = [plane.lanes, *kernel]

    def per_image(n: Expr, g: Expr) -> Stmt:
        def tile_at(o0: Expr, nrows: int, outer: list[Expr], w0: Expr, cols: int) -> Stmt:
            def a_lane(r: Expr, step: list[Expr]) -> Expr:  # weights of output channel o0 + r: broadcast
                return packed_t.at([g, binop("div", o0, idx(rows)), *step, r])

            def b_lane(step: list[Expr], c: Expr) -> Expr:  # activations of output position w0 + c: vector
                return plane.read(n, g, step[0], [*outer, binop("add", w0, c)], step[1:])

            def out(r: Expr, c: Expr, acc: Expr) -> Stmt:
                channel = binop("add", binop("mul", g, idx(ocg)), binop("add", o0, r))
                value = Bin("sub", acc, Bin("mul", zero_a, colsum.at([channel])))
                return emit(0, [n, channel, *outer, binop("add", w0, c)], value)

            compute = -(-cols // lanes) * lanes  # whole vectors: the plane has slack, extra lanes are dropped
            then = None
            if tables is not None:
                offset_t, delta_t, count = tables
                block = binop("div", o0, idx(rows))
                then = ([count], "dot4sat", lambda r, step: delta_t.at([g, block, step[0], r]),
                        lambda step, c: plane.at_offset(n, g, [*outer, binop("add", w0, c)],
                                                        Cast(INDEX, offset_t.at([g, block, step[0]]))))
            return int_tile(ctx, nrows, compute, cols, steps, _dot(ctx, per), a_lane, b_lane,
                            out, swap=True, then=then)

        def channel_tile(o0: Expr, nrows: int) -> Stmt:
            def row(outer: list[Expr]) -> Stmt:
                whole = ctx.loop(last // width, lambda t: tile_at(o0, nrows, outer, binop("mul", t, idx(width)),
                                                                  width), "wt")
                return seq(whole, tile_at(o0, nrows, outer, idx(full_w), last - full_w) if last > full_w else None)

            return ctx.loops(outs[:-1], row, "oh")

        whole = ctx.loop(ocg // rows, lambda t: channel_tile(binop("mul", t, idx(rows)), rows), "ot")
        return seq(whole, channel_tile(idx(full_r), ocg - full_r) if ocg > full_r else None)

    return per_image


def _position_tiles(ctx: LowerCtx, plane: LanePlane, weights: np.ndarray, zero_w: np.ndarray, group: int,
                    per: int, outs: list[int], zero_a: Expr, emit: Emit, fixes: Fixes | None = None) -> TileBody:
    """Tiles of flattened output positions (broadcast activation lanes) x output channels (vectors of packed
    weights): every lane useful whatever the row length; the epilogue's stores are scalar (strided). With
    `fixes` each tile adds A x W_fix of its channel panel in its registers after the main loop (`_panel_fixes`)."""
    lanes, ocg, kernel = ctx.lanes, weights.shape[0] // group, list(weights.shape[2:])
    tile = register_tile(ctx, MicroKernel(4, (4 if lanes >= 16 else 2) * lanes))
    if tile.cols % lanes:
        tile = MicroKernel(tile.rows, -(-tile.cols // lanes) * lanes)
    packed, sums = packed_conv_weights(weights, zero_w, group, per, tile.cols)
    if fixes is not None:
        np.add.at(sums, fixes[0], fixes[3].astype(np.int32))  # the column sums of W = W_safe + W_fix
    packed_t, colsum = ctx.weight(packed, "wq"), ctx.weight(sums, "wsum")

    def per_image(n: Expr, g: Expr) -> Stmt:
        def a_lane(p: Expr, step: list[Expr]) -> Expr:
            return plane.read(n, g, step[0], delinear(p, outs), step[1:])

        def b_lane(panel: Expr, step: list[Expr], c: Expr) -> Expr:
            return packed_t.at([g, panel, *step, c])

        def out(p: Expr, j: Expr, acc: Expr) -> Stmt:
            channel = binop("add", binop("mul", g, idx(ocg)), j)
            value = Bin("sub", acc, Bin("mul", zero_a, colsum.at([channel])))
            return emit(0, [n, channel, *delinear(p, outs)], value)

        then = _panel_fixes(ctx, plane, fixes, ocg, tile.cols, outs, n, g) if fixes is not None else None
        return int_tiles(ctx, size_prod(outs), ocg, [plane.lanes, *kernel], tile, _dot(ctx, per),
                         a_lane, b_lane, out, then=then)

    return per_image


def _fix_tables(ctx: LowerCtx, plane: LanePlane, fixes: Fixes, ocg: int, width: int) -> tuple[Tensor, Tensor, int]:
    """The fixes as a second `dot4sat` product over the plane's own lanes, per block of `width` output channels
    of a group: the (lane of 4 input channels, tap) entries where any channel of the block has a fix, padded
    to one count for all blocks (a flat plane offset per entry: table [group, block, entry]), and W_fix as
    bytes of those lanes ([group, block, entry, width] int32). A byte pair of W_fix has at most one non-zero
    delta (one fix per pair) of at most 128 in magnitude, so `vpmaddubsw` cannot saturate on it."""
    channel, ic, taps, delta = fixes
    group, blocks = plane.shape[1], -(-ocg // width)
    key = np.stack([ic // 4, *taps], axis=1)
    where = np.stack([channel // ocg, (channel % ocg) // width], axis=1)
    entries = {gb: np.unique(key[(where == gb).all(axis=1)], axis=0) for gb in {tuple(w) for w in where.tolist()}}
    count = max(len(e) for e in entries.values())
    offsets = np.zeros((group, blocks, count), np.int32)
    deltas = np.zeros((group, blocks, count, width, 4), np.int8)
    slot = {}
    for (gi, bi), found in entries.items():
        slot.update({(gi, bi, *e): j for j, e in enumerate(found.tolist())})
        offsets[gi, bi, : len(found)] = plane.offsets(found[:, 0], found[:, 1:])
    for c, i, d, *t in zip(channel.tolist(), ic.tolist(), delta.tolist(), *(x.tolist() for x in taps)):
        gi, bi = c // ocg, (c % ocg) // width
        deltas[gi, bi, slot[gi, bi, i // 4, *t], (c % ocg) % width, i % 4] = d
    return (ctx.weight(offsets, "fo"), ctx.weight(deltas.view(np.int32).reshape(group, blocks, count, width), "fw"),
            count)


def _panel_fixes(ctx: LowerCtx, plane: LanePlane, fixes: Fixes, ocg: int, width: int, outs: list[int],
                 n: Expr, g: Expr) -> PanelStage:
    """A x W_fix for position tiles (`_fix_tables`, blocks = channel panels): activation lanes broadcast."""
    offset_t, delta_t, count = _fix_tables(ctx, plane, fixes, ocg, width)

    def a_lane(position: Expr, p: Expr, step: list[Expr]) -> Expr:
        return plane.at_offset(n, g, delinear(position, outs), Cast(INDEX, offset_t.at([g, p, step[0]])))

    return [count], "dot4sat", a_lane, lambda p, step, c: delta_t.at([g, p, step[0], c])


def _depthwise_exact(ctx: LowerCtx, x: Tensor, weights: np.ndarray, za: Expr, window: Window, outs: list[int],
                     emit: Emit) -> Stmt:
    """Depthwise ConvInteger as the float32 depthwise kernel of a - za (padding 0) and weights - zw."""
    zero = ctx.let(Cast(F32, za), "za")
    centred = ComputeTensor(x.shape, F32, lambda i: Bin("sub", Cast(F32, x.at(i)), zero))
    return depthwise(ctx, centred, weights.astype(np.float32), window, outs,
                     lambda index, v: emit(0, index, Cast(I32, v)))


class LanePlane:
    """The input as int32 lanes of `per` consecutive channels of one pixel, shifted to the uint8 range,
    zero-point padded and split by stride phase: plane (n, g, lane) holds element (*phase, *sub) = padded
    input position sub * stride + phase, so kernel tap t of output position o reads phase (t*d) % s at
    sub-position o + (t*d) // s: contiguous along the output row whatever the stride."""

    def __init__(self, ctx: LowerCtx, x: Tensor, window: Window, kernel: list[int], outs: list[int], group: int,
                 per: int, split: bool, slack: int) -> None:
        spatial = list(x.shape[2:])
        self.ctx, self.x, self.per, self.window = ctx, x, per, window
        self.icg = x.shape[1] // group
        self.lanes = -(-self.icg // per)
        self.begins = [window.pad_amounts(i, d)[0] for i, d in enumerate(spatial)]
        self.phases = list(window.strides) if split else [1] * len(spatial)  # not split: one phase, strided reads
        self.steps = [1] * len(spatial) if split else list(window.strides)  # sub-position step per output
        subs = [max((o - 1) * st + (k - 1) * d // p + 1, -(-(n + b) // p)) for o, k, p, st, d, n, b in zip(
            outs, kernel, self.phases, self.steps, window.dilations, spatial, self.begins)]
        self.shape = (x.shape[0], group, self.lanes, *self.phases, *subs)
        self.covered = all(p == 1 for p in self.phases) and subs == spatial and not any(self.begins)
        self.size = size_prod(self.shape) + slack
        self.buf = ctx.scratch(I32, self.size)

    def read(self, n: Expr, g: Expr, lane: Expr, o: list[Expr], taps: list[Expr]) -> Expr:
        """Lane `lane` of kernel tap `taps` of output position `o`."""
        at = [binop("mul", t, idx(d)) for t, d in zip(taps, self.window.dilations)]
        phase = [binop("mod", a, idx(p)) for a, p in zip(at, self.phases)]
        sub = [binop("add", binop("mul", oi, idx(st)), binop("div", a, idx(p)))
               for oi, a, p, st in zip(o, at, self.phases, self.steps)]
        return Load(self.buf, linear([n, g, lane, *phase, *sub], self.shape))

    def offsets(self, lanes: np.ndarray, taps: np.ndarray) -> np.ndarray:
        """Flat offsets of lane `lanes[e]` at kernel tap `taps[e]` from lane 0, tap 0 of the same output position."""
        strides = [int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape))]
        nd = len(self.phases)
        at = taps * np.asarray(self.window.dilations)
        phase, sub = at % np.asarray(self.phases), at // np.asarray(self.phases)
        return (lanes * strides[2] + phase @ np.asarray(strides[3:3 + nd]) + sub @ np.asarray(strides[3 + nd:])).astype(
            np.int32)

    def at_offset(self, n: Expr, g: Expr, o: list[Expr], offset: Expr) -> Expr:
        """The lane `offset` (from `offsets`) past lane 0, tap 0 of output position `o`."""
        base = self.read(n, g, idx(0), o, [idx(0)] * len(o))
        assert isinstance(base, Load)
        return Load(self.buf, binop("add", base.index, offset))

    def fill(self, shift: int, zero_a: Expr) -> Stmt:
        """Every lane the zero point in each of its slots (unless the input covers the plane), then each
        pixel's `per` input channels (past the group's last channel: a copy of it; its weights are 0)."""
        ctx, x, per, icg = self.ctx, self.x, self.per, self.icg
        bits = 32 // per
        mask = (1 << bits) - 1
        zero_lane: Expr = Const(0, I32)
        for q in range(per):
            zero_lane = Bin("or", zero_lane, Bin("shl", Bin("and", zero_a, Const(mask, I32)), Const(bits * q, I32)))
        zero_lane = ctx.let(zero_lane, "zl")
        fill = None if self.covered else ctx.loops((self.size,), lambda i: store(self.buf, i[0], zero_lane), "z")

        def copy(index: list[Expr]) -> Stmt:
            n, g, lane, pixel = index[0], index[1], index[2], index[3:]
            value: Expr = Const(0, I32)
            for q in range(per):
                channel = binop("add", binop("mul", lane, idx(per)), idx(q))
                inside = binop("min", channel, idx(icg - 1)) if icg % per else channel
                a = Cast(I32, x.at([n, binop("add", binop("mul", g, idx(icg)), inside), *pixel]))
                a = Bin("add", a, Const(shift, I32)) if shift else a
                value = Bin("or", value, Bin("shl", Bin("and", a, Const(mask, I32)), Const(bits * q, I32)))
            padded = [binop("add", i, idx(b)) for i, b in zip(pixel, self.begins)]
            phase = [binop("mod", y, idx(p)) for y, p in zip(padded, self.phases)]
            sub = [binop("div", y, idx(p)) for y, p in zip(padded, self.phases)]
            return store(self.buf, linear([n, g, lane, *phase, *sub], self.shape), value)

        return seq(fill, ctx.loops((*self.shape[:3], *x.shape[2:]), copy, "pl"))
