"""Version converters for arithmetic and neural-network ops: older ONNX forms
onto the newest semantics that aic ops follow.

Old opsets ran some ops in a 2-D coerced form (Softmax-1/11), took bounds,
axes or ratios as attributes (Clip-6, Reduce*-11, Dropout-10), had per-group
(GroupNormalization-18) or per-activation (BatchNormalization spatial=0)
parameters, or broadcast with an explicit `axis` (arithmetic before opset 7).
Inference-only: training switches (is_test=0, Dropout masks) are ignored.
"""

from __future__ import annotations

import numpy as np
from aic.ir import Value, is_static

from .converters import ConvertContext, converter, direct_from

# Reductions ----------------------------------------------------------------

_REDUCTIONS = {
    "ReduceSum": 13,
    "ReduceMean": 18,
    "ReduceMax": 18,
    "ReduceMin": 18,
    "ReduceProd": 18,
    "ReduceL1": 18,
    "ReduceL2": 18,
    "ReduceLogSum": 18,
    "ReduceLogSumExp": 18,
    "ReduceSumSquare": 18,
}


def reduce_axes_attr(ctx: ConvertContext) -> list[Value]:
    """Reduce*-1/11 (and ReduceSum-1..12) took `axes` as an attribute; absent means every axis."""
    axes = ctx.attrs.get("axes")
    attrs = {"keepdims": ctx.attrs.get("keepdims", 1)}
    return ctx.emit(ctx.op_type, [ctx.inputs[0], ctx.ints(axes, "axes") if axes else None], attrs)


for _op, _since in _REDUCTIONS.items():
    converter(_op, 1)(reduce_axes_attr)
    direct_from(_op, _since)


# Clip ----------------------------------------------------------------------


@converter("Clip", 1)
def clip_v6(ctx: ConvertContext) -> list[Value]:
    """Clip-1/6 took min and max as float attributes (absent: unbounded)."""
    x = ctx.inputs[0]
    dtype = x.type.dtype.numpy
    bounds = [ctx.const(ctx.attrs[k], k, dtype=dtype) if k in ctx.attrs else None for k in ("min", "max")]
    return ctx.final("Clip", x, *bounds)


direct_from("Clip", 11)


# Softmax family -----------------------------------------------------------


def softmax_2d(ctx: ConvertContext) -> list[Value]:
    """Softmax/LogSoftmax/Hardmax-1/11 view the input as 2-D [prod(dims[:axis]),
    prod(dims[axis:])] and normalise each row: Flatten, op on the last axis, Reshape back."""
    x = ctx.inputs[0]
    rank = x.type.rank
    axis = ctx.attrs.get("axis", 1)
    if not -rank <= axis < max(rank, 1):
        raise ctx.error(f"axis {axis} is out of range for {x.type}")
    axis %= max(rank, 1)
    if axis == rank - 1 or rank == 0:
        return ctx.final(ctx.op_type, x, axis=-1)
    flat = ctx.op("Flatten", x, axis=axis)
    result = ctx.op(ctx.op_type, flat, axis=-1)
    shape = ctx.ints(list(x.type.shape), "shape") if is_static(x.type.shape) else ctx.op("Shape", x)
    return ctx.final("Reshape", result, shape)


for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    converter(_op, 1)(softmax_2d)
    direct_from(_op, 13)


# Dropout -------------------------------------------------------------------


@converter("Dropout", 1)
def dropout_v1(ctx: ConvertContext) -> list[Value]:
    """Dropout-1..10 took ratio (and is_test) as attributes; before opset 10 the
    mask had the input's element type. At inference the output is the input."""
    x = ctx.inputs[0]
    if len(ctx.output_names) < 2 or not ctx.output_names[1] or ctx.opset >= 10:
        return ctx.emit("Dropout", [x], num_outputs=len(ctx.output_names))
    y, mask = ctx.emit("Dropout", [x], num_outputs=2, final=False)
    return [ctx.final("Identity", y)[0], ctx.emit("Cast", [mask], {"to": x.type.dtype.onnx}, first=1)[0]]


direct_from("Dropout", 12)


# BatchNormalization ---------------------------------------------------------


