"""Lowering of matrix products: MatMul, Gemm, MatMulInteger (its plain nest), Einsum.

Float32 products use the register-tiled micro-kernel of micro_kernel.py: each `rows` x `cols`
output tile is accumulated in registers over K, then written through the epilogue. A constant
right-hand side is packed at compile time into column panels [batch, N/cols, K, cols] (zero
padded), so the inner loop streams it contiguously. Other types use a plain dot-product nest.

When the left operand is small enough to stay in L2 (few rows: MLPs, decoders, short sequences;
`streams_weights`), each weight panel is read from memory once: every row tile of the panel runs on
one K block before the next (partial sums carried in a stack buffer), the left operand is packed in
row strips, and the next block is prefetched. Blocks fit L1 when the rows are few; from 48 rows
the block is the whole panel, read from L2; a larger left operand is taken in K spans that fit
L2, the partial sums of all panels kept between spans (`stream_plan`).

The tile, the packing and the order of the tile loops are the schedule records
`MicroKernel(rows, cols)`, `CachePack(1, cols)` and `TileOrder("cols")` (column panels
outermost): the defaults below, or the directives of a schedule given for the kernel
(`register_tile`, `weight_packing`, `tile_order`), listed in its schedule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Allocate, Bin, Buffer, Cast, Expr, For, Load, Prefetch, Seq, Stmt, Store
from aic.ir.loop_tools import binop, seq
from aic.ir.ops.einsum import ELLIPSIS, parse_equation
from aic.ir.schedule import CachePack, MicroKernel, Parallel, ScheduleError, TileOrder

from .core import LowerCtx, Tensor, broadcast_index, cdtype, clamp, const, idx, node_error
from .mathx import add, mul
from .micro_kernel import Carry, micro_kernel, tiles
from .reduce import accumulate, stack
from .sizes import Size, Sym, shape_of, size_prod
from .table import Emit, anchor

ROWS = 6  # micro-kernel rows: ROWS * 2 vector accumulators plus operands fit the register file
MAX_TILE = 64  # the largest tile side a schedule may ask for (its accumulators live on the stack)
K_BLOCK_BYTES = 16 << 10  # a K block of one weight panel: half the L1 data cache
FMA_CHAIN = 4  # cycles of one dependent FMA: the least time per k of a row strip
L2_BYTES = 512 << 10  # the per-core L2 that `stream_plan` sizes for (AMD Zen 3; many x86 cores have more)
STREAMED_A_BYTES = 512 << 10  # the largest left operand kept whole while the weight panels stream
SPAN_A_BYTES = 256 << 10  # the columns of a larger left operand kept in L2 at once (a K span)
MIN_SPAN = 256  # shorter spans store and reload the partial sums of all panels too often
UNBLOCKED_ROWS = 48  # from this many rows, panels are not cut into L1-sized K blocks when L2 holds them


def register_tile(ctx: LowerCtx, default: MicroKernel) -> MicroKernel:
    """The kernel's register tile: the `MicroKernel` directive of its schedule, else `default`."""
    tile = next((r for r in ctx.directives if isinstance(r, MicroKernel)), default)
    if not (1 <= tile.rows <= MAX_TILE and 1 <= tile.cols <= MAX_TILE):
        raise ScheduleError(f"{tile}: rows and cols must be 1..{MAX_TILE}")
    ctx.hints.append(tile)
    return tile


def tile_order(ctx: LowerCtx, default: str) -> str:
    """Which tile loop is outermost, "rows" or "cols": the `TileOrder` directive of the kernel's
    schedule, else `default` (recorded in the schedule only when given)."""
    given = next((r for r in ctx.directives if isinstance(r, TileOrder)), None)
    if given is None:
        return default
    if given.outer not in ("rows", "cols"):
        raise ScheduleError(f"{given}: the outer tile loop is rows or cols")
    ctx.hints.append(given)
    return given.outer


def weight_packing(ctx: LowerCtx, panel: int, packable: bool, required: bool = False) -> CachePack | None:
    """How the constant operand 1 is packed: the `CachePack` directive of the kernel's schedule (its
    panel must be `panel`, the tile side it feeds), else `CachePack(1, panel)` when the operand is
    `packable` (a schedule giving a tile but no `CachePack` leaves it unpacked, unless packing is
    `required` by the kernel)."""
    given = next((r for r in ctx.directives if isinstance(r, CachePack)), None)
    if given is None:
        if not packable or (any(isinstance(r, MicroKernel) for r in ctx.directives) and not required):
            return None
        given = CachePack(1, panel)
    if given.operand != 1 or not packable:
        raise ScheduleError(f"{given}: only input 1 of this kernel can be packed, and only when it is a constant")
    if given.panel != panel:
        raise ScheduleError(f"{given}: the panel must match the register tile ({panel})")
    ctx.hints.append(given)
    return given


