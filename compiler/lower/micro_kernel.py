"""The float32 register tile shared by matrix products and dense convolutions.

`micro_kernel` accumulates a `rows` x `width` output tile in a stack array (unrolled over rows,
vectorized over columns, fused multiply-adds) over its K loops, then writes it through the
epilogue. With a `Carry` the tile covers one block of K only: it starts from the partial sums
of the previous block (kept in a buffer of the column panel) and passes its own on, and only
the last block runs the epilogue. `tiles` covers an extent with whole tiles and a remainder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aic.ir.dtypes import DType
from aic.ir.loop import Allocate, Bin, Buffer, Call, Expr, For, If, Let, Load, Prefetch, Scope, Stmt, Store, Var
from aic.ir.loop_tools import binop, exprs_of, seq, stmt_exprs, stmts_of
from aic.ir.schedule import Unroll, Vectorize

from .core import LowerCtx, clamp, const, idx
from .reduce import stack
from .sizes import Size, Sym, as_expr

LINE_FLOATS = 16  # float32 elements of a 64-byte cache line
EXACT_TAILS = 8  # run-time remainders of tiles up to this side get one exact tail tile per possible size


@dataclass(frozen=True)
class Carry:
    """Partial sums of a K-blocked tile: `buffer[at(r, c)]` holds element (r, c) of the tile between
    blocks; the block where `first` holds starts from zero, the one where `last` holds finishes."""

    buffer: Buffer
    at: Callable[[Expr, Expr], Expr]
    first: Expr
    last: Expr


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
    carry: Carry | None = None,
    prefetch: Callable[[list[Expr]], Stmt] | None = None,
    tile: Callable[[Buffer], Stmt] | None = None,
    prefetch_every: int = 1,
) -> Stmt:
    """acc[r, g, c] = sum over the k loops (extents `ks`) of a(r, k) * b(k, g, c), for r < rows, g < groups,
    c < width; then out(r, g, c, acc) for c < cols. Each a(r, k) feeds `groups` column vectors. With a
    `carry` (groups == 1) the sums continue those of the previous K block and pass on to the next;
    `prefetch(k)` runs at each k step, or at every `prefetch_every`-th of a single k loop that many divide
    (the steps between ask for the same cache line: each prefetch costs a load and its address); `tile(acc)`
    (no carry) runs on the finished tile, acc[(r * groups + g) * width + c], before the epilogue.
    Without a carry, the lines of other operands that the epilogue reads element by element (a residual added
    to the output) are prefetched before the K loops, which then hide their latency."""
    acc = stack(ctx, DType.float32, rows * groups * width)

    def at(r: Expr, g: Expr, c: Expr) -> Expr:
        return binop("add", binop("mul", binop("add", binop("mul", r, idx(groups)), g), idx(width)), c)

    epilogue_cols: list[Stmt] = []

    def each(extent: int, body: Callable[[Expr, Expr, Expr], Stmt], hint: str) -> Stmt:
        def inner(rg: list[Expr]) -> Stmt:
            loop = ctx.loop(extent, lambda c: body(*rg, c), f"{hint}c")
            if hint == "s":
                epilogue_cols.append(loop)
            return loop

        return ctx.loops((rows, groups), inner, f"{hint}r")

    zero_value = const(0, DType.float32)
    init = each(width, lambda r, g, c: Store(acc, at(r, g, c), zero_value), "z")
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

    def rows_at(kk: list[Expr]) -> Stmt:
        loop = ctx.loop(rows, lambda r: row(kk, r), "r")
        r_var.append(loop)
        return loop

    def step(kk: list[Expr]) -> Stmt:
        return seq(prefetch(kk), rows_at(kk)) if prefetch is not None else rows_at(kk)

    every = prefetch_every
    if prefetch is not None and every > 1 and len(ks) == 1 and not isinstance(ks[0], Sym) and ks[0] % every == 0:
        def group(ko: Expr) -> Stmt:
            k0 = binop("mul", ko, idx(every))
            assert prefetch is not None
            return seq(prefetch([k0]), ctx.loop(every, lambda ki: rows_at([binop("add", k0, ki)]), "ki"))

        main = ctx.loop(ks[0] // every, group, "k")
    else:
        main = ctx.loops(ks, step, "k")
    if tile is not None:
        assert carry is None, "a tile pass runs on whole sums"
        main = seq(main, tile(acc))

    def result(r: Expr, g: Expr, c: Expr) -> Stmt:
        return out(r, g, c, Load(acc, at(r, g, c)))

    if carry is None:
        init = seq(init, epilogue_prefetches(ctx, rows, groups, cols, result))
    finish = each(cols, result, "s")
    if carry is not None:
        resume = each(width, lambda r, g, c: Store(acc, at(r, g, c), Load(carry.buffer, carry.at(r, c))), "l")
        keep = each(width, lambda r, g, c: Store(carry.buffer, carry.at(r, c), Load(acc, at(r, g, c))), "p")
        init, finish = If(carry.first, init, resume), If(carry.last, finish, keep)
    hints(ctx, r_var + g_var, c_var, width)
    wide_epilogue(ctx, epilogue_cols, cols)
    return Allocate(acc, seq(init, main, finish))


def epilogue_prefetches(ctx: LowerCtx, rows: int, groups: int, cols: int,
                        out: Callable[[Expr, Expr, Expr], Stmt]) -> Stmt:
    """A prefetch of every cache line that out(r, g, c) reads from a global buffer at an index that moves with c
    (out called on probes: c and c + 1 of each line)."""
    def loads(r: Expr, g: Expr, c: int) -> list[Load]:
        with ctx.scope() as sc:
            probe = sc.wrap(out(r, g, idx(c)))
        bound = {id(st.var) for st in stmts_of(probe) if isinstance(st, Let)}
        return [e for top in stmt_exprs(probe) for e in exprs_of(top) if isinstance(e, Load)
                and e.buffer.scope == Scope.GLOBAL
                and not any(isinstance(v, Var) and id(v) in bound for v in exprs_of(e.index))]

    def lines(rg: list[Expr]) -> Stmt:
        fetches: list[Stmt] = []
        for c in range(0, cols, LINE_FLOATS):
            here, next_ = loads(*rg, c), loads(*rg, c + 1) if c + 1 < cols else []
            fetches += [Prefetch(a.buffer, a.index) for a, b in zip(here, next_)
                        if a.buffer is b.buffer and repr(a.index) != repr(b.index)]
        return seq(*fetches)

    return ctx.loops((rows, groups), lines, "fr")


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


def wide_epilogue(ctx: LowerCtx, loops: list[Stmt], cols: int) -> None:
    """Vectorize a sigmoid epilogue's (SiLU, Swish) column loop as one vector of the tile's width when that
    is several target vectors: LLVM splits each operation into target vectors side by side, so their
    independent chains interleave in program order instead of queueing one after the other in the
    scheduler (a SiLU is ~25 dependent operations per vector). Measured in BENCHMARKS.md: SiLU
    epilogues 4-19% faster, GELU and ReLU epilogues of the MLP's products 5-17% slower, hence only sigmoid."""
    if cols <= ctx.lanes or cols % ctx.lanes:
        return
    for loop in loops:
        if isinstance(loop, For) and _calls(loop, "sigmoid"):
            ctx.hints.append(Vectorize(loop.var.name, cols))


def _calls(loop: Stmt, fn: str) -> bool:
    return any(isinstance(e, Call) and e.fn == fn for top in stmt_exprs(loop) for e in exprs_of(top))


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
