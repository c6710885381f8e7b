"""Lowering of the remaining ops: Det (Gaussian elimination per matrix), MaxRoiPool, and
the control-flow ops' entries (their bodies become program steps: compiler/control.py)."""

from __future__ import annotations

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Allocate, Bin, Cast, Expr, For, If, Load, Stmt, Store, Unary
from aic.ir.loop_tools import binop, select, seq

from .checks import report, site_text
from .core import LowerCtx, Tensor, const, idx, linear
from .mathx import absolute, call, mul, sub
from .reduce import lowest, stack
from .sizes import shape_of, size_prod
from .table import Emit, anchor, control

control("If", "Loop", "Scan")  # lowered as program steps by compiler/control.py


@anchor("BitCast")
def _bitcast(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    """Reads the input's bytes through a parameter of the output's element type."""
    source = node.inputs[0]
    assert source is not None
    out = node.outputs[0].type
    shape = shape_of(out)
    if source.const is not None:
        data = ctx.weight(np.ascontiguousarray(source.const).view(out.dtype.numpy).reshape(shape), "bits")
        return ctx.loops(shape, lambda i: emit(0, i, data.at(i)))
    buf = ctx.param("value", out.dtype, size_prod(shape), source, "in")
    return ctx.loops(shape, lambda i: emit(0, i, _widen(Load(buf, linear(i, shape)))))


def _widen(v: Expr) -> Expr:
    return Cast(DType.float32, v) if v.dtype in (DType.float16, DType.bfloat16) else v


@anchor("Det")
def _det(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    n = x.shape[-1]
    dt = DType.float64

    def matrix(batch: list[Expr]) -> Stmt:
        a = stack(ctx, dt, n * n, "lu")
        det, piv, best = stack(ctx, dt, 1, "det"), stack(ctx, INDEX, 1, "piv"), stack(ctx, dt, 1, "best")

        def at(r: Expr, c: Expr) -> Expr:
            return binop("add", binop("mul", r, idx(n)), c)

        def load(r: Expr, c: Expr) -> Expr:
            return Load(a, at(r, c))

        copy = ctx.loops((n, n), lambda rc: Store(a, at(*rc), Cast(dt, x.at([*batch, *rc]))), "cp")

        def column(i: Expr) -> Stmt:
            def search(r: Expr) -> Stmt:
                v = ctx.let(absolute(load(r, i)), "m")
                better = ctx.let(Bin("and", Bin("gt", r, i), Bin("gt", v, Load(best, idx(0)))), "b")
                return seq(Store(best, idx(0), select(better, v, Load(best, idx(0)))),
                           Store(piv, idx(0), select(better, r, Load(piv, idx(0)))))

            p = Load(piv, idx(0))

            def swap(c: Expr) -> Stmt:
                top = ctx.let(load(i, c), "top")
                other = ctx.let(load(p, c), "other")
                return seq(Store(a, at(i, c), other), Store(a, at(p, c), top))

            def eliminate(r: Expr) -> Stmt:
                f = ctx.let(Bin("div", load(r, i), load(i, i)), "f")
                body = ctx.loop(n, lambda c: Store(a, at(r, c), sub(load(r, c), mul(f, load(i, c)))), "ec")
                return If(Bin("gt", r, i), body)

            sign = select(Bin("ne", p, i), const(-1, dt), const(1, dt))
            return seq(
                Store(best, idx(0), absolute(load(i, i))),
                Store(piv, idx(0), i),
                ctx.loop(n, search, "sr"),
                Store(det, idx(0), mul(Load(det, idx(0)), sign)),
                ctx.loop(n, swap, "sw"),
                Store(det, idx(0), mul(Load(det, idx(0)), load(i, i))),
                If(Bin("ne", load(i, i), const(0, dt)), ctx.loop(n, eliminate, "er")),
            )

        done = emit(0, batch, Load(det, idx(0)))
        body = seq(copy, Store(det, idx(0), const(1, dt)), ctx.loop(n, column, "col"), done)
        return Allocate(a, Allocate(det, Allocate(piv, Allocate(best, body))))

    return ctx.loops(x.shape[:-2], matrix, "b")


@anchor("MaxRoiPool")
def _max_roi_pool(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, rois = ins[0], ins[1]
    assert x is not None and rois is not None
    pooled_h, pooled_w = node.attrs["pooled_shape"]
    scale = node.attrs.get("spatial_scale", 1.0)
    height, width = x.shape[2:]
    out_shape = shape_of(node.outputs[0].type)
    f64 = DType.float64
    _check_batch_column(ctx, node, rois, x.shape[0])

    def coord(r: Expr, k: int) -> Expr:
        v = mul(Cast(f64, rois.at([r, idx(k)])), const(scale, f64))
        rounded = call("floor", Bin("add", absolute(v), const(0.5, f64)))
        return ctx.let(Cast(INDEX, select(Bin("lt", v, const(0, f64)), Bin("sub", const(0, f64), rounded), rounded)),
                       "roi")

    def bounds(start: Expr, end: Expr, pooled: int, p: Expr, limit: int) -> tuple[Expr, Expr]:
        size = Cast(f64, binop("max", binop("add", binop("sub", end, start), idx(1)), idx(1)))
        bin_size = Bin("div", size, const(float(pooled), f64))
        lo = Cast(INDEX, call("floor", mul(Cast(f64, p), bin_size)))
        hi = Cast(INDEX, call("ceil", mul(Cast(f64, binop("add", p, idx(1))), bin_size)))
        clip = lambda e: binop("min", binop("max", binop("add", e, start), idx(0)), idx(limit))  # noqa: E731
        return ctx.let(clip(lo), "lo"), ctx.let(clip(hi), "hi")

    def element(index: list[Expr]) -> Stmt:
        r, c, ph, pw = index
        batch = ctx.let(_batch_index(rois.at([r, idx(0)]), x.shape[0]), "batch")  # checked above
        x0, y0, x1, y1 = (coord(r, k) for k in range(1, 5))
        top, bottom = bounds(y0, y1, pooled_h, ph, height)
        left, right = bounds(x0, x1, pooled_w, pw, width)
        best = stack(ctx, x.dtype if x.dtype.is_float else f64, 1, "best")
        dt = best.dtype
        h, w = ctx.var("h"), ctx.var("w")
        update = Store(best, idx(0), _max(Load(best, idx(0)), Cast(dt, x.at([batch, c, h, w])) if dt != x.dtype
                                          else x.at([batch, c, h, w])))
        scan = For(h, binop("max", binop("sub", bottom, top), idx(0)),
                   For(w, binop("max", binop("sub", right, left), idx(0)), update, start=left), start=top)
        empty = Bin("or", Bin("le", bottom, top), Bin("le", right, left))
        value = select(empty, const(0, dt), Load(best, idx(0)))
        return Allocate(best, seq(Store(best, idx(0), const(lowest(dt), dt)), scan, emit(0, index, value)))

    return ctx.loops(out_shape, element)


def _batch_index(v: Expr, batch: int) -> Expr:
    """The batch index a rois entry names (truncated, as onnxruntime does), clamped into the batch."""
    f64 = DType.float64
    v = v if v.dtype == f64 else Cast(f64, v)
    inside = select(Bin("gt", v, const(0, f64)), v, const(0, f64))  # NaN -> 0
    return Cast(INDEX, select(Bin("gt", inside, const(batch - 1, f64)), const(batch - 1, f64), inside))


def _check_batch_column(ctx: LowerCtx, node: Node, rois: Tensor, batch: int) -> None:
    """Check at run time that every rois[r, 0] names an image of the batch (truncated: in (-1, batch))."""
    source = node.inputs[1]
    name = source.name if source is not None else "rois"
    record = report(ctx, site_text(node, f"the batch index rois '{name}'[:, 0] must be in [0, {batch - 1}] "
                                         f"(a batch of {batch})"))  # fmt: skip
    f64 = DType.float64

    def body(r: Expr) -> Stmt:
        raw = rois.at([r, idx(0)])
        v = ctx.let(raw if raw.dtype == f64 else Cast(f64, raw), "ck")
        ok = Bin("and", Bin("gt", v, const(-1, f64)), Bin("lt", v, const(batch, f64)))  # NaN fails both
        shown = select(Bin("lt", v, const(-2.0**62, f64)), const(-2.0**62, f64),
                       select(Bin("gt", v, const(2.0**62, f64)), const(2.0**62, f64), v))  # fmt: skip
        shown = select(Bin("eq", v, v), shown, const(-2.0**62, f64))
        return record(Unary("not", ok), Cast(INDEX, shown), linear([r, idx(0)], rois.shape))

    ctx.checks.append(ctx.loop(rois.shape[0], body, "ck"))


def _max(a: Expr, b: Expr) -> Expr:
    return select(Bin("gt", b, a), b, a)
