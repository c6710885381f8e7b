"""Winograd F(4,3) for float32 3x3 stride-1 convolutions (Lavin & Gray 2015).

Each 4x4 output tile is Y = A^T [U . V] A, where U = G g G^T is the 6x6 transform of a 3x3 filter and
V = B^T d B that of the 6x6 input patch d under the tile: per tile and channel pair, 36 products instead
of 144. The matrices come from the interpolation points (0, 1, -1, 2, -2, infinity), derived here
(`winograd_matrices`). Per image, the tiles (row-major; with a spare one per row where that is cheaper than
a second input copy, see below) are cut into blocks of `block` tiles; per block:

1. input transform: V[xi, c, t] for every channel, vectorized over tiles. The input is read from a
   copy split by row and column phase mod 4 (depthwise.py `PhaseSplit`, planes of one column per tile)
   and a second one of the next tile's first two columns, so each of the 36 taps of consecutive tiles is a
   contiguous vector;
2. 36 independent products M[xi] = U[xi] . V[xi] (output channels x tiles) on the register-tiled
   micro-kernel of contraction.py, U packed at compile time (transformed in float64) and prefetched 8 KiB
   ahead of the reads (`weights_ahead`: on small maps each of U's 4x-the-filter floats is read once per image);
3. output transform: Y = A^T M A per output channel, vectorized over the block's tiles (M's taps are whole
   vectors, the constant coefficients folded as `output_rows`) into a stack buffer, from which each tile's 16
   outputs pass through the convolution's fused epilogue; rows and columns past the output are not written.

Blocks are independent: the block loop is the parallel one, and a block's V and M stay in cache.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Allocate, Expr, For, If, Load, Seq, Stmt, Store
from aic.ir.loop_tools import binop, seq
from aic.ir.ops.window import Window
from aic.ir.schedule import CachePack, MicroKernel, Parallel, ScheduleError, TileOrder, Vectorize, Winograd

from .contraction import ROWS, micro_kernel
from .core import LowerCtx, Tensor, const, idx, linear, store
from .depthwise import PhaseSplit
from .mathx import add, call, k, mul
from .reduce import stack
from .streamed import weights_ahead

TILE = 4  # output tile side (m of F(m, 3))
KERNEL = 3
SPAN = TILE + KERNEL - 1  # input patch side
POINTS = (0.0, 1.0, -1.0, 2.0, -2.0)  # finite interpolation points; the last one is infinity
COLUMNS = 16  # micro-kernel columns (tiles)
VECTOR_ROWS = (16, 14)  # micro-kernel rows (output channels) when COLUMNS are one vector (AVX-512): accumulators
LANES = 8  # a block is a whole number of vectors of tiles (its last micro-kernel tile may be one vector)
BLOCK_BYTES = 320 << 10  # V and M of one block: within the core's L2 (512 KiB)
MAX_BLOCK = 64  # tiles per block at most (the weights are read once per block)
MIN_CHANNELS = 16  # input and output channels at least (shallower convolutions stay direct)
MIN_PRODUCT = 512  # input x output channels at least (16 x 16 loses, 16 x 32 and 24 x 24 win)
MIN_MAP = 8  # output rows and columns at least
LOCAL_BYTES = 512 << 10  # V and M of a block on the stack up to this size
SPARE_TILE = 8  # tile rows get a spare tile (not a second input copy) below this many output channels per tile


@cache
def winograd_matrices(m: int = TILE, r: int = KERNEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T [m, n], G [n, r], B^T [n, n]), n = m + r - 1, for the points 0, 1, -1, 2, -2, ... and infinity:
    A^T's columns are the points' powers, G's rows the filter's powers over the Lagrange denominators,
    and B^T solves A^T [(G g) . (B^T d)] = correlation(d, g) for every d and g (exact: integers)."""
    n = m + r - 1
    points = np.array(POINTS[: n - 1])
    at, g = np.zeros((m, n)), np.zeros((n, r))
    for i, p in enumerate(points):
        at[:, i] = p ** np.arange(m)
        g[i] = p ** np.arange(r) / np.prod([p - q for q in points if q != p])
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1.0
    system = np.einsum("ok,kb->obk", at, g).reshape(m * r, n)  # row (o, b): output o, filter tap b
    shift = np.zeros((m * r, n))
    for o in range(m):
        for b in range(r):
            shift[o * r + b, o + b] = 1.0
    bt = np.linalg.lstsq(system, shift, rcond=None)[0]
    assert np.allclose(system @ bt, shift, atol=1e-9) and np.allclose(bt, np.rint(bt), atol=1e-9)
    return at, g, np.rint(bt)


