"""Loop order for elementwise kernels that read a transposed operand (NHWC -> NCHW and back).

The default nest of an elementwise kernel runs the output row (the last axis) as vectors
innermost. When an operand is read through a transpose, consecutive output positions of the
row are a whole stride apart in that operand (ConvNeXt's `x + Transpose(mlp(x))`: 96 floats),
so each vector gathers from `lanes` cache lines and uses one float of each; the next output
channel needs the neighbouring floats of the same lines, but only after the whole plane has
been traversed, when they have left the cache. Here the axis along which that operand is
contiguous runs inside a tile of `lanes` row positions: the tile's lines are read once, from
L1, for all of its channels, and the stores stay whole vectors along the row.
"""

from __future__ import annotations

from collections.abc import Callable

from aic.ir.loop import Expr, Load, Scope, Stmt
from aic.ir.loop_tools import binop, coefficient, exprs_of, seq, stmt_exprs, stmts_of

from .core import LowerCtx, idx
from .sizes import Size

TILE_VECTORS = 2  # vectors per tile: whole cache lines of the operands read along the row
Body = Callable[[list[Expr]], Stmt]


def gathered_axis(ctx: LowerCtx, shape: tuple[Size, ...], body: Body) -> int | None:
    """The axis (not the last) along which an operand read with a stride > 1 along the last axis is
    contiguous, when no operand is read contiguously along the row (a pure transpose, scaled or
    not); else None."""
    if ctx.lanes < 2 or len(shape) < 2 or not all(isinstance(d, int) for d in shape) or shape[-1] < ctx.lanes:
        return None
    probe = [ctx.var("probe") for _ in shape]
    with ctx.scope() as sc:
        stmt = sc.wrap(body(probe))
    loads = [x for s in stmts_of(stmt) for e in stmt_exprs(s) for x in _loads(e) if x.buffer.scope is not Scope.STACK]
    along_row = [coefficient(ld.index, probe[-1]) for ld in loads]
    if 1 in along_row:  # another operand streams along the row: measured slower tiled (BENCHMARKS.md)
        return None
    for ld, step in zip(loads, along_row):
        if step in (0, None):
            continue
        for axis in range(len(shape) - 1):
            if shape[axis] > 1 and coefficient(ld.index, probe[axis]) == 1:
                return axis
    return None


def _loads(e: Expr) -> list[Load]:
    return [x for x in exprs_of(e) if isinstance(x, Load)]


def rows_by_tiles(ctx: LowerCtx, shape: tuple[int, ...], axis: int, body: Body) -> Stmt:
    """for every index of `shape`: body(index), with `axis` inside tiles of `lanes` positions of the last
    axis (vectors along the tile; a shorter tile for the row's remainder)."""
    width = shape[-1]
    lanes = ctx.lanes * TILE_VECTORS if width >= ctx.lanes * TILE_VECTORS else ctx.lanes
    outer = [a for a in range(len(shape) - 1) if a != axis]
    whole, rest = divmod(width, lanes)

    def at(lead: list[Expr], inner: Expr, column: Expr) -> list[Expr]:
        index = [idx(0)] * len(shape)
        for a, v in zip(outer, lead):
            index[a] = v
        index[axis], index[-1] = inner, column
        return index

    def tile(lead: list[Expr], start: Expr, size: int) -> Stmt:
        return ctx.loop(shape[axis], lambda c: ctx.loop(
            size, lambda lane: body(at(lead, c, binop("add", start, lane))), "l"), "t")

    def row(lead: list[Expr]) -> Stmt:
        tiles = ctx.loop(whole, lambda t: tile(lead, binop("mul", t, idx(lanes)), lanes), "w")
        return seq(tiles, tile(lead, idx(whole * lanes), rest) if rest else None)

    return ctx.loops([shape[a] for a in outer], row, "o")
