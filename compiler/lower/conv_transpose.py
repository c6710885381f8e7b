"""ConvTranspose as stride-1 convolutions, one per output phase (sub-pixel decomposition).

Along an axis with stride s, output position o = s*o' + p (phase p < s) receives input
q = o' + off(t) through exactly the kernel taps t = t0(p) + j*s (`t0 = (p + pad) mod s`),
with off linear in j. So each phase of the output is a stride-1 convolution of the
(zero-padded) input with a sub-kernel of ceil(k/s) taps per axis and no wasted products.
Each phase runs on the matrix-product micro-kernel: a tile is `ROWS` phase positions by
`2 * lanes` output channels, the reduction over input channels x sub-kernel taps, weights
packed at compile time per phase to [group, channel tiles, in channels, *taps, tile width].
When kernel == stride and there is no padding (the usual upsampling layer) every phase
has one tap: a product [Cin] -> [Cout] per input pixel, stored depth-to-space. For a 2-D one of
one group (UNet's 2x2 stride 2) `upsampling_product` runs that as a single 1x1 convolution to
Cout x kh x kw channels, vectors over positions (no scattered stores), and a depth-to-space pass;
`phase_rows` runs the phases of other 2-D ones on the dense row kernel the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from aic.ir.graph import Node
from aic.ir.loop import Buffer, Expr, Load, Stmt
from aic.ir.loop_tools import binop, seq
from aic.ir.loop_vectorize import MAX_INTERLEAVE
from aic.ir.ops.window import Window
from aic.ir.schedule import CachePack, MicroKernel

from .contraction import ROWS, micro_kernel
from .conv_dense import conv_rows, pointwise_flat
from .core import BufferTensor, LowerCtx, Tensor, const, delinear, idx, linear, store
from .sizes import size_prod
from .window import padded_input


@dataclass(frozen=True)
class AxisPhase:
    """One phase of one spatial axis: outputs o = stride*o' + phase for o' < count read input
    o' + first_offset - j for sub-kernel tap j (kernel tap first_tap + j*stride), j < taps."""

    phase: int
    count: int
    first_tap: int
    taps: int
    first_offset: int