def takes_winograd(ctx: LowerCtx, window: Window, kernel: list[int], group: int, channels: tuple[int, int],
                   outs: list[int]) -> bool:
    """Whether the convolution runs as Winograd F(4,3): a `Winograd` directive of its schedule says so,
    else the rule (a schedule giving the direct kernel's tiling keeps it): 3x3, stride 1, no dilation, one
    group, at least MIN_CHANNELS in and out and MIN_PRODUCT their product, output at least MIN_MAP x MIN_MAP
    (measured in BENCHMARKS.md, "Winograd F(4,3)" and "Winograd's products in tiles of 14 rows")."""
    fits = (ctx.lanes >= 8 and kernel == [KERNEL, KERNEL] and group == 1 and len(outs) == 2
            and all(s == 1 for s in window.strides) and all(d == 1 for d in window.dilations))
    given = next((r for r in ctx.directives if isinstance(r, Winograd)), None)
    if given is not None:
        if given.on and not fits:
            raise ScheduleError(f"{given}: only 3x3, stride-1, undilated, single-group 2-D convolutions")
        ctx.hints.append(given)
        return given.on
    if any(isinstance(r, (MicroKernel, CachePack, TileOrder)) for r in ctx.directives):
        return False
    chosen = fits and min(channels) >= MIN_CHANNELS and channels[0] * channels[1] >= MIN_PRODUCT \
        and min(outs) >= MIN_MAP
    if chosen:
        ctx.hints.append(Winograd(True))
    return chosen


def transform_weights(weights: np.ndarray) -> np.ndarray:
    """U = G g G^T of every filter, in float64: [36, C_out, C_in] (index xi = 6 * row + column)."""
    _, g, _ = winograd_matrices()
    u = np.einsum("ak,ockl,bl->aboc", g, weights.astype(np.float64), g)
    return u.reshape(SPAN * SPAN, *weights.shape[:2])