@converter("BatchNormalization", 1)
def batchnorm_v1(ctx: ConvertContext) -> list[Value]:
    """BatchNormalization-1..7 had is_test and spatial; spatial=0 keeps a scale,
    bias, mean and variance per activation (shape [C, D1, ...]), computed here
    as x * a + b with a = scale / sqrt(var + eps), b = bias - mean * a."""
    if sum(1 for n in ctx.output_names if n) > 1:
        raise ctx.error("training outputs are not supported")
    x, scale, bias, mean, var = ctx.inputs[:5]
    eps = ctx.attrs.get("epsilon", 1e-5)
    if ctx.attrs.get("spatial", 1):
        return ctx.final("BatchNormalization", x, scale, bias, mean, var, epsilon=eps)
    dtype = x.type.dtype.numpy
    params = [v.const for v in (scale, bias, mean, var)]
    if all(p is not None for p in params):
        s, b, m, v = (np.asarray(p, dtype=np.float64) for p in params)
        a = s / np.sqrt(v + eps)
        return ctx.final("Add", ctx.op("Mul", x, ctx.const(a, "scale", dtype)), ctx.const(b - m * a, "shift", dtype))
    std = ctx.op("Sqrt", ctx.op("Add", var, ctx.const(eps, "eps", dtype)))
    normed = ctx.op("Div", ctx.op("Sub", x, mean), std)
    return ctx.final("Add", ctx.op("Mul", normed, scale), bias)


direct_from("BatchNormalization", 9)


# Gemm ----------------------------------------------------------------------


@converter("Gemm", 1)
def gemm_v6(ctx: ConvertContext) -> list[Value]:
    """Gemm-1..6 required `broadcast=1` for C to broadcast; from 7 it always does."""
    attrs = {k: v for k, v in ctx.attrs.items() if k != "broadcast"}
    return ctx.emit("Gemm", ctx.inputs, attrs)


direct_from("Gemm", 7)


# GroupNormalization ---------------------------------------------------------


@converter("GroupNormalization", 18)
def group_norm_v18(ctx: ConvertContext) -> list[Value]:
    """GroupNormalization-18 scaled and shifted per group; from 21 per channel:
    repeat each group's scale and bias over its channels."""
    x, scale, bias = ctx.inputs[:3]
    groups = ctx.attrs["num_groups"]
    channels = x.type.shape[1] if x.type.rank > 1 else None
    if not isinstance(channels, int) or groups <= 0 or channels % groups:
        raise ctx.error(f"needs a static channel count divisible by num_groups, got {x.type} and num_groups={groups}")
    per_channel = [_repeat(ctx, v, channels // groups, groups, hint) for v, hint in ((scale, "scale"), (bias, "bias"))]
    return ctx.emit("GroupNormalization", [x, *per_channel], ctx.attrs)


def _repeat(ctx: ConvertContext, value: Value, times: int, groups: int, hint: str) -> Value:
    if value.const is not None:
        return ctx.const(np.repeat(value.const, times), hint)
    column = ctx.op("Unsqueeze", value, ctx.ints([1], f"{hint}_axis"))
    tiled = ctx.op("Expand", column, ctx.ints([groups, times], f"{hint}_tile"))
    return ctx.op("Reshape", tiled, ctx.ints([groups * times], f"{hint}_shape"))


direct_from("GroupNormalization", 21)


# Arithmetic with legacy broadcasting ---------------------------------------

_LEGACY_BROADCAST = ("Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater", "Less")


def binary_v1(ctx: ConvertContext) -> list[Value]:
    """Before opset 7, B broadcast to A only with broadcast=1, its dims aligned
    with A's starting at `axis` (default: trailing). Trailing 1s make numpy
    broadcasting line them up the same way."""
    a, b = ctx.inputs[:2]
    if ctx.attrs.get("broadcast", 0) and "axis" in ctx.attrs:
        axis = ctx.attrs["axis"] % max(a.type.rank, 1)
        trailing = a.type.rank - axis - b.type.rank
        if trailing < 0:
            raise ctx.error(f"axis {axis} does not fit {a.type} and {b.type}")
        if trailing:
            axes = list(range(b.type.rank, b.type.rank + trailing))
            b = ctx.op("Unsqueeze", b, ctx.ints(axes, "axes"))
    return ctx.final(ctx.op_type, a, b)


for _op in _LEGACY_BROADCAST:
    converter(_op, 1)(binary_v1)
    direct_from(_op, 7)
