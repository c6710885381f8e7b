"""Lowering of matrix products: MatMul, Gemm, MatMulInteger (its plain nest), Einsum.

Float32 products use a register-tiled micro-kernel: each `rows` x `cols` output tile is
accumulated in a stack array over the whole K loop (unrolled over rows, vectorized over
columns, fused multiply-adds), then written through the epilogue. A constant right-hand
side is packed at compile time into column panels [batch, N/cols, K, cols] (zero padded),
so the inner loop streams it contiguously. Other types use a plain dot-product nest.

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
from aic.ir.loop import Allocate, Bin, Call, Cast, Expr, For, If, Load, Stmt, Store
from aic.ir.loop_tools import binop, seq
from aic.ir.ops.einsum import ELLIPSIS, parse_equation
from aic.ir.schedule import CachePack, MicroKernel, ScheduleError, TileOrder, Unroll, Vectorize

from .core import LowerCtx, Tensor, broadcast_index, cdtype, clamp, const, idx, node_error
from .mathx import add, mul
from .reduce import accumulate, stack
from .sizes import Size, Sym, as_expr, shape_of
from .table import Emit, anchor

ROWS = 6  # micro-kernel rows: ROWS * 2 vector accumulators plus operands fit the register file
MAX_TILE = 64  # the largest tile side a schedule may ask for (its accumulators live on the stack)
EXACT_TAILS = 8  # run-time remainders of tiles up to this side get one exact tail tile per possible size


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


def micro_kernel(
    ctx: LowerCtx,
    ks: list[int],
    rows: int,
    width: int,
    cols: int,
    a: Callable[[Expr, list[Expr]], Expr],
    b: Callable[[list[Expr], Expr, Expr], Expr],
    out: Callable[[Expr, Expr, Expr, Expr], Stmt],
    groups: int = 1,
) -> Stmt:
    """acc[r, g, c] = sum over the k loops (extents `ks`) of a(r, k) * b(k, g, c), for r < rows, g < groups,
    c < width; then out(r, g, c, acc) for c < cols. Each a(r, k) feeds `groups` column vectors."""
    acc = stack(ctx, DType.float32, rows * groups * width)

    def at(r: Expr, g: Expr, c: Expr) -> Expr:
        return binop("add", binop("mul", binop("add", binop("mul", r, idx(groups)), g), idx(width)), c)

    zero_value = const(0, DType.float32)
    zero = ctx.loops((rows, groups), lambda rg: ctx.loop(width, lambda c: Store(acc, at(*rg, c), zero_value), "zc"),
                     "zr")
    r_var: list[Stmt] = []
    g_var: list[Stmt] = []
    c_var: list[Stmt] = []

    def row(kk: list[Expr], r: Expr) -> Stmt:
        av = ctx.let(a(r, kk), "a")

        def group(g: Expr) -> Stmt:
            def col(c: Expr) -> Stmt:
                return Store(acc, at(r, g, c), Call("fma", (av, b(kk, g, c), Load(acc, at(r, g, c)))))

            loop = ctx.loop(width, col, "c")
            c_var.append(loop)
            return loop

        loop = ctx.loop(groups, group, "g")
        g_var.append(loop)
        return loop

    def step(kk: list[Expr]) -> Stmt:
        loop = ctx.loop(rows, lambda r: row(kk, r), "r")
        r_var.append(loop)
        return loop

    main = ctx.loops(ks, step, "k")
    store = ctx.loops((rows, groups), lambda rg: ctx.loop(cols, lambda c: out(*rg, c, Load(acc, at(*rg, c))), "sc"),
                      "sr")
    hints(ctx, r_var + g_var, c_var, width)
    return Allocate(acc, seq(zero, main, store))


def hints(ctx: LowerCtx, rows: list[Stmt], cols: list[Stmt], width: int) -> None:
    """Unroll the row loop; vectorize the column loop and unroll its whole vectors."""
    for loop in rows:
        if isinstance(loop, For):
            ctx.hints.append(Unroll(loop.var.name))
    for loop in cols:
        if not isinstance(loop, For):
            continue
        name, lanes = loop.var.name, min(ctx.lanes, width)  # a short row is one (odd-width) vector
        if lanes >= 4:
            ctx.hints.append(Vectorize(name, lanes))
            if width // lanes > 1:
                ctx.hints.append(Unroll(f"{name}.v"))
        else:
            ctx.hints.append(Unroll(name))


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
) -> Stmt:
    """All `tile.rows` x `tile.cols` tiles of an m x n product. `b(k, n0, c)` reads column n0 + c (a packed b
    reads panel n0 // width); `out(i, j, value)` stores element (i, j)."""
    rows, width = tile.rows, tile.cols

    def part(m0: Expr, nrows: int, n0: Expr, cols: int) -> Stmt:
        w = width if packed else cols
        return micro_kernel(
            ctx, [k], nrows, w, cols,
            lambda r, kk: a(binop("add", m0, r), kk[0]),
            lambda kk, g, c: b(kk[0], n0, c),
            lambda r, g, c, v: out(binop("add", m0, r), binop("add", n0, c), v),
        )

    def column(n0: Expr, cols: int) -> Stmt:
        return tiles(ctx, m, rows, lambda m0, nrows: part(m0, nrows, n0, cols), "mo")

    def row(m0: Expr, nrows: int) -> Stmt:
        return tiles(ctx, n, width, lambda n0, cols: part(m0, nrows, n0, cols), "no")

    if tile_order(ctx, "cols") == "rows":  # a row strip of `a` stays in cache while b streams
        return tiles(ctx, m, rows, row, "mo")
    return tiles(ctx, n, width, column, "no")


def tiles(ctx: LowerCtx, extent: Size, size: int, body: Callable[[Expr, int], Stmt], hint: str) -> Stmt:
    """body(start, count) for the whole tiles of `size` along `extent`, then for the remainder. A
    run-time remainder r gets the tile of exactly r under a test for each possible r when tiles are
    short (row tiles), else one tile per set bit of r (16 + 4 + 1 columns for 21)."""
    whole = ctx.loop(extent // size, lambda t: body(binop("mul", t, idx(size)), size), hint)
    full = extent // size * size
    if not isinstance(extent, Sym):
        return seq(whole, body(idx(full), extent - full) if extent > full else None)
    rest = ctx.let(as_expr(extent % size), f"{hint}r")
    n = as_expr(extent)

    def at_end(count: int, left: Expr) -> Expr:
        # extent - left, where the `left` last elements remain; clamped to where a tile of `count`
        # fits (the values it takes when the tile runs), so that the verifier can bound the tile
        return clamp(binop("sub", n, left), 0, extent.hi - count)

    if size <= EXACT_TAILS:
        tails = [If(Bin("eq", rest, idx(r)), body(at_end(r, idx(r)), r)) for r in range(1, min(size, extent.hi + 1))]
    else:
        bits = [1 << b for b in range(size.bit_length()) if 1 << b < size and 1 << b <= extent.hi]
        tails = [If(Bin("eq", binop("mod", binop("div", rest, idx(p)), idx(2)), idx(1)),
                    body(at_end(p, binop("mod", rest, idx(2 * p))), p))
                 for p in reversed(bits)]  # fmt: skip
    return seq(whole, *tails)


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
    tile = register_tile(ctx, MicroKernel(ROWS, 2 * ctx.lanes))
    width = tile.cols
    packed = None
    if weight_packing(ctx, width, weight is not None and b_rank > 1) is not None:
        packed = ctx.weight(pack_columns(np.asarray(weight, np.float32), width), "w")
    b_batch = () if weight is None or b_rank == 1 else weight.shape[:-2]

    def per_batch(bi: list[Expr]) -> Stmt:
        def b(kk: Expr, n0: Expr, c: Expr) -> Expr:
            if packed is None:
                return b_at(bi, kk, binop("add", n0, c))
            return packed.at([*broadcast_index(bi, b_batch), binop("div", n0, idx(width)), kk, c])

        return tiled_product(ctx, m, n, k, lambda i, kk: a_at(bi, i, kk), b,
                             lambda i, j, v: finish(bi, i, j, v), packed is not None, tile)

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
