"""Lowering of image sampling and scattering ops: GridSample, DeformConv, RoiAlign, Col2Im,
MaxUnpool. (NonMaxSuppression, whose output size depends on the data, is in dynamic.py.)

Sampling follows the op table's references (ir/ops/vision.py, ir/ops/detection.py): per
spatial axis, the taps a fractional coordinate reads (nearest, linear or cubic, with the
padding mode applied), then the weighted sum over every combination of taps.
"""

from __future__ import annotations

import itertools

from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import INDEX, Allocate, Bin, Cast, Expr, For, Load, Stmt, Store
from aic.ir.loop_tools import binop, select, seq

from .checks import check_indices
from .conv import window_of
from .core import LowerCtx, Tensor, cdtype, clamp, const, idx, linear, node_error, static_ints, store
from .mathx import add, call, k, mul, sub
from .reduce import lowest, stack
from .sizes import shape_of, size_prod
from .table import Emit, anchor

Taps = list[tuple[Expr, Expr]]  # (input index, weight) per tap


def _fclamp(c: Expr, lo: float, hi: float) -> Expr:
    return select(Bin("lt", c, k(lo, c)), k(lo, c), select(Bin("gt", c, k(hi, c)), k(hi, c), c))


def _reflect(ctx: LowerCtx, c: Expr, lo: float, hi: float) -> Expr:
    """Reflect c at the borders of [lo, hi] until it falls inside."""
    span = hi - lo
    if span <= 0:
        return k(lo, c)
    c = ctx.let(c, "c")
    below, above = Bin("lt", c, k(lo, c)), Bin("gt", c, k(hi, c))
    distance = ctx.let(select(below, sub(k(lo, c), c), sub(c, k(hi, c))), "dist")
    bounces = ctx.let(call("floor", Bin("div", distance, k(span, c))), "bounce")
    rest = ctx.let(sub(distance, mul(bounces, k(span, c))), "rest")
    even = Bin("eq", Bin("mod", bounces, k(2, c)), k(0, c))
    from_below = select(even, add(k(lo, c), rest), sub(k(hi, c), rest))
    from_above = select(even, sub(k(hi, c), rest), add(k(lo, c), rest))
    return select(below, from_below, select(above, from_above, c))


def _cubic(s: Expr, a: float = -0.75) -> list[Expr]:
    t = sub(k(1, s), s)

    def far(u: Expr) -> Expr:
        u1 = add(u, k(1, u))
        return sub(mul(add(mul(sub(mul(k(a, u), u1), k(5 * a, u)), u1), k(8 * a, u)), u1), k(4 * a, u))

    def near(u: Expr) -> Expr:
        return add(mul(mul(sub(mul(k(a + 2, u), u), k(a + 3, u)), u), u), k(1, u))

    return [far(s), near(s), near(t), far(t)]


def axis_taps(ctx: LowerCtx, c: Expr, length: int, mode: str, padding: str, align: bool) -> Taps:
    """Taps along one axis of `length` pixels for the pixel coordinate `c` (see ir/ops/vision.py)."""
    lo, hi = (0.0, length - 1.0) if align else (-0.5, length - 0.5)
    if mode == "nearest":
        c = call("round", c)
    if padding == "border":
        c = ctx.let(c, "c")
        c = select(Bin("or", Bin("lt", c, k(lo, c)), Bin("gt", c, k(hi, c))), _fclamp(c, 0, length - 1), c)
    elif padding == "reflection":
        c = _reflect(ctx, c, lo, hi)
    c = ctx.let(c, "c")
    if mode == "nearest":
        points = [(c, k(1, c))]
    else:
        base = ctx.let(call("floor", c), "base")
        frac = ctx.let(sub(c, base), "frac")
        if mode == "linear":
            points = [(base, sub(k(1, c), frac)), (add(base, k(1, c)), frac)]
        else:
            points = [(add(base, k(o, c)), w) for o, w in zip((-1, 0, 1, 2), _cubic(frac))]
    taps = []
    for p, w in points:
        if padding == "zeros":
            inside = Bin("and", Bin("ge", p, k(0, p)), Bin("lt", p, k(length, p)))
            w = select(inside, w, k(0, w))
        elif padding == "reflection":
            p = _reflect(ctx, p, lo, hi)
        taps.append((ctx.let(Cast(INDEX, _fclamp(call("trunc", p), 0, length - 1)), "tap"), ctx.let(w, "w")))
    return taps


