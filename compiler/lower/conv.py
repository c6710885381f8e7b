"""Lowering of convolutions: Conv, ConvTranspose, ConvInteger (any number of spatial dims).

`_conv` picks the kernel for each float32 Conv with constant weights: the dense tilings of
conv_dense.py (1x1 convolutions over the flattened positions; output channels x row vectors for
stride 1; positions x output channels for deep convolutions on rows that are not whole vectors and
for strided ones; rows over a stride-phase-split input for shallow strided stems), depthwise.py for
depthwise convolutions, and a direct nest for the rest (narrow groups, non-constant weights).
ConvTranspose runs one stride-1 convolution per output phase (conv_transpose.py); with dilations
or non-constant weights it gathers per output element. The tiles, the weight packing and the order
of the tile loops are schedule records, as for matrix products (compiler/lower/contraction.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Bin, Cast, Expr, Stmt
from aic.ir.loop_tools import binop, select, seq
from aic.ir.ops.window import Window, make_window

from .conv_dense import conv_rows, conv_tiled, pointwise_flat
from .conv_transpose import conv_transpose_phases, phase_rows, upsampling_product
from .conv_winograd import conv_winograd, takes_winograd
from .core import (
    BufferTensor,
    ComputeTensor,
    LowerCtx,
    Tensor,
    cdtype,
    clamp,
    const,
    idx,
    node_error,
)
from .depthwise import PhaseSplit, depthwise
from .mathx import add, mul
from .reduce import accumulate
from .sizes import shape_of, size_prod
from .table import Emit, anchor
from .window import clamped, inside_input, interior, padded_input, tap_coords, window_loops


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
    if fast and any(s > 1 for s in window.strides) and 2 * outs[-1] > ctx.lanes and (
            depth <= STRIDED_ROWS_DEPTH or x.shape[1] // group <= STRIDED_ROWS_CHANNELS):
        # Shallow strided convolutions and image stems (3 channels, 7x7): rows over the stride-phase-split
        # input, whose taps are contiguous.
        split = PhaseSplit(ctx, x, window, kernel, outs, local=False, slack=2 * ctx.lanes)
        return seq(split.prepare(), conv_rows(ctx, node, x, np.asarray(weights, np.float32), window, outs, group,
                                               finish, split.read))
    if fast and pointwise and all(s == 1 for s in window.strides) and len(outs) == 2 and _flat_rows(
            ctx, outs[0] * outs[1]):
        xp, prep = padded_input(ctx, x, [0, 0], outs)  # (a copy only of a subsampled or computed input)
        assert isinstance(xp, BufferTensor)
        return seq(prep, pointwise_flat(ctx, node, xp, np.asarray(weights, np.float32), outs, group, finish))
    if fast and pointwise and ocg >= ctx.lanes:  # other 1x1 (7x7 maps): tiles over a packed copy
        return conv_tiled(ctx, node, x, np.asarray(weights, np.float32), window, outs, group, finish)
    if fast and takes_winograd(ctx, window, kernel, group, (x.shape[1], out_shape[1]), outs):
        return conv_winograd(ctx, node, x, np.asarray(weights, np.float32), window, outs, finish)
    if fast and all(s == 1 for s in window.strides) and 2 * outs[-1] > ctx.lanes and not _ragged_rows(
            ctx, outs, depth, ocg):
        slack = 0 if outs[-1] % ctx.lanes == 0 else 2 * ctx.lanes  # row tiles compute whole vectors
        xp, prep = padded_input(ctx, x, [b for b, _ in pads], extents, slack)
        return seq(prep, conv_rows(ctx, node, xp, np.asarray(weights, np.float32), window, outs, group, finish))
    if fast and ocg >= ctx.lanes:
        xp, prep = padded_input(ctx, x, [b for b, _ in pads], extents)
        return seq(prep, conv_tiled(ctx, node, xp, np.asarray(weights, np.float32), window, outs, group, finish))
    if x.dtype == DType.float32 and weights is not None and group == x.shape[1] == out_shape[1]:
        return depthwise(ctx, x, np.asarray(weights, np.float32), window, outs, finish)
    return _conv_direct(ctx, x, w, window, out_shape, group, dtype, finish)


ROWS_MAX_DEPTH = 512  # above this reduction depth, ragged rows go to position x channel tiles
FLAT_MIN_USE = 0.9  # 1x1 rows over flattened positions whose tiles of two vectors are at least this full
STRIDED_ROWS_DEPTH = 64  # strided convolutions this shallow run as rows over a phase-split input
STRIDED_ROWS_CHANNELS = 4  # so do strided convolutions of this few input channels per group, whatever the kernel


def _flat_rows(ctx: LowerCtx, positions: int) -> bool:
    """Whether a 1x1 stride-1 convolution runs as rows over its flattened positions: position counts that are
    multiples of 4, or whose tiles of two vectors waste under a tenth of their lanes (13x13, 27x27, 55x55: 1.6-2.2x
    faster than position x channel tiles on SqueezeNet's shallow 1x1 convolutions; 7x7 maps, 49 positions in
    tiles of 16, keep the position x channel tiles). Measured in BENCHMARKS.md."""
    width = 2 * ctx.lanes
    return positions > ctx.lanes and (positions % 4 == 0 or positions >= FLAT_MIN_USE * -(-positions // width) * width)


def _ragged_rows(ctx: LowerCtx, outs: list[int], depth: int, ocg: int) -> bool:
    """Whether output rows that are not whole row tiles of two vectors (7, 10, 14, 20, 40, 56 wide) are better
    tiled as flattened positions x output channels: every lane useful (no short last tile of one vector and
    6 accumulators), at the cost of a scalar (strided) epilogue, which a deep reduction amortises (measured
    in BENCHMARKS.md)."""
    return outs[-1] % (2 * ctx.lanes) != 0 and depth > ROWS_MAX_DEPTH and ocg >= 2 * ctx.lanes


def window_of_strides(window: Window) -> Window:
    """The same window with unit strides."""
    return Window(window.kernel, (1,) * window.rank, window.dilations, window.pads, window.auto_pad, window.ceil_mode)


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
        def finish(i: list[Expr], v: Expr) -> Stmt:
            return emit(0, i, add(v, bias.at([i[1]])) if bias is not None else v)

        weights, strides = np.asarray(weights, np.float32), list(window.strides)
        rows = None
        if ctx.lanes > 1:  # (scalar targets, cuda, keep the phase kernels)
            if group == 1 and len(kernel) == 2 and kernel == strides and not any(begins) and \
                    list(out_shape[2:]) == [d * s for d, s in zip(spatial, kernel)] and \
                    _flat_rows(ctx, size_prod(spatial)):
                return upsampling_product(ctx, node, x, weights, out_shape, finish)
            rows = phase_rows(ctx, node, x, weights, strides, begins, out_shape, group, finish)
        return rows or conv_transpose_phases(ctx, x, weights, strides, begins, out_shape, group, finish)

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


def conv_integer_nest(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    """ConvInteger as a plain dot-product nest (the int8 kernel of quant_conv.py covers constant weights)."""
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
