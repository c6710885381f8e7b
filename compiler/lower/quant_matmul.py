"""Lowering of MatMulInteger with a constant int8 right-hand side as an int8 micro-kernel.

The weights are packed at compile time as the dot-product instruction wants them: `group`
consecutive K values of one output column in one lane, column panels of `cols` lanes,
[N/cols, ceil(K/group), cols] (zero padded). Each step of the K loop reads `group` activation
bytes of a row as one lane and feeds every column vector of the tile through the intrinsic,
accumulating in int32 registers:
- AVX-512 targets (16 int32 lanes): group 4 in int32 lanes, `dot4` (one `vpdpbusd` with VNNI);
- narrower vectors (AVX2), several rows per tile: group 2 widened to int16 halves of int32 lanes
  (weights at compile time, activations by a pass before the tiles), `dotw` (one `vpmaddwd`, exact:
  |uint8 * int8| < 2^15); 1.3x faster than widening in the loop, for twice the weight bytes;
- AVX2 with a single row (bandwidth-bound): group 2 as bytes in int16 lanes, `dot2` (the bytes
  widened in the loop, 16 bytes of weights feed 8 columns);
- AVX2, several rows, weights whose byte pairs can be made saturation-free with few fixes: group 4 as
  bytes, `dot4sat` (`vpmaddubsw` + `vpmaddwd` by ones: 3 uops per 32 products against dotw's 4), on
  W_safe = W - W_fix (`saturation_free`), the activations packed 4 bytes a lane by a pass before the
  tiles; the sparse remainder A x W_fix is summed exactly by a pass into an int32 buffer that the
  tiles' store adds (`MAX_FIXES`: else dotw).

The intrinsics multiply uint8 by int8, so operands are shifted into those ranges and the zero
points corrected with the weights' column sums (exact in int32):
- int8 activations a become a + 128 (uint8), their zero point za + 128;
- uint8 weights b become b - 128 (int8), their zero point zb - 128;
- then sum_k (a - za)(b - zb) = acc - za * colsum(b) - zb * (rowsum(a) - K * za), with the
  weights' column sums computed at compile time and, only when some zb is not 0 after the shift,
  the rows' sums by a vectorized pass over the activations before the tiles.
Non-constant weights and scalar targets (ctx.lanes == 1) take the plain nest of contraction.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Allocate, Bin, Buffer, Call, Cast, Const, Expr, Load, Stmt, Store
from aic.ir.loop_tools import binop, seq
from aic.ir.schedule import MicroKernel

from .contraction import matmul_integer_nest, register_tile
from .core import LowerCtx, Tensor, broadcast_index, idx, linear
from .mathx import add
from .micro_kernel import hints
from .reduce import accumulate, stack
from .sizes import shape_of, size_prod
from .streamed import prefetch_ahead
from .table import Emit, anchor

I32 = DType.int32
LANE = {4: DType.int32, 2: DType.int16}  # the lane type holding `group` bytes
INTRINSIC = {4: "dot4", 2: "dot2"}
PAIR_MAX = 128  # |w0| + |w1| of a same-signed pair: 255 * 128 = 32640 fits a saturating int16 either sign
PREFETCH_PANELS = 1  # each K step prefetches the same step of the panel this far ahead (2: 2% slower)
MAX_FIXES = 1 / 1024  # dot4sat when at most this fraction of the weights needs a fix (one per pair)


def saturation_free(w: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """int8 [K, N] -> (W_safe, the fixes (k, n, delta) with W = W_safe + delta at (k, n)): no pair
    (w[2t, n], w[2t+1, n]) of W_safe has a same-signed sum beyond PAIR_MAX, so `vpmaddubsw`'s int16 pair
    sums of any uint8 activations are exact. The larger weight of an offending pair is clipped."""
    k, n = w.shape
    safe = np.zeros((k + k % 2, n), np.int32)
    safe[:k] = w
    first, second = safe[0::2], safe[1::2]  # views: clipping writes through
    for sign in (1, -1):
        excess = np.maximum(np.maximum(sign * first, 0) + np.maximum(sign * second, 0) - PAIR_MAX, 0)
        larger = np.abs(first) >= np.abs(second)
        first -= sign * np.where(larger, excess, 0)
        second -= sign * np.where(larger, 0, excess)
    safe = safe[:k]
    at_k, at_n = np.nonzero(safe != w)
    return safe.astype(np.int8), (at_k, at_n, (w[at_k, at_n].astype(np.int32) - safe[at_k, at_n]))


def packed_weights(b: np.ndarray, cols: int, group: int = 4) -> np.ndarray:
    """int8 [K, N] -> [ceil(N/cols), ceil(K/group), cols] lanes of `group` bytes: lane c of panel p,
    step g holds b[group*g : group*(g+1), p*cols + c] (little endian), zero padded."""
    k, n = b.shape
    groups, panels = -(-k // group), -(-n // cols)
    padded = np.zeros((groups * group, panels * cols), np.int8)
    padded[:k, :n] = b
    lanes = padded.reshape(groups, group, panels, cols).transpose(2, 0, 3, 1)  # [panel, step, col, byte]
    return np.ascontiguousarray(lanes).view(LANE[group].numpy).reshape(panels, groups, cols)


def packed_words(b: np.ndarray, cols: int) -> np.ndarray:
    """int8 [K, N] -> int32 [ceil(N/cols), ceil(K/2), cols]: lane c of panel p, step g holds
    b[2g, p*cols + c] and b[2g+1, p*cols + c] widened to int16 (low half first), zero padded."""
    k, n = b.shape
    steps, panels = -(-k // 2), -(-n // cols)
    padded = np.zeros((steps * 2, panels * cols), np.int16)
    padded[:k, :n] = b
    lanes = padded.reshape(steps, 2, panels, cols).transpose(2, 0, 3, 1)  # [panel, step, col, half]
    return np.ascontiguousarray(lanes).view(np.int32).reshape(panels, steps, cols)


def _signed_weights(node: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """The constant weights as int8 with their zero points per column (after the uint8 shift),
    or None when the weights are not a constant 2-D int8/uint8 matrix."""
    b = node.inputs[1]
    if b.const is None or b.type.rank != 2 or b.type.dtype not in (DType.int8, DType.uint8):
        return None
    w = np.asarray(b.const).astype(np.int32)
    zb_value = node.inputs[3] if len(node.inputs) > 3 else None
    if zb_value is not None and zb_value.const is None:
        return None
    zb = np.zeros(w.shape[1], np.int32) + (0 if zb_value is None else np.asarray(zb_value.const).astype(np.int32))
    if b.type.dtype == DType.uint8:
        w, zb = w - 128, zb - 128
    return w.astype(np.int8), zb


def default_tile(m: int, lanes: int) -> MicroKernel:
    """4 rows by 2 vectors (AVX2's 16 registers: 8 accumulators, 2 weight vectors, the activation pair,
    room for the loop's unrolling) or by 4 vectors (AVX-512's 32 registers); a single row by 4 vectors."""
    if m == 1:
        return MicroKernel(1, 4 * lanes)
    return MicroKernel(4, (4 if lanes >= 16 else 2) * lanes)


@anchor("MatMulInteger")
def _matmul_integer(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    weights = _signed_weights(node)
    za = ins[2] if len(ins) > 2 else None
    if ctx.lanes == 1 or weights is None or x is None or x.dtype not in (DType.int8, DType.uint8):
        return matmul_integer_nest(ctx, node, ins, emit)
    w, zb = weights
    m, k, n = (1 if x.rank == 1 else x.shape[-2]), x.shape[-1], w.shape[1]
    batch = shape_of(node.outputs[0].type)[: max(x.rank - 2, 0)]
    tile = register_tile(ctx, default_tile(m, ctx.lanes))
    if tile.cols % ctx.lanes:
        tile = MicroKernel(tile.rows, -(-tile.cols // ctx.lanes) * ctx.lanes)
    group = 4 if ctx.lanes >= 16 else 2
    words = group == 2 and tile.rows > 1  # several rows share each weight vector: widen once, in advance
    fixes = None
    if words and ctx.lanes == 8:  # AVX2: bytes with vpmaddubsw where few pairs need a fix
        w_safe, fixes = saturation_free(w)
        if len(fixes[2]) <= MAX_FIXES * w.size:
            w, words, group = w_safe, False, 4
        else:
            fixes = None
    quads = fixes is not None  # the activations packed 4 bytes a lane in advance, as the weights
    lane_t = LANE[group]
    if words:
        packed = ctx.weight(packed_words(w, tile.cols), "wq")
    else:
        packed = ctx.weight(packed_weights(w, tile.cols, group), "wq")
    steps = -(-k // group)
    exact = w.astype(np.int32)
    if fixes is not None:
        np.add.at(exact, fixes[:2], fixes[2])  # the column sums are those of W = W_safe + W_fix
    colsum = ctx.weight(np.pad(exact.sum(axis=0, dtype=np.int32), (0, tile.cols)), "wsum")
    shift = 128 if x.dtype == DType.int8 else 0  # int8 activations are read as uint8 a + 128

    def a_zero(i: Expr) -> Expr:
        """The activations' zero point for row i, in the uint8 range."""
        if za is None:
            return Const(shift, I32)
        at = [i] if za.rank == 1 and za.shape[0] > 1 else [idx(0)] * za.rank
        return Bin("add", Cast(I32, za.at(at)), Const(shift, I32))

    def a_at(bi: list[Expr], i: Expr, kk: Expr) -> Expr:
        return x.at([kk] if x.rank == 1 else [*broadcast_index(bi, x.shape[:-2]), i, kk])

    row_sums, prologue = None, None
    if np.any(zb):  # the weights' zero points need each row's sum of (shifted) activations
        row_sums = ctx.scratch(I32, size_prod(batch) * m)

        def row_sum(index: list[Expr]) -> Stmt:
            bi, i = index[:-1], index[-1]
            return accumulate(ctx, [*index, None], [*batch, m, k], lambda f: Cast(I32, a_at(f[:-2], f[-2], f[-1])),
                              Const(0, I32), add, lambda s: Store(row_sums, _row(bi, batch, m, i),
                                                                  Bin("add", s, Const(shift * k, I32))))

        prologue = ctx.loops((*batch, m), row_sum, "rs")
        zero_w = ctx.weight(np.pad(zb, (0, tile.cols)), "wzero")

    def a_word(bi: list[Expr], i: Expr, j: Expr) -> Expr:
        """Activations 2j and 2j+1 of row i in the uint8 range, as the two int16 halves of an int32."""
        halves = []
        for q in range(2):
            kk = binop("min", binop("add", binop("mul", j, idx(2)), idx(q)), idx(k - 1))  # past K: weight 0
            value = Cast(I32, a_at(bi, i, kk))
            halves.append(Bin("add", value, Const(shift, I32)) if shift else value)
        return Bin("or", halves[0], Bin("shl", halves[1], Const(16, I32)))

    def a_quad(bi: list[Expr], i: Expr, j: Expr) -> Expr:
        """Activations 4j .. 4j+3 of row i in the uint8 range as the bytes of an int32 (past K: the last)."""
        word: Expr = Const(0, I32)
        for q in range(4):
            kk = binop("min", binop("add", binop("mul", j, idx(4)), idx(q)), idx(k - 1))
            value = Bin("and", Bin("add", Cast(I32, a_at(bi, i, kk)), Const(shift, I32)), Const(255, I32))
            word = Bin("or", word, Bin("shl", value, Const(8 * q, I32)) if q else value)
        return word

    if words or quads:  # the activations in the weights' lane layout once, read by every column panel
        widened = ctx.scratch(I32, size_prod(batch) * m * steps)
        lane_of = a_quad if quads else a_word
        prologue = seq(prologue, ctx.loops((*batch, m, steps), lambda ix: Store(
            widened, binop("add", binop("mul", _row(ix[:-2], batch, m, ix[-2]), idx(steps)), ix[-1]),
            lane_of(ix[:-2], ix[-2], ix[-1])), "aw"))
    corrections = None
    if fixes is not None and len(fixes[2]):
        corrections = ctx.scratch(I32, size_prod(batch) * m * n)
        prologue = seq(prologue, _fix_sums(ctx, corrections, fixes, (*batch, m), n,
                                           lambda ix, kk: Bin("add", Cast(I32, a_at(ix[:-1], ix[-1], kk)),
                                                              Const(shift, I32))))

    def per_batch(bi: list[Expr]) -> Stmt:
        def a_byte(i: Expr, kk: Expr) -> Expr:
            value = a_at(bi, i, kk)
            return Cast(lane_t, value if value.dtype == DType.uint8 else Cast(DType.uint8, value))

        def a_lane(i: Expr, g: Expr) -> Expr:
            """Bytes of step g of row i as one lane (bytes past K repeat the last: their weights are 0)."""
            if words or quads:
                return Load(widened, binop("add", binop("mul", _row(bi, batch, m, i), idx(steps)), g))
            word: Expr | None = None
            for q in range(group):
                kk = binop("add", binop("mul", g, idx(group)), idx(q))
                if k % group:
                    kk = binop("min", kk, idx(k - 1))
                byte = a_byte(i, kk)
                byte = byte if q == 0 else Bin("shl", byte, Const(8 * q, lane_t))
                word = byte if word is None else Bin("or", word, byte)
            assert word is not None
            flip = -0x7F7F7F80 if group == 4 else -0x7F80  # 0x80 in every byte: int8 -> uint8 + 128
            return Bin("xor", word, Const(flip, lane_t)) if shift else word

        def out(i: Expr, j: Expr, acc: Expr) -> Stmt:
            """sum (a - za)(b - zb) = acc - za * colsum(b) - zb * (rowsum(a) - K * za)."""
            zero = a_zero(i)
            if corrections is not None:  # A x W_fix
                acc = Bin("add", acc, Load(corrections, binop("add", binop("mul", _row(bi, batch, m, i), idx(n)), j)))
            if not (isinstance(zero, Const) and zero.value == 0):
                acc = Bin("sub", acc, Bin("mul", zero, colsum.at([j])))
            if row_sums is not None:
                rows = Bin("sub", Load(row_sums, _row(bi, batch, m, i)), Bin("mul", zero, Const(k, I32)))
                acc = Bin("sub", acc, Bin("mul", zero_w.at([j]), rows))
            return emit(0, [*bi, *([i] if x.rank > 1 else []), j], acc)

        fn = "dotw" if words else "dot4sat" if quads else INTRINSIC[group]
        return int_tiles(ctx, m, n, [steps], tile, fn,
                         lambda i, g: a_lane(i, g[0]), lambda p, g, c: packed.at([p, g[0], c]), out,
                         panel_size=steps * tile.cols)

    return seq(prologue, ctx.loops(batch, per_batch, "b"))