def interpolate(read, taps: list[Taps], dtype: DType) -> Expr:
    """Sum over tap combinations of read(indices) times the product of the tap weights."""
    total: Expr | None = None
    for combo in itertools.product(*taps):
        weight = combo[0][1]
        for _, w in combo[1:]:
            weight = mul(weight, w)
        v = read([i for i, _ in combo])
        v = v if v.dtype == dtype else Cast(dtype, v)
        weight = weight if weight.dtype == dtype else Cast(dtype, weight)
        term = mul(v, weight)
        total = term if total is None else add(total, term)
    assert total is not None
    return total


@anchor("GridSample", epilogue=True)
def _grid_sample(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, grid = ins[0], ins[1]
    assert x is not None and grid is not None
    out_shape = shape_of(node.outputs[0].type)
    r = x.rank - 2
    align = bool(node.attrs.get("align_corners", 0))
    mode, padding = node.attrs.get("mode", "linear"), node.attrs.get("padding_mode", "zeros")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    gt = DType.float64 if grid.dtype == DType.float64 else DType.float32
    dt = cdtype(x.dtype)

    def element(index: list[Expr]) -> Stmt:
        n, ch, points = index[0], index[1], index[2:]
        taps = []
        for i in range(r):
            g = grid.at([n, *points, idx(r - 1 - i)])
            g = g if g.dtype == gt else Cast(gt, g)
            length = x.shape[2 + i]
            one = k(1, g)
            c = mul(Bin("div", add(g, one), k(2, g)), k(length - 1, g)) if align else \
                Bin("div", sub(mul(add(g, one), k(length, g)), one), k(2, g))
            taps.append(axis_taps(ctx, c, length, mode, padding, align))
        return emit(0, index, interpolate(lambda ix: x.at([n, ch, *ix]), taps, dt))

    return ctx.loops(out_shape, element)


@anchor("DeformConv")
def _deform_conv(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, w, offset = ins[0], ins[1], ins[2]
    bias, mask = (ins[i] if len(ins) > i else None for i in (3, 4))
    assert x is not None and w is not None and offset is not None
    kernel = list(node.attrs.get("kernel_shape") or w.shape[2:])
    window = window_of(node, kernel)
    out_shape = shape_of(node.outputs[0].type)
    r, spatial = len(kernel), list(x.shape[2:])
    groups, parts = node.attrs.get("group", 1), node.attrs.get("offset_group", 1)
    icg, ocg, per_part = w.shape[1], out_shape[1] // groups, x.shape[1] // parts
    n_taps = size_prod(kernel)
    dt, f64 = cdtype(x.dtype), DType.float64

    def element(index: list[Expr]) -> Stmt:
        n, oc, o = index[0], index[1], index[2:]
        total = stack(ctx, dt, 1, "acc")

        def term(full: list[Expr]) -> Stmt:
            ic, tap = full[0], full[1:]
            channel = ctx.let(binop("add", binop("mul", binop("div", oc, idx(ocg)), idx(icg)), ic), "ch")
            part = binop("div", channel, idx(per_part))
            flat_tap = linear(tap, kernel)
            taps = []
            for i in range(r):
                at = binop("add", binop("mul", binop("add", binop("mul", part, idx(n_taps)), flat_tap), idx(r)), idx(i))
                base = binop("add", binop("mul", o[i], idx(window.strides[i])), binop("mul", tap[i],
                                                                                   idx(window.dilations[i])))
                coord = add(Cast(f64, offset.at([n, at, *o])), Cast(f64, binop("sub", base, idx(window.pads[i]))))
                taps.append(axis_taps(ctx, coord, spatial[i], "linear", "zeros", True))
            v = interpolate(lambda ix: x.at([n, channel, *ix]), taps, dt)
            if mask is not None:
                m = mask.at([n, binop("add", binop("mul", part, idx(n_taps)), flat_tap), *o])
                v = mul(v, m if m.dtype == dt else Cast(dt, m))
            wv = w.at([oc, ic, *tap])
            return Store(total, idx(0), add(Load(total, idx(0)), mul(v, wv if wv.dtype == dt else Cast(dt, wv))))

        start = bias.at([oc]) if bias is not None else const(0, dt)
        body = seq(Store(total, idx(0), start if start.dtype == dt else Cast(dt, start)),
                   ctx.loops([icg, *kernel], term, "t"), emit(0, index, Load(total, idx(0))))
        return Allocate(total, body)

    return ctx.loops(out_shape, element)


@anchor("RoiAlign")
def _roi_align(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, rois, batch = ins[0], ins[1], ins[2]
    assert x is not None and rois is not None and batch is not None
    out_shape = shape_of(node.outputs[0].type)
    height, width = x.shape[2:]
    oh, ow = out_shape[2:]
    ct = DType.float64 if x.dtype == DType.float64 else DType.float32
    half_pixel = node.attrs.get("coordinate_transformation_mode", "half_pixel") == "half_pixel"
    ratio = node.attrs.get("sampling_ratio", 0)
    scale = node.attrs.get("spatial_scale", 1.0)
    use_max = node.attrs.get("mode", "avg") == "max"
    source = node.inputs[2]
    name = source.name if source is not None else "batch_indices"
    check_indices(ctx, node, batch, [x.shape[0]], f"batch_indices '{name}' (a batch of {x.shape[0]})",
                  negative=False, constant=source.const if source is not None else None)  # fmt: skip

    def element(index: list[Expr]) -> Stmt:
        r, ch, py, px = index
        corner = [ctx.let(sub(mul(Cast(ct, rois.at([r, idx(i)])) if rois.dtype != ct else rois.at([r, idx(i)]),
                                  const(scale, ct)), const(0.5 if half_pixel else 0.0, ct)), "roi") for i in range(4)]
        x1, y1, x2, y2 = corner
        rw, rh = sub(x2, x1), sub(y2, y1)
        if not half_pixel:
            rw, rh = (select(Bin("lt", v, const(1, ct)), const(1, ct), v) for v in (rw, rh))
        rw, rh = ctx.let(rw, "rw"), ctx.let(rh, "rh")

        def grid_count(size: Expr, bins: int) -> Expr:
            if ratio > 0:
                return idx(ratio)
            return ctx.let(Cast(INDEX, call("ceil", Bin("div", size, const(bins, ct)))), "grid")

        gh, gw = grid_count(rh, oh), grid_count(rw, ow)
        b = ctx.let(clamp(Cast(INDEX, batch.at([r])), 0, x.shape[0] - 1), "b")  # checked above
        acc = stack(ctx, ct, 1, "acc")

        def position(start: Expr, size: Expr, bins: int, p: Expr, g: Expr, count: Expr) -> Expr:
            step = Bin("div", size, const(bins, ct))
            within = Bin("div", mul(add(Cast(ct, g), const(0.5, ct)), step), Cast(ct, count))
            return add(add(start, mul(Cast(ct, p), step)), within)

        def axis(c: Expr, length: int) -> tuple[Expr, Expr, Expr, Expr, Expr]:
            c = ctx.let(c, "c")
            valid = Bin("and", Bin("ge", c, const(-1, ct)), Bin("le", c, const(length, ct)))
            c0 = ctx.let(select(Bin("lt", c, const(0, ct)), const(0, ct), c), "c0")
            low = ctx.let(Cast(INDEX, c0), "low")
            end = ctx.let(Bin("ge", low, idx(length - 1)), "end")
            low = ctx.let(select(end, idx(length - 1), low), "lo")
            high = select(end, idx(length - 1), binop("add", low, idx(1)))
            frac = ctx.let(select(end, const(0, ct), sub(c0, Cast(ct, low))), "frac")
            return valid, low, high, frac, sub(const(1, ct), frac)

        def sample(iy: Expr, ix: Expr) -> Stmt:
            vy, yl, yh, ly, hy = axis(position(y1, rh, oh, py, iy, gh), height)
            vx, xl, xh, lx, hx = axis(position(x1, rw, ow, px, ix, gw), width)
            valid = Bin("and", vy, vx)

            def at(yy: Expr, xx: Expr) -> Expr:
                v = x.at([b, ch, yy, xx])
                return v if v.dtype == ct else Cast(ct, v)

            terms = [mul(at(yl, xl), mul(hy, hx)), mul(at(yl, xh), mul(hy, lx)),
                     mul(at(yh, xl), mul(ly, hx)), mul(at(yh, xh), mul(ly, lx))]
            terms = [select(valid, t, const(0, ct)) for t in terms]
            if use_max:
                best = terms[0]
                for t in terms[1:]:
                    best = select(Bin("gt", t, best), t, best)
                return Store(acc, idx(0), select(Bin("gt", best, Load(acc, idx(0))), best, Load(acc, idx(0))))
            return Store(acc, idx(0), add(Load(acc, idx(0)), add(add(terms[0], terms[1]), add(terms[2], terms[3]))))

        iy, ix = ctx.var("sy"), ctx.var("sx")
        with ctx.scope() as sc:
            inner = sc.wrap(sample(iy, ix))
        loops = For(iy, gh, For(ix, gw, inner))
        count = binop("mul", gh, gw)
        empty = Bin("eq", count, idx(0))
        if use_max:
            result = select(empty, const(0, ct), Load(acc, idx(0)))
        else:
            result = select(empty, const(0, ct), Bin("div", Load(acc, idx(0)),
                                                     Cast(ct, binop("max", count, idx(1)))))
        init = Store(acc, idx(0), const(lowest(ct) if use_max else 0, ct))
        return Allocate(acc, seq(init, loops, emit(0, index, result)))

    return ctx.loops(out_shape, element)


@anchor("Col2Im")
def _col2im(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x = ins[0]
    assert x is not None
    image = static_ints(node, 1, "image_shape") or []
    block = static_ints(node, 2, "block_shape") or []
    r = len(block)
    dilations = node.attrs.get("dilations") or [1] * r
    pads = node.attrs.get("pads") or [0] * (2 * r)
    strides = node.attrs.get("strides") or [1] * r
    spans = [(b - 1) * d + 1 for b, d in zip(block, dilations)]
    blocks = [(n + pads[i] + pads[i + r] - spans[i]) // strides[i] + 1 for i, n in enumerate(image)]
    out_shape = shape_of(node.outputs[0].type)
    dt = cdtype(x.dtype)
    taps = size_prod(block)

    def element(index: list[Expr]) -> Stmt:
        n, ch, pixel = index[0], index[1], index[2:]
        acc = stack(ctx, dt, 1, "acc")

        def term(tap: list[Expr]) -> Stmt:
            ok: Expr | None = None
            where = []
            for i in range(r):
                num = binop("sub", binop("add", pixel[i], idx(pads[i])), binop("mul", tap[i], idx(dilations[i])))
                q = binop("div", num, idx(strides[i]))
                cond = Bin("and", Bin("ge", num, idx(0)), Bin("lt", q, idx(blocks[i])))
                if strides[i] > 1:
                    cond = Bin("and", cond, Bin("eq", binop("mod", num, idx(strides[i])), idx(0)))
                ok = cond if ok is None else Bin("and", ok, cond)
                where.append(clamp(q, 0, blocks[i] - 1))
            row = binop("add", binop("mul", ch, idx(taps)), linear(tap, block))
            v = x.at([n, row, linear(where, blocks)])
            v = v if v.dtype == dt else Cast(dt, v)
            return Store(acc, idx(0), add(Load(acc, idx(0)), select(ok, v, const(0, dt)) if ok is not None else v))

        return Allocate(acc, seq(Store(acc, idx(0), const(0, dt)), ctx.loops(block, term, "t"),
                                 emit(0, index, Load(acc, idx(0)))))

    return ctx.loops(out_shape, element)


@anchor("MaxUnpool", epilogue=False)
def _max_unpool(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    x, indices = ins[0], ins[1]
    assert x is not None and indices is not None
    out_shape = shape_of(node.outputs[0].type)
    size = size_prod(out_shape)
    if size == 0:
        raise node_error(node, "empty output")
    buf = ctx.scratch(x.dtype, size)
    zero = ctx.loops((size,), lambda i: store(buf, i[0], const(0, x.dtype)), "z")

    def scatter(index: list[Expr]) -> Stmt:
        at = ctx.let(clamp(indices.at(index), 0, size - 1), "at")
        return store(buf, at, x.at(index))

    def out(index: list[Expr]) -> Stmt:
        v = Load(buf, linear(index, out_shape))
        return emit(0, index, Cast(DType.float32, v) if v.dtype in (DType.float16, DType.bfloat16) else v)

    return seq(zero, ctx.loops(x.shape, scatter, "s"), ctx.loops(out_shape, out, "o"))
