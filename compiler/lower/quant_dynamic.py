"""Lowering of DynamicQuantizeLinear as one kernel: a pass for the range, then the quantizer.

The first pass folds min and max together (one `vminps` / `vmaxps` each: a NaN does not propagate)
into `lanes` partial results each (the lane loop vectorizes; accumulators start at 0, which widens the
range to include 0 as the op defines); the lanes are folded, scale and zero point computed once, and a
second pass quantizes every element (the input, just read, comes from cache). Arithmetic as
ir/ops/quant.py states, in float32.
"""

from __future__ import annotations

from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Allocate, Bin, Cast, Const, Expr, Load, Stmt, Store
from aic.ir.loop_tools import select, seq

from .core import LowerCtx, Tensor, idx
from .mathx import call, div, fast_max, neg
from .reduce import fold_lanes, stack
from .table import Emit, anchor

F32 = DType.float32


def _f(value: float) -> Expr:
    return Const(value, F32)


def _clip(ctx: LowerCtx, x: Expr, lo: float, hi: float) -> Expr:
    """As the Clip lowering: x < lo ? lo : x, then hi < x ? hi : x."""
    x = ctx.let(x)
    x = ctx.let(select(Bin("lt", x, _f(lo)), _f(lo), x))
    return select(Bin("lt", _f(hi), x), _f(hi), x)


def _fast_min(a: Expr, b: Expr) -> Expr:
    """a < b ? a : b: one `vminps` (a NaN is not propagated)."""
    return select(Bin("lt", a, b), a, b)


@anchor("DynamicQuantizeLinear", epilogue=False)
def _dynamic_quantize(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    shape = list(x.shape) or [1]
    at = (lambda i: x.at(i)) if x.shape else (lambda i: x.at([]))
    outer, last = shape[:-1], shape[-1]
    lanes = ctx.lanes
    lo, hi = stack(ctx, F32, lanes, "lo"), stack(ctx, F32, lanes, "hi")

    def fold(slot: Expr, index: list[Expr]) -> Stmt:
        v = ctx.let(at(index), "x")
        return seq(Store(lo, slot, _fast_min(Load(lo, slot), v)), Store(hi, slot, fast_max(Load(hi, slot), v)))

    def row(o: list[Expr]) -> Stmt:
        if not isinstance(last, int):  # a run-time length: one lane
            return ctx.loop(last, lambda j: fold(idx(0), [*o, j]), "j")
        whole = ctx.loop(last // lanes, lambda c: ctx.loop(lanes, lambda lv: fold(
            lv, [*o, Bin("add", Bin("mul", c, idx(lanes)), lv)]), "l"), "c")
        start = last // lanes * lanes
        return seq(whole, ctx.loop(last - start, lambda t: fold(idx(0), [*o, Bin("add", idx(start), t)]), "t"))

    init = ctx.loop(lanes, lambda lv: seq(Store(lo, lv, _f(0.0)), Store(hi, lv, _f(0.0))), "l")
    reduce = seq(init, ctx.loops(outer, row, "r"), fold_lanes(lo, lanes, _fast_min), fold_lanes(hi, lanes, fast_max))
    with ctx.scope() as sc:
        low, high = ctx.let(Load(lo, idx(0)), "lo"), ctx.let(Load(hi, idx(0)), "hi")
        step = div(Bin("sub", high, low), _f(255.0))
        scale = ctx.let(select(Bin("eq", high, low), _f(1.0), step), "scale")
        zero = ctx.let(call("round", _clip(ctx, div(neg(low), scale), 0.0, 255.0)), "zero")

        def quantize(index: list[Expr]) -> Stmt:
            q = _clip(ctx, Bin("add", call("round", div(at(index), scale)), zero), 0.0, 255.0)
            return emit(0, index if x.shape else [], Cast(DType.uint8, Cast(DType.int32, q)))

        body = sc.wrap(seq(emit(1, [], scale), emit(2, [], Cast(DType.uint8, Cast(DType.int32, zero))),
                           ctx.loops(shape, quantize, "q")))
    return Allocate(lo, Allocate(hi, seq(reduce, body)))