def _fix_sums(ctx: LowerCtx, sums: Buffer, fixes: tuple[np.ndarray, np.ndarray, np.ndarray],
              rows: tuple[int, ...], n: int, a_at: Callable[[list[Expr], Expr], Expr]) -> Stmt:
    """sums[row, n] = sum over the fixes (k, n, delta) of a_at(row, k) * delta: the exact product of the
    activations by the sparse W_fix, for the tiles' store (fixes of one column accumulate in turn:
    the fix loop is serial)."""
    at_k, at_n, delta = (ctx.weight(v.astype(np.int32), h) for v, h in zip(fixes, ("fk", "fn", "fd")))
    count = len(fixes[2])
    zero = ctx.loops((size_prod(rows) * n,), lambda ix: Store(sums, ix[0], Const(0, I32)), "fz")

    def fix(ix: list[Expr]) -> Stmt:
        row, f = ix[:-1], ix[-1]
        at = binop("add", binop("mul", linear(row, rows), idx(n)), Cast(INDEX, at_n.at([f])))
        product = Bin("mul", a_at(row, Cast(INDEX, at_k.at([f]))), delta.at([f]))
        return Store(sums, at, Bin("add", Load(sums, at), product))

    return seq(zero, ctx.loops((*rows, count), fix, "fx"))


