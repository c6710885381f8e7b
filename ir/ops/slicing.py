"""Slice and Pad: windows of a tensor, with ONNX clamping and padding modes.

Symbolic sizes: a bound is read as an offset from the start or from the end of
its axis. Negative offsets are assumed to lie within the axis, INT_MAX-like
bounds mean "to the end", and a length that depends on clamping a positive
bound against a symbolic dim becomes a fresh symbol.
"""

from __future__ import annotations

import numpy as np

from ..dims import Dim, dim_add, dim_sub
from ..types import TensorType
from .common import check_same_dtype, norm_axes
from .registry import Attr, InferContext
from .shape import movement
from .symbolic import input_sym, int_values, optional, small, vector_length

BIG = 2**31 - 1  # bounds at least this large mean "to the end" of an axis


def effective_slice(dim: int, start: int, end: int, step: int) -> tuple[int, int]:
    """ONNX-clamped (start, end) for a static dim; end may be -1 for negative steps."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim)
    return min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)


def _offset(v: Dim, dim: Dim) -> tuple[Dim, int]:
    """A positive-step bound as (base, offset): base is 0, the dim, or a symbolic bound."""
    if isinstance(v, str):
        return v, 0
    if isinstance(dim, int):
        return 0, min(max(v + dim if v < 0 else v, 0), dim)
    if v >= BIG:
        return dim, 0
    if v <= -BIG:
        return 0, 0
    return (dim, v) if v < 0 else (0, v)


def _symbolic_length(ctx: InferContext, dim: Dim, start: Dim, end: Dim, step: Dim) -> Dim:
    if step == -1 and isinstance(start, int) and isinstance(end, int) and (start == -1 or start >= BIG) and end <= -BIG:
        return dim  # a full reversal
    if step != 1 or (isinstance(dim, str) and isinstance(end, int) and 0 < end < BIG):
        return ctx.fresh()  # strided, or a positive end that the unknown dim may clamp
    (base0, off0), (base1, off1) = _offset(start, dim), _offset(end, dim)
    if base0 == base1:
        return max(0, off1 - off0)
    if base0 == 0:
        delta = off1 - off0
        return dim_add(base1, delta) if delta >= 0 else dim_sub(base1, -delta)
    if base1 == 0 and isinstance(base0, str) and base0 != dim:
        return dim_sub(off1, base0) if off1 else 0  # a static end minus a symbolic start
    return ctx.fresh()


def slice_length(ctx: InferContext, dim: Dim, start: Dim, end: Dim, step: Dim) -> Dim:
    if step == 0:
        raise ctx.error("slice steps must be non-zero")
    if all(isinstance(v, int) for v in (dim, start, end, step)):
        s, e = effective_slice(dim, start, end, step)  # type: ignore[arg-type]
        return max(0, -(-(e - s) // step))  # type: ignore[operator]
    return _symbolic_length(ctx, dim, start, end, step)


def _slice_params(ctx: InferContext) -> tuple[list[Dim], list[Dim], list[int] | None, list[Dim] | None]:
    rank = ctx.input(0).rank
    n = vector_length(ctx, 1, "starts")
    if vector_length(ctx, 2, "ends") != n:
        raise ctx.error("starts and ends must have one length")
    axes = int_values(ctx, 3) if ctx.has(3) else list(range(n))
    if axes is not None:
        if len(axes) != n:
            raise ctx.error(f"axes {axes} must have {n} entries like starts")
        axes = norm_axes(ctx, axes, rank)
    steps = ctx.values(4) if ctx.has(4) else [1] * n
    return ctx.values(1), ctx.values(2), axes, steps  # type: ignore[return-value]


def _slice_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    starts, ends, axes, steps = _slice_params(ctx)
    if axes is None:
        return [t.with_shape([ctx.fresh() for _ in t.shape])]
    out = list(t.shape)
    if starts is None or ends is None or steps is None:
        for a in axes:
            out[a] = ctx.fresh()
        return [t.with_shape(out)]
    for a, s, e, st in zip(axes, starts, ends, steps):
        out[a] = slice_length(ctx, t.shape[a], s, e, st)
    return [t.with_shape(out)]


def _slice_ref(inputs, attrs):
    x, starts, ends = inputs[:3]
    n = starts.size
    axes = optional(inputs, 3) if optional(inputs, 3) is not None else range(n)
    steps = optional(inputs, 4) if optional(inputs, 4) is not None else [1] * n
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        a = int(a) % x.ndim
        s, e = effective_slice(x.shape[a], int(s), int(e), int(st))
        index[a] = slice(s, e if e >= 0 else None, int(st))
    return [x[tuple(index)].copy()]


def _slice_propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    sym = input_sym(ctx, 0)
    starts, ends, steps = (int_values(ctx, i) if ctx.has(i) else [1] for i in (1, 2, 4))
    if sym is None or ctx.input(0).rank != 1 or any(v is None or len(v) != 1 for v in (starts, ends, steps)):
        return [None]
    s, e = effective_slice(len(sym), starts[0], ends[0], steps[0])
    return [small(_slice_infer(ctx)[0], sym[s : e if e >= 0 else None : steps[0]])]


movement(
    "Slice",
    _slice_infer,
    _slice_ref,
    inputs=(3, 5),
    propagate=_slice_propagate,
    doc="Strided window: starts/ends/axes/steps inputs, negative bounds from the end, clamped.",
)


# Pad ----------------------------------------------------------------------


def _pad_axes(ctx: InferContext) -> list[int] | None:
    rank = ctx.input(0).rank
    if not ctx.has(3):
        return list(range(rank))
    axes = int_values(ctx, 3)
    return None if axes is None else norm_axes(ctx, axes, rank)


def _pad_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    if ctx.has(2):
        check_same_dtype(ctx, 0, 2)
    axes = _pad_axes(ctx)
    pads = ctx.values(1)
    n = vector_length(ctx, 1, "pads")
    if axes is None:
        return [t.with_shape([ctx.fresh() for _ in t.shape])]
    if n != 2 * len(axes):
        raise ctx.error(f"pads has {n} entries; expected 2 per padded axis ({2 * len(axes)})")
    out = list(t.shape)
    for i, a in enumerate(axes):
        if pads is None:
            out[a] = ctx.fresh()
            continue
        before, after = pads[i], pads[i + len(axes)]
        if isinstance(before, int) and isinstance(after, int):
            total = before + after
            out[a] = dim_add(out[a], total) if total >= 0 else dim_sub(out[a], -total)
        else:
            out[a] = dim_add(dim_add(out[a], before), after)
        if isinstance(out[a], int) and out[a] < 0:
            raise ctx.error(f"pads {pads} crop axis {a} of size {t.shape[a]} below zero")
    return [t.with_shape(out)]


def _pad_ref(inputs, attrs):
    x, pads = inputs[:2]
    value = optional(inputs, 2) if optional(inputs, 2) is not None else np.zeros((), x.dtype)
    axes = optional(inputs, 3) if optional(inputs, 3) is not None else range(x.ndim)
    axes = [int(a) % x.ndim for a in axes]
    widths = [[0, 0] for _ in range(x.ndim)]
    for i, a in enumerate(axes):
        widths[a] = [int(pads[i]), int(pads[i + len(axes)])]
    crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for d, (b, e) in zip(x.shape, widths))
    grow = [(max(b, 0), max(e, 0)) for b, e in widths]
    x = x[crop]
    if attrs["mode"] == "constant":
        return [np.pad(x, grow, mode="constant", constant_values=np.asarray(value).reshape(()))]
    return [np.pad(x, grow, mode=attrs["mode"])]


movement(
    "Pad",
    _pad_infer,
    _pad_ref,
    attrs={"mode": Attr("string", "constant", ("constant", "reflect", "edge", "wrap"))},
    inputs=(2, 4),
    doc="Pad (or crop, for negative pads) each axis; pads = [begins..., ends...] over `axes`.",
)