def tiled_product(
    ctx: LowerCtx,
    m: Size,
    n: Size,
    k: Size,
    a: Callable[[Expr, Expr], Expr],
    b: Callable[[Expr, Expr, Expr], Expr],
    out: Callable[[Expr, Expr, Expr], Stmt],
    packed: bool,
    tile: MicroKernel,
    strips: bool = False,
) -> Stmt:
    """All `tile.rows` x `tile.cols` tiles of an m x n product. `b(k, n0, c)` reads column n0 + c (a packed b
    reads panel n0 // width); `out(i, j, value)` stores element (i, j). With `strips` (and m, k known), `a` is
    first copied to strips of rows (`pack_rows`)."""
    rows, width = tile.rows, tile.cols
    order = tile_order(ctx, "cols")
    plan = stream_plan(m, k, width) if packed and order == "cols" else None
    copy = None
    if plan is not None and strips:
        buf, copy = pack_rows(ctx, int(m), int(k), rows, a)

        def a_tile(m0: Expr, r: Expr, kk: Expr) -> Expr:
            return Load(buf, binop("add", binop("add", binop("mul", m0, idx(k)), binop("mul", kk, idx(rows))), r))
    else:
        def a_tile(m0: Expr, r: Expr, kk: Expr) -> Expr:
            return a(binop("add", m0, r), kk)

    def part(m0: Expr, nrows: int, n0: Expr, cols: int, k0: Expr, klen: Size, carry: Carry | None = None) -> Stmt:
        w = width if packed else cols
        # one strip reads its weights as it computes (the hardware prefetcher keeps up; a software prefetch
        # was measured 10% slower at 1 row); with more, the strips after the first leave memory idle, so
        # every strip asks for its share of the next block of weights
        strips = -(-int(m) // rows) if plan is not None else 1
        ahead = None
        if plan is not None and strips > 1:  # the next block of the panel, or the same k of the next panel
            ahead = (plan[1] if plan[0] == int(k) else int(k)) * width
        return micro_kernel(
            ctx, [klen], nrows, w, cols,
            lambda r, kk: a_tile(m0, r, binop("add", k0, kk[0])),
            lambda kk, g, c: b(binop("add", k0, kk[0]), n0, c),
            lambda r, g, c, v: out(binop("add", m0, r), binop("add", n0, c), v),
            carry=carry,
            prefetch=(lambda kk: prefetch_share(b(k0, n0, idx(0)), ahead, int(klen), width,
                                                binop("div", m0, idx(rows)), strips, kk[0])) if ahead else None,
        )

    def row(m0: Expr, nrows: int) -> Stmt:
        return tiles(ctx, n, width, lambda n0, cols: part(m0, nrows, n0, cols, idx(0), k), "no")

    if order == "rows":  # a row strip of `a` stays in cache while b streams
        return tiles(ctx, m, rows, row, "mo")
    if plan is None:
        return tiles(ctx, n, width, lambda n0, cols: tiles(
            ctx, m, rows, lambda m0, nrows: part(m0, nrows, n0, cols, idx(0), k), "mo"), "no")
    return seq(copy, streamed_panels(ctx, int(m), n, int(k), rows, width, plan, part))


def streamed_panels(ctx: LowerCtx, m: int, n: Size, k: int, rows: int, width: int, plan: tuple[int, int],
                    part: Callable[..., Stmt]) -> Stmt:
    """The column panels of a weight-streaming product (`stream_plan`): per K span, per panel, per K
    block, every row strip; `part(m0, nrows, n0, cols, k0, klen, carry)` is one tile. The partial sums of
    a panel pass between its blocks in a stack buffer, or between spans in a buffer of all panels (whose
    loop, inside the span loop, is then the parallel one)."""
    span, kc = plan
    spans, blocks = k // span, span // kc
    shared = ctx.scratch(DType.float32, -(-int(n) // width) * width * m) if spans > 1 else None

    def column(ks: Expr, n0: Expr, cols: int) -> Stmt:
        if spans * blocks == 1:
            return tiles(ctx, m, rows, lambda m0, nrows: part(m0, nrows, n0, cols, idx(0), k), "mo")
        sums = shared if shared is not None else stack(ctx, DType.float32, m * width, "sums")

        def block(kb: Expr) -> Stmt:
            loops = [(v, extent) for v, extent in ((ks, spans), (kb, blocks)) if extent > 1]
            first = _all([Bin("eq", v, idx(0)) for v, _ in loops])
            last = _all([Bin("eq", v, idx(extent - 1)) for v, extent in loops])
            k0 = binop("add", binop("mul", ks, idx(span)), binop("mul", kb, idx(kc)))

            def strip(m0: Expr, nrows: int) -> Stmt:
                def at(r: Expr, c: Expr) -> Expr:
                    row = binop("add", binop("mul", binop("add", m0, r), idx(width)), c)
                    return row if shared is None else binop("add", binop("mul", n0, idx(m)), row)

                return part(m0, nrows, n0, cols, k0, kc, Carry(sums, at, first, last))

            return tiles(ctx, m, rows, strip, "mo")

        loop = ctx.loop(blocks, block, "kb")
        return loop if shared is not None else Allocate(sums, loop)

    if spans == 1:
        return tiles(ctx, n, width, lambda n0, cols: column(idx(0), n0, cols), "no")

    def span_panels(ks: Expr) -> Stmt:
        panels = tiles(ctx, n, width, lambda n0, cols: column(ks, n0, cols), "no")
        loops = [panels] if isinstance(panels, For) else panels.stmts if isinstance(panels, Seq) else []
        whole = next((s for s in loops if isinstance(s, For)), None)  # the whole panels; the tail follows
        if whole is not None:
            ctx.hints.append(Parallel(whole.var.name))
        return panels

    return ctx.loop(spans, span_panels, "ks")


def _all(tests: list[Expr]) -> Expr:
    return tests[0] if len(tests) == 1 else binop("and", tests[0], _all(tests[1:]))


def prefetch_ahead(load: Expr, ahead: int) -> Stmt | None:
    """Prefetch the element `ahead` elements after a load from a packed panel (the next panel of an int8
    product): the weights come from memory while the row tiles of this panel compute."""
    if not isinstance(load, Load) or isinstance(load.buffer.size, Sym):
        return None
    return Prefetch(load.buffer, clamp(binop("add", load.index, idx(ahead)), 0, int(load.buffer.size) - 1))


def prefetch_share(start: Expr, ahead: int, klen: int, width: int, strip: Expr, strips: int,
                   kk: Expr) -> Stmt | None:
    """Row strip `strip`'s share of the prefetch of the block `ahead` elements after `start` (the first
    element of a block of `klen` k steps of a packed panel of `width` columns; `ahead`: the next block, or
    the same block of the next panel): each of the `strips` strips of the block asks for 1/strips of it
    over its own k steps, one line every few steps (at k step `kk`, element (strip * klen + kk) * width /
    strips of the block).
    Asked for by the first strip alone, the next block kept about one new line in flight per k step of
    that strip, more than a core tracks over a memory latency, and the strip stalled (BENCHMARKS.md,
    "fp32 micro-kernel efficiency")."""
    if not isinstance(start, Load) or isinstance(start.buffer.size, Sym):
        return None
    step = binop("add", binop("mul", strip, idx(klen)), kk)
    share = binop("div", binop("mul", step, idx(width)), idx(strips))
    at = binop("add", binop("add", start.index, idx(ahead)), share)
    return Prefetch(start.buffer, clamp(at, 0, int(start.buffer.size) - 1))


def pack_rows(ctx: LowerCtx, m: int, k: int, rows: int, a: Callable[[Expr, Expr], Expr]) -> tuple[Buffer, Stmt]:
    """`a` (m x k) copied to strips of `rows` rows, each k-major ([ceil(m/rows), k, rows], the last strip
    short): a row tile reads one contiguous run per k instead of one float of `rows` rows k apart, which
    share few L1 sets when k*4 bytes is a multiple of a large power of two (1024, 3072, 4096)."""
    buf = ctx.scratch(DType.float32, -(-m // rows) * rows * k)

    def strip(m0: Expr, nrows: int) -> Stmt:
        def copy(i: list[Expr]) -> Stmt:
            at = binop("add", binop("add", binop("mul", m0, idx(k)), binop("mul", i[0], idx(rows))), i[1])
            return Store(buf, at, a(binop("add", m0, i[1]), i[0]))

        return ctx.loops((k, nrows), copy, "pa")

    return buf, tiles(ctx, m, rows, strip, "ps")


def streams_weights(m: Size, k: Size) -> bool:
    """Whether all of `a` (m x k, both known) fits STREAMED_A_BYTES, so that it stays in L2 while every
    weight panel passes once (few rows: MLPs, decoders, short sequences; `stream_plan`)."""
    return not isinstance(m, Sym) and not isinstance(k, Sym) and 4 * m * k <= STREAMED_A_BYTES


def stream_plan(m: Size, k: Size, width: int) -> tuple[int, int] | None:
    """(span, block): how a product with packed weights and known m, k streams them, or None for the plain
    panel loop. `a` is packed in row strips (`pack_rows`), `span` columns of it stay in L2 while every
    weight panel passes over them once, each panel's span in K blocks of `block` (== span: not cut), every
    row strip on one block before the next, the next block prefetched (`prefetch_share`). The span is K
    when `a` fits L2 (`streams_weights`), else the longest divisor of K (at least MIN_SPAN) whose columns of
    `a` fit SPAN_A_BYTES (GPT-2's and BERT's K = 3072 products), the partial sums kept between spans; more
    rows keep the plain loop. Spans of few rows are cut into blocks that fit L1 (`k_block`); from
    UNBLOCKED_ROWS rows, when `a`'s span and two panel spans fit L2, they are not: each strip's start on
    a block and its carried sums cost more than reading the panel from L2 (BENCHMARKS.md, "fp32
    micro-kernel efficiency")."""
    if isinstance(m, Sym) or isinstance(k, Sym):
        return None
    m, k = int(m), int(k)
    span = k if streams_weights(m, k) else next(
        (d for d in range(min(k, SPAN_A_BYTES // (4 * m)), MIN_SPAN - 1, -1) if k % d == 0), None)
    if span is None:
        return None
    whole = m >= UNBLOCKED_ROWS and 4 * span * (m + 2 * width) <= L2_BYTES
    return span, span if whole else k_block(span, width) or span


def row_tile(m: Size, k: Size, lanes: int) -> MicroKernel:
    """The default register tile of a product with constant weights: 6 rows x 2 vectors, or 4 rows x 3
    vectors when the product streams its weights (few rows) and that takes 5% fewer cycles per column. A
    strip of r rows x v vectors takes about r*v/2 cycles per k (two FMA pipes), at least FMA_CHAIN (the
    FMA latency, when it has too few accumulators): 32 rows are 5 strips of 6 and a slow one of 2, or 8
    strips of 4; 7 rows are 6 + 1 or 4 + 3."""
    tiles = [MicroKernel(ROWS, 2 * lanes), MicroKernel(4, 3 * lanes)]
    if not streams_weights(m, k):
        return tiles[0]

    def cycles_per_column(tile: MicroKernel) -> float:
        vectors = tile.cols // lanes
        full, tail = divmod(int(m), tile.rows)
        return (full * tile.rows * vectors / 2 + (max(tail * vectors / 2, FMA_CHAIN) if tail else 0)) / vectors

    wide, narrow = cycles_per_column(tiles[0]), cycles_per_column(tiles[1])
    return tiles[1] if narrow < 0.95 * wide else tiles[0]  # switch only for a clear gain (32 or 7 rows, not 128)


def k_block(k: int, width: int) -> int | None:
    """The K block of a column panel: the longest divisor of k (at least 64) whose slice of the panel fits
    K_BLOCK_BYTES, so that every row tile reads it from L1; None when the whole panel fits (or no divisor)."""
    most = K_BLOCK_BYTES // (4 * width)
    if k <= most:
        return None
    return next((d for d in range(most, 63, -1) if k % d == 0), None)


def pack_columns(b: np.ndarray, width: int) -> np.ndarray:
    """[..., K, N] -> [..., ceil(N/width), K, width], zero padded."""
    *batch, kk, n = b.shape
    panels = -(-n // width)
    padded = np.zeros((*batch, kk, panels * width), np.float32)
    padded[..., :n] = b
    return np.ascontiguousarray(np.moveaxis(padded.reshape(*batch, kk, panels, width), -2, -3))


def _dot_nest(ctx: LowerCtx, out_shape: tuple[int, ...], k: int, term: Callable[[list[Expr], Expr], Expr],
              dtype: DType, emit_at: Callable[[list[Expr], Expr], Stmt]) -> Stmt:
    """Plain nest: for every output element, a dot product over k."""

    def element(index: list[Expr]) -> Stmt:
        return accumulate(ctx, [*index, None], [*out_shape, k], lambda i: term(i[:-1], i[-1]),
                          const(0, dtype), add, lambda s: emit_at(index, s))

    return ctx.loops(out_shape, element)


# ---------------------------------------------------------------- MatMul / Gemm


def _operand_value(node: Node, i: int) -> np.ndarray | None:
    v = node.inputs[i] if i < len(node.inputs) else None
    return None if v is None or v.const is None else np.asarray(v.const)


@anchor("MatMul")
def _matmul(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, y = ins[0], ins[1]
    assert x is not None and y is not None
    out_shape = shape_of(node.outputs[0].type)
    a_shape = (1, *x.shape) if x.rank == 1 else x.shape
    b_shape = (*y.shape, 1) if y.rank == 1 else y.shape
    m, k, n = a_shape[-2], a_shape[-1], b_shape[-1]
    batch = out_shape[: len(out_shape) - (x.rank > 1) - (y.rank > 1)]

    def a_at(bi: list[Expr], i: Expr, kk: Expr) -> Expr:
        return x.at([kk] if x.rank == 1 else [*broadcast_index(bi, x.shape[:-2]), i, kk])

    def b_at(bi: list[Expr], kk: Expr, j: Expr) -> Expr:
        return y.at([kk] if y.rank == 1 else [*broadcast_index(bi, y.shape[:-2]), kk, j])

    def out_at(bi: list[Expr], i: Expr, j: Expr) -> list[Expr]:
        return [*bi, *([i] if x.rank > 1 else []), *([j] if y.rank > 1 else [])]

    return _product(ctx, node, batch, m, n, k, a_at, b_at, out_at, _operand_value(node, 1), y.rank,
                    lambda bi, i, j, v: emit(0, out_at(bi, i, j), v))


@anchor("Gemm")
def _gemm(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, y, c = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    assert x is not None and y is not None
    ta, tb = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    m, n = shape_of(node.outputs[0].type)
    k = x.shape[0] if ta else x.shape[1]
    dtype = cdtype(x.dtype)
    weight = _operand_value(node, 1)
    if weight is not None and tb:
        weight = weight.T

    def a_at(bi: list[Expr], i: Expr, kk: Expr) -> Expr:
        return x.at([kk, i] if ta else [i, kk])

    def b_at(bi: list[Expr], kk: Expr, j: Expr) -> Expr:
        return y.at([j, kk] if tb else [kk, j])

    def finish(bi: list[Expr], i: Expr, j: Expr, v: Expr) -> Stmt:
        if alpha != 1.0:
            v = mul(v, const(alpha, dtype))
        if c is not None:
            bias = c.at(broadcast_index([i, j], c.shape))
            v = add(v, bias if beta == 1.0 else mul(bias, const(beta, dtype)))
        return emit(0, [i, j], v)

    return _product(ctx, node, (), m, n, k, a_at, b_at, lambda bi, i, j: [i, j], weight, 2, finish)


def _product(ctx: LowerCtx, node: Node, batch: tuple[int, ...], m: int, n: int, k: int, a_at, b_at, out_at,
             weight: np.ndarray | None, b_rank: int, finish) -> Stmt:
    dtype = node.outputs[0].type.dtype
    if dtype != DType.float32 or ctx.lanes == 1:  # scalar targets (cuda) tile the plain nest themselves
        def term(index: list[Expr], kk: Expr) -> Expr:
            bi, i, j = _split(index, batch)
            return mul(a_at(bi, i, kk), b_at(bi, kk, j))

        return _dot_nest(ctx, (*batch, m, n), k, term, cdtype(dtype),
                         lambda index, s: finish(*_split(index, batch), s))
    packable = weight is not None and b_rank > 1
    tile = register_tile(ctx, row_tile(m, k, ctx.lanes) if packable else MicroKernel(ROWS, 2 * ctx.lanes))
    width = tile.cols
    packed = None
    if weight_packing(ctx, width, packable) is not None:
        packed = ctx.weight(pack_columns(np.asarray(weight, np.float32), width), "w")
    b_batch = () if weight is None or b_rank == 1 else weight.shape[:-2]

    def per_batch(bi: list[Expr]) -> Stmt:
        def b(kk: Expr, n0: Expr, c: Expr) -> Expr:
            if packed is None:
                return b_at(bi, kk, binop("add", n0, c))
            return packed.at([*broadcast_index(bi, b_batch), binop("div", n0, idx(width)), kk, c])

        return tiled_product(ctx, m, n, k, lambda i, kk: a_at(bi, i, kk), b,
                             lambda i, j, v: finish(bi, i, j, v), packed is not None, tile, size_prod(batch) == 1)

    return ctx.loops(batch, per_batch, "b")


def _split(index: list[Expr], batch: tuple[int, ...]) -> tuple[list[Expr], Expr, Expr]:
    """(batch index, row, column) of an output index of the plain nest."""
    nb = len(batch)
    return index[:nb], index[nb], index[nb + 1]


def matmul_integer_nest(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    """MatMulInteger as a plain dot-product nest (the int8 micro-kernel of quant_matmul.py covers
    constant int8 weights with zero point 0)."""
    x, y = ins[0], ins[1]
    assert x is not None and y is not None
    za, zb = (ins[i] if len(ins) > i else None for i in (2, 3))
    out_shape = shape_of(node.outputs[0].type)
    a_shape = (1, *x.shape) if x.rank == 1 else x.shape
    b_shape = (*y.shape, 1) if y.rank == 1 else y.shape
    m, k, n = a_shape[-2], a_shape[-1], b_shape[-1]
    batch = out_shape[: len(out_shape) - (x.rank > 1) - (y.rank > 1)]
    i32 = DType.int32

    def widen(v: Expr) -> Expr:
        return Cast(i32, v)

    def term(index: list[Expr], kk: Expr) -> Expr:
        bi, i, j = index[: len(batch)], index[len(batch)], index[len(batch) + 1]
        av = widen(x.at([kk] if x.rank == 1 else [*broadcast_index(bi, x.shape[:-2]), i, kk]))
        bv = widen(y.at([kk] if y.rank == 1 else [*broadcast_index(bi, y.shape[:-2]), kk, j]))
        if za is not None:
            av = Bin("sub", av, widen(za.at([i] if za.rank == 1 and za.shape[0] > 1 else [idx(0)] * za.rank)))
        if zb is not None:
            bv = Bin("sub", bv, widen(zb.at([j] if zb.rank == 1 and zb.shape[0] > 1 else [idx(0)] * zb.rank)))
        return mul(av, bv)

    def out(index: list[Expr], s: Expr) -> Stmt:
        bi, i, j = index[: len(batch)], index[len(batch)], index[len(batch) + 1]
        return emit(0, [*bi, *([i] if x.rank > 1 else []), *([j] if y.rank > 1 else [])], s)

    return _dot_nest(ctx, (*batch, m, n), k, term, i32, out)


# ---------------------------------------------------------------- Einsum


@anchor("Einsum")
def _einsum(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    tensors = [t for t in ins if t is not None]
    eq = parse_equation(node.attrs["equation"], len(tensors))
    out_shape = shape_of(node.outputs[0].type)
    sizes: dict[str, int] = {}
    terms: list[list[str]] = []
    ell_rank = max((t.rank - len(term) + 1 for t, term in zip(tensors, eq.inputs) if ELLIPSIS in term), default=0)
    ell = [f"@{i}" for i in range(ell_rank)]
    for t, term in zip(tensors, eq.inputs):
        labels: list[str] = []
        for lab in term:
            labels.extend(ell[ell_rank - (t.rank - len(term) + 1):] if lab == ELLIPSIS else [lab])
        for lab, d in zip(labels, t.shape):
            if d != 1 or lab not in sizes:
                sizes[lab] = d
        terms.append(labels)
    out_labels = [lab for x in eq.output for lab in (ell if x == ELLIPSIS else [x])]
    summed = [lab for lab in sizes if lab not in out_labels]
    dtype = cdtype(node.outputs[0].type.dtype)
    if len(out_labels) != len(out_shape):
        raise node_error(node, f"cannot match output labels {out_labels} to shape {list(out_shape)}")

    def product(env: dict[str, Expr]) -> Expr:
        value: Expr | None = None
        for t, labels in zip(tensors, terms):
            v = t.at([idx(0) if d == 1 else env[lab] for lab, d in zip(labels, t.shape)])
            v = v if v.dtype == dtype else Cast(dtype, v)
            value = v if value is None else mul(value, v)
        return value if value is not None else const(1, dtype)

    def element(index: list[Expr]) -> Stmt:
        env = dict(zip(out_labels, index))

        def term(full: list[Expr]) -> Expr:
            return product({**env, **dict(zip(summed, full[len(index):]))})

        return accumulate(ctx, [*index, *[None] * len(summed)], [*out_shape, *(sizes[s] for s in summed)], term,
                          const(0, dtype), add, lambda s: emit(0, index, s))

    return ctx.loops(out_shape, element)