def tile_grid(cin: int, cout: int, oh: int, ow: int) -> tuple[bool, int, int]:
    """(spare, tiles per tile row, tiles per image). Tile rows of `row` tiles: with a spare tile past the last
    column (computed, never stored), every tap of a tile is in one phase-split copy whose planes have a column
    per tile and one more; without, taps 4 and 5 of a patch row are in a second copy (phases 0 and 1 of the
    next tile's columns). The spare tile is taken where it costs less than the second copy, or where the
    blocks compute no more tiles with it than without (28x28: 56 tiles either way)."""
    th, tw = -(-oh // TILE), -(-ow // TILE)

    def computed(row: int) -> int:
        block = block_tiles(max(cin, cout), th * row)
        return -(-th * row // block) * block

    spare = cout < SPARE_TILE * tw or computed(tw + 1) <= computed(tw)
    row = tw + 1 if spare else tw
    return spare, row, th * row


def block_tiles(channels: int, tiles: int) -> int:
    """Tiles per block: a whole number of vectors. All of an image's tiles when they take at
    most MAX_BLOCK (small maps: the transformed weights, 4x the filters, are read once per image), else as
    many as keep the block's V and M (36 floats per tile and channel, in and out) within BLOCK_BYTES, in
    an even number of blocks where that wastes the fewest tiles (two threads share them); of those, a whole
    number of micro-kernel column tiles where one is (a last column tile of one vector, 6 x 8, has 6
    accumulator chains for the FMA latency's 8: 76 against 95 GFLOP/s), then the largest."""
    whole = -(-tiles // LANES) * LANES
    if whole <= MAX_BLOCK:
        return whole
    fit = max(COLUMNS, min(BLOCK_BYTES // (SPAN * SPAN * 4 * channels), MAX_BLOCK) // LANES * LANES)
    return min(range(COLUMNS, fit + 1, LANES), key=lambda b: (-(-tiles // (2 * b)) * 2 * b, b % COLUMNS > 0, -b))


def combine(ctx: LowerCtx, matrix: np.ndarray, values: list[Expr]) -> list[Expr]:
    """matrix @ values with the constant coefficients folded (zeros skipped, fused multiply-adds). Two rows
    whose half sum and half difference are sparser share them: rows 1, 2 and 3, 4 of B^T."""
    rows = [np.asarray(r, np.float64) for r in matrix]
    out: list[Expr | None] = [None] * len(rows)
    done: set[int] = set()
    for p in range(len(rows)):
        for q in range(p + 1, len(rows)):
            if p in done or q in done:
                continue
            half_sum, half_diff = (rows[p] + rows[q]) / 2, (rows[p] - rows[q]) / 2
            if np.count_nonzero(half_sum) + np.count_nonzero(half_diff) + 2 < \
                    np.count_nonzero(rows[p]) + np.count_nonzero(rows[q]):
                s, d = ctx.let(_dot(half_sum, values), "ws"), ctx.let(_dot(half_diff, values), "wd")
                out[p], out[q] = add(s, d), binop("sub", s, d)
                done |= {p, q}
    return [o if o is not None else _dot(rows[i], values) for i, o in enumerate(out)]


def _dot(coefficients: np.ndarray, values: list[Expr]) -> Expr:
    acc: Expr | None = None
    for c, v in zip(coefficients, values):
        if c == 0:
            continue
        if acc is None:
            acc = v if c == 1 else mul(k(c, v), v)
        elif c == 1:
            acc = add(acc, v)
        elif c == -1:
            acc = binop("sub", acc, v)
        else:
            acc = call("fma", k(c, v), v, acc)
    assert acc is not None
    return acc


def output_rows(ctx: LowerCtx, values: list[Expr]) -> list[Expr]:
    """A^T @ values (the n values at the points 0, +-1, +-2, infinity): each pair of opposite points enters
    as its sum (even powers) and difference (odd powers), 10 operations for 4 rows instead of 17."""
    points = POINTS[: len(values) - 1]
    powers, even = np.arange(TILE), np.arange(TILE) % 2 == 0
    columns = [(values[0], (powers == 0).astype(np.float64))]  # (value, its coefficient in each row)
    for i, p in enumerate(points):
        if p > 0 and -p in points:
            a, b = values[i], values[points.index(-p)]
            columns.append((ctx.let(add(a, b), "os"), np.where(even, p ** powers, 0.0)))
            columns.append((ctx.let(binop("sub", a, b), "od"), np.where(even, 0.0, p ** powers)))
    columns.append((values[-1], (powers == TILE - 1).astype(np.float64)))
    matrix = np.stack([c for _, c in columns], axis=1)
    return [_dot(row, [v for v, _ in columns]) for row in matrix]


def product_rows(lanes: int, out_channels: int) -> int:
    """Output channels per micro-kernel tile of the 36 products: ROWS (6) against COLUMNS tiles of two vectors (12
    accumulators, AVX2); against one vector (AVX-512) the one of VECTOR_ROWS that pads the fewest output channels,
    16 on a tie (no short last tile for multiples of 16). 6 accumulators of one vector each left the FMA latency (4
    cycles, 2 pipes: 8 chains) uncovered and the products at a quarter of the peak: 14 rows took 0.62-0.92 of the
    layer times, 16 then 0.96-0.99 of those on multiples of 16 (`python -m bench.winograd_layers`, BENCHMARKS.md)."""
    if lanes < COLUMNS:
        return ROWS
    return min(VECTOR_ROWS, key=lambda r: -(-out_channels // r) * r - out_channels)


def conv_winograd(ctx: LowerCtx, node: Node, x: Tensor, weights: np.ndarray, window: Window, outs: list[int],
                  finish: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """The convolution of `x` by constant 3x3 `weights` [C_out, C_in, 3, 3] (stride 1, one group) into `outs`,
    each output element passed to finish([n, c, h, w], value)."""
    _, _, bt = winograd_matrices()
    n_batch, cin = x.shape[:2]
    cout = weights.shape[0]
    oh, ow = outs
    th, tw = -(-oh // TILE), -(-ow // TILE)
    spare, row, tiles = tile_grid(cin, cout, oh, ow)
    block = block_tiles(max(cin, cout), tiles)
    blocks = -(-tiles // block)
    slots = n_batch * blocks
    begins = [window.pad_amounts(i, d)[0] for i, d in enumerate(x.shape[2:])]
    slack = blocks * block - tiles + row
    near_taps = SPAN if spare else TILE
    near = PhaseSplit(ctx, x, Window((SPAN, near_taps), (TILE, TILE), (1, 1), (*begins, 0, 0)), [SPAN, near_taps],
                      [th, tw], local=False, slack=slack)
    far = None if spare else PhaseSplit(
        ctx, x, Window((SPAN, 2), (TILE, TILE), (1, 1), (begins[0], begins[1] - TILE, 0, 0)), [SPAN, 2], [th, tw],
        local=False, slack=slack)
    # V and M: per block on the stack of the thread running it (reused, so they stay in cache), when the
    # blocks are the parallel loop and small enough; else arena scratch for every block of every image.
    one_image = isinstance(n_batch, int) and n_batch == 1  # (a batch known only at run time may be larger)
    local = not (one_image and blocks == 1) and SPAN * SPAN * (cin + cout) * block * 4 <= LOCAL_BYTES
    spaces = 1 if local else slots
    v_buf = stack(ctx, DType.float32, SPAN * SPAN * cin * block, "wv") if local else ctx.scratch(
        DType.float32, slots * SPAN * SPAN * cin * block)
    m_buf = stack(ctx, DType.float32, SPAN * SPAN * cout * block, "wm") if local else ctx.scratch(
        DType.float32, slots * SPAN * SPAN * cout * block)
    rows = product_rows(ctx.lanes, cout)
    chan_tiles = -(-cout // rows)
    u = np.zeros((SPAN * SPAN, chan_tiles * rows, cin))
    u[:, :cout] = transform_weights(weights)
    packed = ctx.weight(np.moveaxis(u.reshape(SPAN * SPAN, chan_tiles, rows, cin), 2, -1).astype(np.float32), "u")

    def v_at(slot: Expr, xi: int | Expr, c: Expr, t: Expr) -> Expr:
        return linear([slot, c, idx(xi) if isinstance(xi, int) else xi, t], (spaces, cin, SPAN * SPAN, block))

    def m_at(slot: Expr, xi: int | Expr, c: Expr, t: Expr) -> Expr:
        return linear([slot, c, idx(xi) if isinstance(xi, int) else xi, t], (spaces, cout, SPAN * SPAN, block))

    def input_tile(n: Expr, slot: Expr, c: Expr, t0: Expr, t: Expr) -> Stmt:
        tile = binop("add", t0, t)  # taps (i, j) of consecutive tiles are consecutive in the phase split
        def tap(i: int, j: int) -> Expr:
            if far is None or j < TILE:
                return near.read(n, c, [idx(0), tile], [i, j])
            return far.read(n, c, [idx(0), tile], [i, j - TILE])

        d = [[ctx.let(tap(i, j), "d") for j in range(SPAN)] for i in range(SPAN)]
        cols = [combine(ctx, bt, [d[i][j] for i in range(SPAN)]) for j in range(SPAN)]  # cols[j][a] = (B^T d)[a, j]
        cols = [[ctx.let(v, "bd") for v in col] for col in cols]
        stores = []
        for a in range(SPAN):
            for b, v in enumerate(combine(ctx, bt, [cols[j][a] for j in range(SPAN)])):
                stores.append(Store(v_buf, v_at(slot, SPAN * a + b, c, t), v))
        return seq(*stores)

    def products(slot: Expr) -> Stmt:
        def part(xi: Expr, o0: Expr, ot: Expr, nrows: int, c0: Expr, cols: int) -> Stmt:
            fetch, every = weights_ahead(lambda ks: [packed.at([xi, ot, ks[0], idx(0)])], rows)
            return micro_kernel(
                ctx, [cin], nrows, cols, cols,
                lambda r, ks: packed.at([xi, ot, ks[0], r]),
                lambda ks, _, c: Load(v_buf, v_at(slot, xi, ks[0], binop("add", c0, c))),
                lambda r, _, c, v: Store(m_buf, m_at(slot, xi, binop("add", o0, r), binop("add", c0, c)), v),
                prefetch=fetch, prefetch_every=every)

        def channel_tiles(xi: Expr, c0: Expr, cols: int) -> Stmt:
            whole = ctx.loop(cout // rows, lambda o: part(xi, binop("mul", o, idx(rows)), o, rows, c0, cols), "wo")
            full = cout // rows * rows
            return seq(whole, part(xi, idx(full), idx(full // rows), cout - full, c0, cols) if cout > full else None)

        def column_tiles(xi: Expr) -> Stmt:
            whole = ctx.loop(block // COLUMNS, lambda q: channel_tiles(xi, binop("mul", q, idx(COLUMNS)), COLUMNS),
                             "wc")
            full = block // COLUMNS * COLUMNS
            return seq(whole, channel_tiles(xi, idx(full), block - full) if block > full else None)

        return ctx.loop(SPAN * SPAN, column_tiles, "wx")

    vector_loops: list[tuple[str, int]] = []

    y_buf = stack(ctx, DType.float32, TILE * TILE * LANES, "wy")  # Y of a vector of tiles: [i, j, tile]

    def output_vector(slot: Expr, oc: Expr, first: Expr, lane: Expr) -> Stmt:
        """Y = A^T M A of the LANES tiles from `first`, vectorized over `lane` (M's taps are whole vectors),
        into y_buf."""
        t = binop("add", first, lane)
        m = [ctx.let(Load(m_buf, m_at(slot, xi, oc, t)), "m") for xi in range(SPAN * SPAN)]
        ma = [[ctx.let(v, "z") for v in output_rows(ctx, m[SPAN * a: SPAN * (a + 1)])] for a in range(SPAN)]
        return seq(*(Store(y_buf, linear([idx(i), idx(j), lane], (TILE, TILE, LANES)), y)
                     for j in range(TILE) for i, y in enumerate(output_rows(ctx, [ma[a][j] for a in range(SPAN)]))))

    def output_tile(n: Expr, oc: Expr, tile: Expr, lane: Expr) -> Stmt:
        """Tile `tile`'s 16 outputs from lane `lane` of y_buf through the fused epilogue, element by element (a
        vector of a row's 4 would read y_buf with a stride, which the vectorizer does not emit)."""
        ty, tx = binop("div", tile, idx(row)), binop("mod", tile, idx(row))

        def columns(j: Expr, exact: bool) -> Stmt:
            w = binop("add", binop("mul", tx, idx(TILE)), j)
            stores = []
            for i in range(TILE):
                h = binop("add", binop("mul", ty, idx(TILE)), idx(i))
                s = finish([n, oc, h, w], Load(y_buf, linear([idx(i), j, lane], (TILE, TILE, LANES))))
                if oh % TILE and i >= oh % TILE:  # rows past the output in the last tile row
                    s = If(binop("lt", h, idx(oh)), s)
                stores.append(s)
            body = seq(*stores)
            return If(binop("lt", w, idx(ow)), body) if exact else body

        whole = ctx.loop(TILE, lambda j: columns(j, False), "wj")
        if ow % TILE == 0:
            body = If(binop("lt", tx, idx(tw)), whole) if spare else whole
        else:  # the last tile column is partial: columns, each checked
            edge = ctx.loop(TILE, lambda j: columns(j, True), "we")
            body = If(binop("lt", tx, idx(tw - 1)), whole, If(binop("eq", tx, idx(tw - 1)), edge) if spare else edge)
        return If(binop("lt", tile, idx(tiles)), body) if blocks * block > tiles else body

    def output_channel(n: Expr, slot: Expr, oc: Expr, t0: Expr) -> Stmt:
        def one_vector(q: Expr) -> Stmt:
            first = binop("mul", q, idx(LANES))
            transform = ctx.loop(LANES, lambda t: output_vector(slot, oc, first, t), "wu")
            assert isinstance(transform, For)
            vector_loops.append((transform.var.name, LANES))
            tile = binop("add", t0, first)
            return seq(transform, ctx.loop(LANES, lambda t: output_tile(n, oc, binop("add", tile, t), t), "wz"))
        return Allocate(y_buf, ctx.loop(block // LANES, one_vector, "wq"))  # (inside: the oc loop may be parallel)

    def tiled(body: Callable[[Expr, Expr], Stmt], hint: str, lanes: int) -> Callable[[Expr], Stmt]:
        def per_channel(c: Expr) -> Stmt:
            loop = ctx.loop(block, lambda t: body(c, t), hint)
            if lanes and isinstance(loop, For):
                vector_loops.append((loop.var.name, lanes))
            return loop
        return per_channel

    def per_block(s: Expr) -> Stmt:
        n = idx(0) if one_image else binop("div", s, idx(blocks))  # (an epilogue indexes size-1 axes by 0)
        b = binop("mod", s, idx(blocks))
        t0 = binop("mul", b, idx(block))
        space = idx(0) if local else s
        transform = ctx.loop(cin, tiled(lambda c, t: input_tile(n, space, c, t0, t), "wt", ctx.lanes), "wi")
        back = ctx.loop(cout, lambda c: output_channel(n, space, c, t0), "wv")
        body = seq(transform, products(space), back)
        return Allocate(v_buf, Allocate(m_buf, body)) if local else body

    main = ctx.loop(slots, per_block, "wb")
    if isinstance(main, For):
        ctx.hints.append(Parallel(main.var.name))
    ctx.hints.extend(Vectorize(name, lanes) for name, lanes in vector_loops)
    return seq(split_copy(ctx, near), split_copy(ctx, far) if far is not None else None, main)


def split_copy(ctx: LowerCtx, split: PhaseSplit) -> Stmt:
    """`split.prepare()` with each part of a plane's copy (a phase's zero head, copied middle or zero tail)
    one iteration of the parallel loop, chosen by a chain of checks. The parts stay apart in separate basic
    blocks: written as one sequence, LLVM fully unrolls the short row loops of small maps into one block of
    a thousand loads and stores, whose instruction selection and scheduling took 2-4 s per copy (UNet)."""
    def parts(n: Expr, c: Expr) -> list[Stmt]:
        body = split.copy_plane(n, c)
        return list(body.stmts) if isinstance(body, Seq) else [body]

    count = len(parts(idx(0), idx(0)))

    def one_part(i: list[Expr]) -> Stmt:
        chain: Stmt | None = None
        for j, part in reversed(list(enumerate(parts(i[0], i[1])))):
            chain = part if chain is None else If(binop("eq", i[2], idx(j)), part, chain)
        assert chain is not None
        return chain

    zero = const(split.fill, split.x.dtype)
    tail = ctx.loop(split.slack, lambda i: store(split.buf, binop("add", i, idx(split.size)), zero), "ps")
    return seq(ctx.loops((*split.x.shape[:2], count), one_part, "p"), tail)