def _row(bi: list[Expr], batch: tuple[int, ...], m: int, i: Expr) -> Expr:
    """The flat index of row i of batch bi."""
    return binop("add", binop("mul", linear(bi, batch), idx(m)), i) if batch else i


Stage = tuple[list[int], str, Callable[[Expr, list[Expr]], Expr], Callable[[list[Expr], Expr], Expr]]


def int_tile(ctx: LowerCtx, nrows: int, width: int, cols: int, ks: list[int], fn: str,
             a_lane: Callable[[Expr, list[Expr]], Expr], b_lane: Callable[[list[Expr], Expr], Expr],
             out: Callable[[Expr, Expr, Expr], Stmt], swap: bool = False,
             prefetch: Callable[[list[Expr]], Stmt | None] | None = None, then: Stage | None = None) -> Stmt:
    """One register tile: acc[r, c] = fn(acc[r, c], a_lane(r, step), b_lane(step, c)) over the steps of the
    loops `ks` (r < nrows broadcast lanes, c < width vector lanes), then out(r, c, acc) for c < cols.
    `swap` passes b before a to `fn` (its first operand is the unsigned one); `prefetch(step)` runs at each step;
    `then` = (ks, fn, a_lane, b_lane): a second accumulation into the same registers before the store."""
    acc = stack(ctx, I32, nrows * width)

    def at(r: Expr, c: Expr) -> Expr:
        return binop("add", binop("mul", r, idx(width)), c)

    zero = ctx.loop(nrows, lambda r: ctx.loop(width, lambda c: Store(acc, at(r, c), Const(0, I32)), "zc"), "zr")
    row_loops, col_loops = [], []

    def accumulate_over(stage: Stage, first: bool) -> Stmt:
        steps, dot, a_of, b_of = stage

        def row(g: list[Expr], r: Expr) -> Stmt:
            av = ctx.let(a_of(r, g), "a")

            def col(c: Expr) -> Stmt:
                operands = (b_of(g, c), av) if swap else (av, b_of(g, c))
                return Store(acc, at(r, c), Call(dot, (Load(acc, at(r, c)), *operands)))

            loop = ctx.loop(width, col, "c")
            col_loops.append(loop)
            return loop

        def step(g: list[Expr]) -> Stmt:
            loop = ctx.loop(nrows, lambda r: row(g, r), "r")
            row_loops.append(loop)
            return seq(prefetch(g), loop) if prefetch is not None and first else loop

        return ctx.loops(steps, step, "g")

    main = accumulate_over((ks, fn, a_lane, b_lane), True)
    second = accumulate_over(then, False) if then is not None else None
    store = ctx.loop(nrows, lambda r: ctx.loop(cols, lambda c: out(r, c, Load(acc, at(r, c))), "sc"), "sr")
    hints(ctx, row_loops, col_loops, width)
    return Allocate(acc, seq(zero, main, second, store))