def axis_phases(size: int, out: int, kernel: int, stride: int, begin: int) -> list[AxisPhase]:
    phases = []
    for p in range(min(stride, out)):
        t0 = (p + begin) % stride
        taps = len(range(t0, kernel, stride))
        phases.append(AxisPhase(p, len(range(p, out, stride)), t0, taps, (p + begin - t0) // stride))
    return phases


def conv_transpose_phases(ctx: LowerCtx, x: Tensor, weights: np.ndarray, strides: list[int], begins: list[int],
                          out_shape: tuple[int, ...], group: int, finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """ConvTranspose with unit dilations and constant float32 `weights` [Cin, Cout/group, *kernel];
    `begins` are the padding amounts before each spatial axis; `finish(index, value)` stores."""
    spatial, outs, kernel = list(x.shape[2:]), list(out_shape[2:]), list(weights.shape[2:])
    per_axis = [axis_phases(d, o, k, s, b) for d, o, k, s, b in zip(spatial, outs, kernel, strides, begins)]
    lows, extents = _padding(spatial, per_axis)
    xp, prep = padded_input(ctx, x, lows, extents)
    assert isinstance(xp, BufferTensor)
    nests = [_phase(ctx, xp, weights, list(combo), strides, lows, out_shape, group, finish)
             for combo in itertools.product(*per_axis)]
    return seq(prep, *nests)


def _padding(spatial: list[int], per_axis: list[list[AxisPhase]]) -> tuple[list[int], list[int]]:
    """(zeros before each axis, padded size): the padded input covers every coordinate a phase reads, o' + offset
    - j for o' < count and tap j < taps."""
    lows = [max(0, max(ph.taps - 1 - ph.first_offset for ph in a if ph.taps)) if any(ph.taps for ph in a) else 0
            for a in per_axis]
    highs = [max([d] + [ph.count - 1 + ph.first_offset + 1 for ph in a if ph.taps]) for d, a in zip(spatial, per_axis)]
    return lows, [lo + hi for lo, hi in zip(lows, highs)]


def phase_rows(ctx: LowerCtx, node: Node, x: Tensor, weights: np.ndarray, strides: list[int], begins: list[int],
               out_shape: tuple[int, ...], group: int, finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt | None:
    """A 2-D ConvTranspose whose phases all have taps and, along the last axis, equal counts of at least half a
    vector (decoders' 3x3 and 4x4 stride 2): each phase a stride-1 convolution on the dense row kernel
    (conv_dense.conv_rows: vectors along its output rows, reading the padded input through its flipped
    sub-kernel) into a scratch, then each output row the last axis's phases of one phase row interleaved
    (`_interleave_rows`). None when the phases do not fit."""
    spatial, outs, kernel = list(x.shape[2:]), list(out_shape[2:]), list(weights.shape[2:])
    if len(spatial) != 2 or strides[-1] > MAX_INTERLEAVE:
        return None
    per_axis = [axis_phases(d, o, k, s, b) for d, o, k, s, b in zip(spatial, outs, kernel, strides, begins)]
    columns = {ph.count for ph in per_axis[1]}
    if any(ph.taps == 0 for a in per_axis for ph in a) or len(columns) != 1 or 2 * min(columns) <= ctx.lanes or \
            len(per_axis[1]) != strides[1]:
        return None
    width = columns.pop()
    lows, extents = _padding(spatial, per_axis)
    xp, prep = padded_input(ctx, x, lows, extents, slack=0 if width % ctx.lanes == 0 else 2 * ctx.lanes)
    assert isinstance(xp, BufferTensor)
    n_batch, out_channels = out_shape[:2]
    icg, ocg = x.shape[1] // group, out_channels // group
    shapes = {(py.phase, px.phase): (n_batch, out_channels, py.count, width)
              for py, px in itertools.product(*per_axis)}
    planes = {key: ctx.scratch(x.dtype, size_prod(shape)) for key, shape in shapes.items()}
    products = []
    for py, px in itertools.product(*per_axis):
        sub = weights.reshape(group, icg, ocg, *kernel)[:, :, :, py.first_tap::strides[0], px.first_tap::strides[1]]
        sub = np.ascontiguousarray(np.flip(np.moveaxis(sub, 2, 1), (-2, -1)))  # [g, ocg, icg, th, tw], flipped
        taps = sub.shape[-2:]
        shift = [lo + ph.first_offset - (t - 1) for lo, ph, t in zip(lows, (py, px), taps)]
        shape, plane = shapes[py.phase, px.phase], planes[py.phase, px.phase]

        def read(n: Expr, channel: Expr, at: list[Expr], ts: list[Expr], shift: list[int] = shift) -> Expr:
            return xp.at([n, channel, *(binop("add", binop("add", o, t), idx(d)) for o, t, d in zip(at, ts, shift))])

        def into(index: list[Expr], v: Expr, shape: tuple[int, ...] = shape, plane: Buffer = plane) -> Stmt:
            return store(plane, linear(index, shape), v)

        window = Window(tuple(taps), (1, 1), (1, 1), (0, 0, 0, 0))
        products.append(conv_rows(ctx, node, xp, sub.reshape(-1, icg, *taps), window, [py.count, width], group,
                                  into, read))

    def read(py: int, px: int, i: list[Expr]) -> Expr:
        return Load(planes[py, px], linear(i, shapes[py, px]))

    rows = [(py.phase, py.count) for py in per_axis[0]]
    return seq(prep, *products, _interleave_rows(ctx, (n_batch, out_channels, width), strides, rows, read, finish))


def upsampling_product(ctx: LowerCtx, node: Node, x: Tensor, weights: np.ndarray, out_shape: tuple[int, ...],
                       finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """A 2-D ConvTranspose of one group with kernel == stride and no padding (each input pixel's product
    [Cin] -> [Cout, kh, kw] fills a kh x kw block of the output): the 1x1 convolution of the input to
    Cout * kh * kw channels over the flattened positions (conv_dense.pointwise_flat: vector loads and stores),
    into a scratch [N, Cout, kh, kw, H, W]; then output row h * kh + ky, for each ky, is the kw planes
    (ky, 0..kw-1) of row h taken lane by lane (`_interleave_rows`). The scratch's extra pass over the output is
    repaid many times over: the phase kernels' stores of one channel vector at a time scatter over Cout planes."""
    n_batch, channels, height, width = x.shape
    out_channels, (kh, kw) = out_shape[1], weights.shape[2:]
    rows = out_channels * kh * kw
    wide = np.ascontiguousarray(np.moveaxis(weights, 0, -1)).reshape(rows, channels, 1, 1)  # [Cout*kh*kw, Cin]
    shape = (n_batch, rows, height, width)
    planes = ctx.scratch(x.dtype, size_prod(shape))
    xp, prep = padded_input(ctx, x, [0, 0], [height, width])
    assert isinstance(xp, BufferTensor)
    product = pointwise_flat(ctx, node, xp, wide, [height, width], 1,
                             lambda index, v: store(planes, linear(index, shape), v))

    def read(ky: int, kx: int, i: list[Expr]) -> Expr:
        n, co, h, w = i
        return Load(planes, linear([n, binop("add", binop("mul", co, idx(kh * kw)), idx(ky * kw + kx)), h, w], shape))

    rows = [(ky, height) for ky in range(kh)]
    return seq(prep, product, _interleave_rows(ctx, (n_batch, out_channels, width), [kh, kw], rows, read, finish))


def _interleave_rows(ctx: LowerCtx, sizes: tuple[int, int, int], strides: list[int], rows: list[tuple[int, int]],
                     read: Callable[[int, int, list[Expr]], Expr], finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """The depth-to-space pass of the phase scratches: for each phase row (py, count), output rows h * sy + py
    (h < count) of every image and channel (`sizes`: batch, channels, columns per phase), each the sx column phases
    read(py, px, [n, c, h, w]) taken lane by lane: sx stores of stride sx, which the vectorizer joins into one
    interleaved store (ir/loop_vectorize.py)."""
    (sy, sx), (n_batch, channels, width) = strides, sizes

    def phase_row(py: int, count: int) -> Stmt:
        def row(i: list[Expr]) -> Stmt:
            n, c, h, w = i
            at = [n, c, binop("add", binop("mul", h, idx(sy)), idx(py))]
            return seq(*(finish([*at, binop("add", binop("mul", w, idx(sx)), idx(px))], read(py, px, i))
                         for px in range(sx)))

        return ctx.loops((n_batch, channels, count, width), row, "ds")

    return seq(*(phase_row(py, count) for py, count in rows))


def _phase(ctx: LowerCtx, xp: BufferTensor, weights: np.ndarray, phases: list[AxisPhase], strides: list[int],
           lows: list[int], out_shape: tuple[int, ...], group: int,
           finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    n_batch, channels = xp.shape[:2]
    icg, ocg = channels // group, out_shape[1] // group
    counts = [ph.count for ph in phases]
    positions = size_prod(counts)
    if positions == 0:
        return seq()

    def out_index(n: Expr, channel: Expr, flat: Expr) -> list[Expr]:
        coords = delinear(flat, counts)
        return [n, channel, *(binop("add", binop("mul", c, idx(s)), idx(ph.phase))
                              for c, s, ph in zip(coords, strides, phases))]

    if any(ph.taps == 0 for ph in phases):  # no tap reaches these outputs: bias only
        return ctx.loops((n_batch, out_shape[1], positions),
                         lambda i: finish(out_index(i[0], i[1], i[2]), const(0, xp.dtype)), "bp")
    taps = [ph.taps for ph in phases]
    width = 2 * ctx.lanes
    tiles = -(-ocg // width)
    sub = weights.reshape(group, icg, ocg, *weights.shape[2:])
    for axis, ph in enumerate(phases):
        sub = np.take(sub, range(ph.first_tap, ph.first_tap + ph.taps * strides[axis], strides[axis]), axis=3 + axis)
    w = np.zeros((group, icg, tiles * width, *taps), np.float32)
    w[:, :, :ocg] = sub
    w = w.reshape(group, icg, tiles, width, *taps)
    packed = ctx.weight(np.ascontiguousarray(np.moveaxis(np.moveaxis(w, 2, 1), 3, -1)), "w")  # [g,tile,ic,*taps,c]
    ctx.hints.extend([MicroKernel(ROWS, width), CachePack(1, width)])
    source = xp.buffer
    padded = list(xp.shape[2:])
    plane = size_prod(padded)
    axis_strides = [size_prod(padded[i + 1:]) for i in range(len(padded))]
    full_p, full_c = positions // ROWS * ROWS, ocg // width * width

    def per_image(n: Expr, g: Expr) -> Stmt:
        chan0 = binop("mul", g, idx(icg))

        def tile(p0: Expr, rows: int, c0: Expr, cols: int) -> Stmt:
            def a(r: Expr, ks: list[Expr]) -> Expr:
                ic, js = ks[0], ks[1:]
                at = binop("mul", binop("add", binop("add", binop("mul", n, idx(channels)), chan0), ic), idx(plane))
                for c, j, ph, lo, st in zip(delinear(binop("add", p0, r), counts), js, phases, lows, axis_strides):
                    coord = binop("sub", binop("add", c, idx(lo + ph.first_offset)), j)
                    at = binop("add", at, binop("mul", coord, idx(st)))
                return Load(source, at)

            def b(ks: list[Expr], _: Expr, c: Expr) -> Expr:
                return packed.at([g, binop("div", c0, idx(width)), *ks, c])

            def out(r: Expr, _: Expr, c: Expr, v: Expr) -> Stmt:
                channel = binop("add", binop("mul", g, idx(ocg)), binop("add", c0, c))
                return finish(out_index(n, channel, binop("add", p0, r)), v)

            return micro_kernel(ctx, [icg, *taps], rows, width, cols, a, b, out)

        def strip(p0: Expr, rows: int) -> Stmt:
            whole = ctx.loop(ocg // width, lambda t: tile(p0, rows, binop("mul", t, idx(width)), width), "ct")
            rest = tile(p0, rows, idx(full_c), ocg - full_c) if ocg > full_c else None
            return seq(whole, rest)

        main = ctx.loop(positions // ROWS, lambda po: strip(binop("mul", po, idx(ROWS)), ROWS), "po")
        tail = strip(idx(full_p), positions - full_p) if positions > full_p else None
        return seq(main, tail)

    return ctx.loop(n_batch, lambda n: ctx.loop(group, lambda g: per_image(n, g), "g"), "n")
