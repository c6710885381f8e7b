"""Lowering of ConvInteger with constant int8/uint8 weights as an int8 implicit-GEMM kernel.

The convolution is the product of a [positions, K] matrix of input windows by the weights
[K, output channels], K = input channels x kernel taps, computed on the int8 micro-kernel of
quant_matmul.py (`int_tiles`): tiles of output positions (rows, each a broadcast lane) by output
channels (columns, vectors of packed weights), int32 accumulators, the zero-point correction and the
fused float epilogue (Cast, scale Mul, bias, requantisation) in the tile's store. No im2col: a prologue
copies the input once into a "lane plane" [batch, group, ceil(icg / per), padded spatial...] of int32,
each lane holding `per` consecutive input channels of one pixel (shifted to the uint8 range; two int16
halves for `dotw`, four bytes for `dot4`), the padding filled with the activation zero point, so a window
tap of `per` channels is one aligned load and the inner loop has no bounds checks. Weights are packed at
compile time to [group, channel panels, ceil(icg / per), *kernel, panel width] lanes of `per` values:
- 16 int32 lanes (AVX-512) with zero weight zero points: `dot4` on bytes (one `vpdpbusd` with VNNI);
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

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Bin, Cast, Const, Expr, Load, Stmt
from aic.ir.loop_tools import binop, seq
from aic.ir.ops.window import Window
from aic.ir.schedule import MicroKernel

from .contraction import register_tile
from .conv import conv_integer_nest, window_of
from .core import ComputeTensor, LowerCtx, Tensor, delinear, idx, linear, store
from .depthwise import depthwise
from .quant_matmul import int_tiles
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


def lane_tile(lanes: int) -> MicroKernel:
    """4 output positions by 2 vectors of output channels (AVX2's 16 registers) or 4 (AVX-512's 32)."""
    return MicroKernel(4, (4 if lanes >= 16 else 2) * lanes)


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
    out_shape = shape_of(node.outputs[0].type)
    outs = list(out_shape[2:])
    spatial = list(x.shape[2:])
    pads = [window.pad_amounts(i, d) for i, d in enumerate(spatial)]
    extents = [max(b + d + e, (o - 1) * s + span)
               for (b, e), d, o, s, span in zip(pads, spatial, outs, window.strides, window.spans)]
    group = node.attrs.get("group", 1)
    ocg = out_channels // group
    per = 4 if ctx.lanes >= 16 and not zero_w.any() else 2
    tile = register_tile(ctx, lane_tile(ctx.lanes))
    if tile.cols % ctx.lanes:
        tile = MicroKernel(tile.rows, -(-tile.cols // ctx.lanes) * ctx.lanes)
    packed, sums = packed_conv_weights(weights, zero_w, group, per, tile.cols)
    packed_t, colsum = ctx.weight(packed, "wq"), ctx.weight(sums, "wsum")
    shift = 128 if x.dtype == DType.int8 else 0  # int8 activations are read as uint8 a + 128
    za = Cast(I32, xz.at([idx(0)] * xz.rank)) if xz is not None else Const(0, I32)
    if icg == 1 and ocg == 1 and int(np.prod(kernel)) * 255 * 255 < 1 << 24:
        return _depthwise_exact(ctx, x, weights - zero_w.reshape(-1, *[1] * len(kernel), 1), za, window, outs,
                                emit)
    zero_a = ctx.let(Bin("add", za, Const(shift, I32)) if shift else za, "za")
    lanes_per_group = -(-icg // per)
    plane_shape = (x.shape[0], group, lanes_per_group, *extents)
    plane = ctx.scratch(I32, size_prod(plane_shape))
    prologue = _fill_plane(ctx, x, plane, plane_shape, [b for b, _ in pads], icg, per, shift, zero_a)
    positions = size_prod(outs)
    row_strides = [s * size_prod(extents[i + 1:]) for i, s in enumerate(window.strides)]
    tap_strides = [d * size_prod(extents[i + 1:]) for i, d in enumerate(window.dilations)]

    def per_image(n: Expr, g: Expr) -> Stmt:
        def a_lane(p: Expr, step: list[Expr]) -> Expr:
            lane, taps = step[0], step[1:]
            at = linear([n, g, lane], plane_shape[:3])
            offset: Expr = binop("mul", at, idx(size_prod(extents)))
            for c, st in zip(delinear(p, outs), row_strides):
                offset = binop("add", offset, binop("mul", c, idx(st)))
            for t, st in zip(taps, tap_strides):
                offset = binop("add", offset, binop("mul", t, idx(st)))
            return Load(plane, offset)

        def b_lane(panel: Expr, step: list[Expr], c: Expr) -> Expr:
            return packed_t.at([g, panel, *step, c])

        def out(p: Expr, j: Expr, acc: Expr) -> Stmt:
            channel = binop("add", binop("mul", g, idx(ocg)), j)
            value = Bin("sub", acc, Bin("mul", zero_a, colsum.at([channel])))
            return emit(0, [n, channel, *delinear(p, outs)], value)

        return int_tiles(ctx, positions, ocg, [lanes_per_group, *kernel], tile, "dotw" if per == 2 else "dot4",
                         a_lane, b_lane, out)

    main = ctx.loop(x.shape[0], lambda n: ctx.loop(group, lambda g: per_image(n, g), "g"), "n")
    return seq(prologue, main)


def _depthwise_exact(ctx: LowerCtx, x: Tensor, weights: np.ndarray, za: Expr, window: Window, outs: list[int],
                     emit: Emit) -> Stmt:
    """Depthwise ConvInteger as the float32 depthwise kernel of a - za (padding 0) and weights - zw."""
    zero = ctx.let(Cast(F32, za), "za")
    centred = ComputeTensor(x.shape, F32, lambda i: Bin("sub", Cast(F32, x.at(i)), zero))
    return depthwise(ctx, centred, weights.astype(np.float32), window, outs,
                     lambda index, v: emit(0, index, Cast(I32, v)))


def _fill_plane(ctx: LowerCtx, x: Tensor, plane, shape: tuple, begins: list[int], icg: int, per: int, shift: int,
                zero_a: Expr) -> Stmt:
    """The lane plane: every lane of padding the zero point in each of its `per` slots, then each interior
    pixel's `per` input channels (past the group's last channel: a copy of it; its weights are 0)."""
    bits = 32 // per
    mask = (1 << bits) - 1
    zero_lane: Expr = Const(0, I32)
    for q in range(per):
        zero_lane = Bin("or", zero_lane, Bin("shl", Bin("and", zero_a, Const(mask, I32)), Const(bits * q, I32)))
    zero_lane = ctx.let(zero_lane, "zl")
    fill = None
    if list(shape[3:]) != list(x.shape[2:]):
        fill = ctx.loops((size_prod(shape),), lambda i: store(plane, i[0], zero_lane), "z")

    def copy(index: list[Expr]) -> Stmt:
        n, g, lane, pixel = index[0], index[1], index[2], index[3:]
        value: Expr = Const(0, I32)
        for q in range(per):
            channel = binop("add", binop("mul", lane, idx(per)), idx(q))
            inside = binop("min", channel, idx(icg - 1)) if icg % per else channel  # past icg: weight 0
            a = Cast(I32, x.at([n, binop("add", binop("mul", g, idx(icg)), inside), *pixel]))
            a = Bin("add", a, Const(shift, I32)) if shift else a
            value = Bin("or", value, Bin("shl", Bin("and", a, Const(mask, I32)), Const(bits * q, I32)))
        to = [n, g, lane, *(binop("add", i, idx(b)) for i, b in zip(pixel, begins))]
        return store(plane, linear(to, shape), value)

    return seq(fill, ctx.loops((*shape[:3], *x.shape[2:]), copy, "pl"))