PanelStage = tuple[list[int], str, Callable[[Expr, Expr, list[Expr]], Expr], Callable[[Expr, list[Expr], Expr], Expr]]


def int_tiles(ctx: LowerCtx, m: int, n: int, ks: list[int], tile: MicroKernel, fn: str,
              a_lane: Callable[[Expr, list[Expr]], Expr], b_lane: Callable[[Expr, list[Expr], Expr], Expr],
              out: Callable[[Expr, Expr, Expr], Stmt], panel_size: int = 0,
              then: PanelStage | None = None) -> Stmt:
    """Every `tile.rows` x `tile.cols` int32 tile of an m x n product accumulated with the intrinsic `fn`
    over the steps of the loops `ks`: acc[i, j] = fn(acc[i, j], a_lane(i, step), b_lane(panel, step, c)) for
    column j = panel * tile.cols + c, then out(i, j, acc). Column panels outermost (a panel of packed weights
    stays in cache while the rows stream). With `panel_size` (elements of packed weights per panel) each step
    prefetches the same step of the panel PREFETCH_PANELS ahead: it comes from memory while this one computes.
    `then` = (ks, fn, a_lane(i, panel, step), b_lane(panel, step, c)): a second accumulation before the store."""
    rows, width = tile.rows, tile.cols
    full_m = m // rows * rows

    def part(m0: Expr, nrows: int, p: Expr, cols: int) -> Stmt:
        n0 = binop("mul", p, idx(width))
        ahead = (lambda g: prefetch_ahead(b_lane(p, g, idx(0)), PREFETCH_PANELS * panel_size)) if (
            PREFETCH_PANELS and panel_size) else None
        second: Stage | None = None
        if then is not None:
            steps, dot, a_of, b_of = then
            second = (steps, dot, lambda r, g: a_of(binop("add", m0, r), p, g), lambda g, c: b_of(p, g, c))
        return int_tile(ctx, nrows, width, cols, ks, fn, lambda r, g: a_lane(binop("add", m0, r), g),
                        lambda g, c: b_lane(p, g, c),
                        lambda r, c, acc: out(binop("add", m0, r), binop("add", n0, c), acc), prefetch=ahead,
                        then=second)

    def panel(p: Expr, cols: int) -> Stmt:
        body = ctx.loop(m // rows, lambda mo: part(binop("mul", mo, idx(rows)), rows, p, cols), "mo")
        return seq(body, part(idx(full_m), m - full_m, p, cols) if m > full_m else None)

    whole = ctx.loop(n // width, lambda p: panel(p, width), "no")
    return seq(whole, panel(idx(n // width), n % width) if n % width else None)
