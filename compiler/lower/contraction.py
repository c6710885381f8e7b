"""Lowering of matrix products: MatMul, Gemm, MatMulInteger (its plain nest), Einsum.

Float32 products use the register-tiled micro-kernel of micro_kernel.py: each `rows` x `cols`
output tile is accumulated in registers over K, then written through the epilogue. A constant
right-hand side is packed at compile time into column panels [batch, N/cols, K, cols] (zero
padded), so the inner loop streams it contiguously. Other types use a plain dot-product nest.

When the left operand is small enough to stay in L2 (few rows: MLPs, decoders, short sequences),
each weight panel is read from memory once (`streamed_panels`, `stream_plan` in streamed.py).

The tile, the packing and the order of the tile loops are the schedule records
`MicroKernel(rows, cols)`, `CachePack(1, cols)` and `TileOrder("cols")` (column panels
outermost; row strips outermost when the packed weights stay in L2 and `a` does not,
`weights_stay_in_l2`): the defaults below, or the directives of a schedule given for the kernel
(`register_tile`, `weight_packing`, `tile_order`), listed in its schedule. A MatMul of [..., m, k]
by 2-D constant weights is one product over all the rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Bin, Buffer, Cast, Expr, Load, Stmt
from aic.ir.loop_tools import binop, seq
from aic.ir.ops.einsum import ELLIPSIS, parse_equation
from aic.ir.schedule import CachePack, MicroKernel, ScheduleError, TileOrder

from .core import LowerCtx, Tensor, broadcast_index, cdtype, const, idx, node_error
from .mathx import add, mul
from .micro_kernel import Carry, micro_kernel, tiles
from .reduce import accumulate
from .sizes import Size, Sym, shape_of, size_prod
from .streamed import (
    L2_BYTES,
    pack_rows,
    prefetch_share,
    prefetch_steps,
    row_block,
    stream_plan,
    streamed_panels,
    streams_weights,
)
from .table import Emit, anchor

ROWS = 6  # micro-kernel rows: ROWS * 2 vector accumulators plus operands fit the register file
MAX_TILE = 64  # the largest tile side a schedule may ask for (its accumulators live on the stack)
FMA_CHAIN = 4  # cycles of one dependent FMA: the least time per k of a row strip


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
    spare: bool = False,
) -> Stmt:
    """All `tile.rows` x `tile.cols` tiles of an m x n product. `b(k, n0, c)` reads column n0 + c (a packed b
    reads panel n0 // width); `out(i, j, value)` stores element (i, j). With `strips` (and m, k known), `a` is
    first copied to strips of rows (`pack_rows`). `spare`: the packed weights end on a spare panel of
    zeros, so that the prefetch of the panel after the last stays in bounds unclamped."""
    rows, width = tile.rows, tile.cols
    order = tile_order(ctx, "rows" if packed and weights_stay_in_l2(m, n, k, width) else "cols")
    plan = stream_plan(m, k, width) if packed and order == "cols" else None
    block = row_block(m, k, rows, width) if packed and order == "cols" and plan is None and strips else None

    def parts(base: Expr, mrows: Size, plan: tuple[int, int] | None, buf: Buffer | None) -> Callable[..., Stmt]:
        """The tile of rows base + m0 ..., reading `a` from its row strips in `buf` or in place; a streamed
        `plan` over `mrows` rows prefetches each strip's share of the next block."""
        def a_tile(m0: Expr, r: Expr, kk: Expr) -> Expr:
            if buf is None:
                return a(binop("add", binop("add", base, m0), r), kk)
            strip = binop("mul", binop("add", base, m0), idx(k))
            return Load(buf, binop("add", binop("add", strip, binop("mul", kk, idx(rows))), r))

        def part(m0: Expr, nrows: int, n0: Expr, cols: int, k0: Expr, klen: Size, carry: Carry | None = None) -> Stmt:
            w = width if packed else cols
            # one strip reads its weights as it computes (the hardware prefetcher keeps up; a software prefetch
            # was measured 10% slower at 1 row); with more, the strips after the first leave memory idle, so
            # every strip asks for its share of the next block of weights
            strips = -(-int(mrows) // rows) if plan is not None else 1
            ahead, every = None, 1
            if plan is not None and strips > 1:  # the next block of the panel, or the same k of the next panel
                ahead = (plan[1] if plan[0] == int(k) else int(k)) * width
                every = prefetch_steps(width, strips, int(klen))
            return micro_kernel(
                ctx, [klen], nrows, w, cols,
                lambda r, kk: a_tile(m0, r, binop("add", k0, kk[0])),
                lambda kk, g, c: b(binop("add", k0, kk[0]), n0, c),
                lambda r, g, c, v: out(binop("add", binop("add", base, m0), r), binop("add", n0, c), v),
                carry=carry,
                prefetch=(lambda kk: prefetch_share(b(k0, n0, idx(0)), ahead, int(klen), width,
                                                    binop("div", m0, idx(rows)), strips, kk[0], clamped=not spare))
                if ahead else None,
                prefetch_every=every,
            )

        return part

    buf, copy = pack_rows(ctx, int(m), int(k), rows, a) if (plan is not None or block) and strips else (None, None)
    if block is not None:  # row blocks that stay in L2, each over every weight panel (all of `a` packed first)

        def row_block_body(r0: Expr, mrows: int) -> Stmt:
            inner = stream_plan(mrows, k, width)
            assert inner is not None, "a row block fits STREAMED_A_BYTES"
            part = parts(r0, mrows, inner, buf)
            return streamed_panels(ctx, mrows, n, int(k), rows, width, inner, part, parallel=True)

        return seq(copy, tiles(ctx, m, block, row_block_body, "mb"))
    part = parts(idx(0), m, plan, buf)

    def row(m0: Expr, nrows: int) -> Stmt:
        return tiles(ctx, n, width, lambda n0, cols: part(m0, nrows, n0, cols, idx(0), k), "no")

    if order == "rows":  # a row strip of `a` stays in cache while b streams
        return tiles(ctx, m, rows, row, "mo")
    if plan is None:
        return tiles(ctx, n, width, lambda n0, cols: tiles(
            ctx, m, rows, lambda m0, nrows: part(m0, nrows, n0, cols, idx(0), k), "mo"), "no")
    return seq(copy, streamed_panels(ctx, int(m), n, int(k), rows, width, plan, part))


def weights_stay_in_l2(m: Size, n: Size, k: Size, width: int) -> bool:
    """Whether a product that does not stream its weights (`stream_plan` is None: `a` is over L2) has packed
    weights that fit half of L2, so that every row strip can run over all weight panels, read from L2, while
    the strip stays in L1: `a` is then read once, not once per panel from L3 (ConvNeXt's 3136 x 96 x 384 and
    3136 x 384 x 96 products, 24 and 6 panels: 14% faster measured, BENCHMARKS.md, "Products on a busy core")."""
    if any(isinstance(d, Sym) for d in (m, n, k)) or stream_plan(m, k, width) is not None:
        return False
    return 4 * int(k) * -(-int(n) // width) * width <= L2_BYTES // 2


def row_tile(m: Size, k: Size, lanes: int, n: Size | None = None) -> MicroKernel:
    """The default register tile of a product with constant weights: 6 rows x 2 vectors, or 4 rows x 3
    vectors when the product streams its weights (few rows) and that takes 5% fewer cycles per column, or
    as many cycles while 6 x 2 would end on a short strip and 4 x 3 would not (and n, when known, pads to
    at most 1% more columns in 3-vector panels). A strip of r rows x v vectors takes about r*v/2 cycles per
    k (two FMA pipes), at least FMA_CHAIN (the FMA latency, when it has too few accumulators): 32 rows are
    5 strips of 6 and a slow one of 2, or 8 strips of 4; 7 rows are 6 + 1 or 4 + 3. 64 rows (10 x 6 + 4 or
    16 x 4) tie on that count, but the 4 x 2 strip has no slack on the FMA latency and the 16-column panels
    are 1.5 times as many, each re-reading the left operand: 4 x 3 was 5-8% faster there (BENCHMARKS.md,
    "fp32 products with weights from DRAM")."""
    tiles = [MicroKernel(ROWS, 2 * lanes), MicroKernel(4, 3 * lanes)]
    if not streams_weights(m, k):
        return tiles[0]

    def cycles_per_column(tile: MicroKernel) -> float:
        vectors = tile.cols // lanes
        full, tail = divmod(int(m), tile.rows)
        return (full * tile.rows * vectors / 2 + (max(tail * vectors / 2, FMA_CHAIN) if tail else 0)) / vectors

    def padded(tile: MicroKernel) -> int:
        return -(-int(n) // tile.cols) * tile.cols

    wide, narrow = cycles_per_column(tiles[0]), cycles_per_column(tiles[1])
    tie = narrow == wide and int(m) % ROWS != 0 and int(m) % 4 == 0
    if tie and n is not None and not isinstance(n, Sym):
        tie = padded(tiles[1]) <= 1.01 * padded(tiles[0])
    return tiles[1] if narrow < 0.95 * wide or tie else tiles[0]  # a clear gain (32, 7 rows) or a tie (64, not 128)


def pack_columns(b: np.ndarray, width: int, spare: bool = False) -> np.ndarray:
    """[..., K, N] -> [..., ceil(N/width) (+ 1 with `spare`), K, width], zero padded."""
    *batch, kk, n = b.shape
    panels = -(-n // width) + spare
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

    weight = _operand_value(node, 1)
    if weight is not None and y.rank == 2 and x.rank > 2 and _known(x.shape) and size_prod(batch) > 1:
        # one product over all rows of x (ConvNeXt's channel MLPs over [1, H, W, C]): the row tiles and the
        # weights' schedule see every row, not batches of H rows that each read all of the weights again
        dims = x.shape[:-1]

        def rows_of(r: Expr) -> list[Expr]:
            return _unflatten(r, dims)

        return _product(ctx, node, (), size_prod(dims), n, k, lambda bi, r, kk: x.at([*rows_of(r), kk]), b_at,
                        lambda bi, r, j: [*rows_of(r), j], weight, 2,
                        lambda bi, r, j, v: emit(0, [*rows_of(r), j], v))
    return _product(ctx, node, batch, m, n, k, a_at, b_at, out_at, _operand_value(node, 1), y.rank,
                    lambda bi, i, j, v: emit(0, out_at(bi, i, j), v))


def _known(dims: tuple[Size, ...]) -> bool:
    return not any(isinstance(d, Sym) for d in dims)


def _unflatten(r: Expr, dims: tuple[Size, ...]) -> list[Expr]:
    """The index into `dims` (row-major) of flat position `r`."""
    index = []
    for j, d in enumerate(dims):
        inner = int(size_prod(dims[j + 1:]))
        at = binop("div", r, idx(inner)) if inner > 1 else r
        index.append(idx(0) if d == 1 else at if j == 0 else binop("mod", at, idx(int(d))))
    return index


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
    tile = register_tile(ctx, row_tile(m, k, ctx.lanes, n) if packable else MicroKernel(ROWS, 2 * ctx.lanes))
    width = tile.cols
    packed = None
    b_batch = () if weight is None or b_rank == 1 else weight.shape[:-2]
    spare = not b_batch and _prefetches(m, k, tile)
    if weight_packing(ctx, width, packable) is not None:
        packed = ctx.weight(pack_columns(np.asarray(weight, np.float32), width, spare), "w")

    def per_batch(bi: list[Expr]) -> Stmt:
        def b(kk: Expr, n0: Expr, c: Expr) -> Expr:
            if packed is None:
                return b_at(bi, kk, binop("add", n0, c))
            return packed.at([*broadcast_index(bi, b_batch), binop("div", n0, idx(width)), kk, c])

        return tiled_product(ctx, m, n, k, lambda i, kk: a_at(bi, i, kk), b,
                             lambda i, j, v: finish(bi, i, j, v), packed is not None, tile, size_prod(batch) == 1,
                             spare)

    return ctx.loops(batch, per_batch, "b")


def _prefetches(m: Size, k: Size, tile: MicroKernel) -> bool:
    """Whether a product's strips may prefetch the weight panel after their own (a streamed plan or row blocks
    over more than one strip), so that its packed weights get a spare panel (`tiled_product`)."""
    if isinstance(m, Sym) or isinstance(k, Sym) or -(-int(m) // tile.rows) < 2:
        return False
    return stream_plan(m, k, tile.cols) is not None or row_block(m, k, tile.rows, tile.cols) is not None


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
