"""Rows of whole vectors: a loop split so that no element is left to scalar code."""

from __future__ import annotations

from collections.abc import Callable

from aic.ir.loop import Expr, For, Stmt
from aic.ir.loop_tools import binop, seq
from aic.ir.schedule import Vectorize

from .core import LowerCtx, idx
from .sizes import Size, Sym

MIN_TAIL_LANES = 4  # a shorter remainder stays scalar (an outer loop may vectorize instead)


def vector_row(ctx: LowerCtx, extent: Size, body: Callable[[Expr], Stmt], lanes: int = 0) -> Stmt:
    """for v in extent: body(v), as whole vectors of `lanes` (default: the target's) plus one shorter
    vector for the remainder (asked of the schedule as `Vectorize` hints). A run-time extent gets
    a loop of whole vectors and a scalar remainder loop (one plain loop for a scalar target)."""
    lanes = lanes or ctx.lanes
    if isinstance(extent, Sym) and lanes == 1:
        return ctx.loop(extent, body)
    if isinstance(extent, Sym):
        return _vector_row_sym(ctx, extent, body)
    whole = extent // lanes * lanes if extent >= lanes else 0
    main = ctx.loop(whole, body, "ow") if whole else None
    rest = ctx.loop(extent - whole, lambda v: body(binop("add", v, idx(whole))), "ot") if extent > whole else None
    for loop, n in ((main, lanes), (rest, extent - whole)):
        if isinstance(loop, For) and n >= MIN_TAIL_LANES:
            ctx.hints.append(Vectorize(loop.var.name, n))
    return seq(main, rest)


def _vector_row_sym(ctx: LowerCtx, extent: Sym, body: Callable[[Expr], Stmt]) -> Stmt:
    lanes = ctx.lanes
    inner: list[For] = []

    def chunk(o: Expr) -> Stmt:
        loop = ctx.loop(lanes, lambda v: body(binop("add", binop("mul", o, idx(lanes)), v)), "ov")
        inner.append(loop)  # type: ignore[arg-type]
        return loop

    whole = extent // lanes
    main = ctx.loop(whole, chunk, "ow")
    for loop in inner:
        ctx.hints.append(Vectorize(loop.var.name, lanes))
    rest = ctx.loop(extent % lanes, lambda v: body(binop("add", v, idx(whole * lanes))), "ot")
    return seq(main, rest)
