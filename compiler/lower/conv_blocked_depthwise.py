"""Depthwise convolutions on the blocked channel layout (compiler/lower/conv_blocked.py): one fused multiply-add
of a channel block per tap, over zero-padded stack copies of each block's plane or band of rows; the copies may
gather a plain input's channels or compute an input expansion (a 1x1 convolution) of the rows they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from aic.ir.graph import Node
from aic.ir.loop import Allocate, Buffer, Call, Expr, For, If, Load, Stmt, Store
from aic.ir.loop_tools import binop, select, seq
from aic.ir.ops.window import Window
from aic.ir.schedule import Unroll, Vectorize

from .core import ComputeTensor, LowerCtx, Tensor, clamp, const, idx, linear
from .depthwise import LOCAL_PLANE
from .mathx import add, maximum, minimum, mul
from .micro_kernel import micro_kernel, tiles
from .reduce import stack
from .table import activate
from .window import clamped, inside_input, tap_coords

SPAN = 6  # output positions along a row computed together (measured: 4 is slower)
WIDE_SPAN = 8  # the same with 32 vector registers (AVX-512: 5-10% faster than 6, measured: BENCHMARKS.md)
BAND_ROWS = 10  # planes larger than LOCAL_PLANE: padded input rows copied per band of output rows
EXPAND_ROWS = 16  # an input expansion's register tile: positions along a row by one channel block (32 vector
# registers: the `fuse-expand` pass runs for AVX-512 targets; 3.5% faster than 8 positions at 112x112)
EXPAND_BAND_ROWS = 18  # an expanded band: 17 input rows for 8 output rows at stride 2 (1 row expanded twice)
WIDE_LANES = 32  # a sigmoid activation of an expansion's tile: lanes per vector (LLVM splits it into registers)

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
