"""Converters of TensorFlow's elementwise math, comparisons, casts and reductions."""

from __future__ import annotations

import numpy as np
from aic.ir import DType, Value

from .context import TFContext, converter, register_same
from .tensors import aic_dtype

register_same(
    {
        "Add": "Add",
        "AddV2": "Add",
        "Sub": "Sub",
        "Mul": "Mul",
        "RealDiv": "Div",
        "Div": "Div",
        "Maximum": "Max",
        "Minimum": "Min",
        "Pow": "Pow",
        "Sqrt": "Sqrt",
        "Exp": "Exp",
        "Log": "Log",
        "Neg": "Neg",
        "Abs": "Abs",
        "Floor": "Floor",
        "Ceil": "Ceil",
        "Round": "Round",
        "Sign": "Sign",
        "Sin": "Sin",
        "Cos": "Cos",
        "Tan": "Tan",
        "Erf": "Erf",
        "Reciprocal": "Reciprocal",
        "Inv": "Reciprocal",
        "Relu": "Relu",
        "Elu": "Elu",
        "Selu": "Selu",
        "Sigmoid": "Sigmoid",
        "Tanh": "Tanh",
        "Softplus": "Softplus",
        "Softsign": "Softsign",
        "Swish": "Swish",
        "Equal": "Equal",
        "Less": "Less",
        "LessEqual": "LessOrEqual",
        "Greater": "Greater",
        "GreaterEqual": "GreaterOrEqual",
        "LogicalAnd": "And",
        "LogicalOr": "Or",
        "LogicalNot": "Not",
        "IsNan": "IsNaN",
        "SelectV2": "Where",
        "AddN": "Sum",
    }
)


@converter("Rsqrt")
def convert_rsqrt(ctx: TFContext) -> list[Value]:
    return [ctx.op("Reciprocal", ctx.op("Sqrt", ctx.inputs[0]))]


@converter("Square")
def convert_square(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    return [ctx.op("Mul", x, x)]


@converter("SquaredDifference")
def convert_squared_difference(ctx: TFContext) -> list[Value]:
    d = ctx.op("Sub", *ctx.inputs)
    return [ctx.op("Mul", d, d)]


@converter("Erfc")
def convert_erfc(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    return [ctx.op("Sub", ctx.const(np.ones((), x.type.dtype.numpy), "one"), ctx.op("Erf", x))]


@converter("NotEqual")
def convert_not_equal(ctx: TFContext) -> list[Value]:
    return [ctx.op("Not", ctx.op("Equal", *ctx.inputs))]


@converter("FloorMod")
def convert_floor_mod(ctx: TFContext) -> list[Value]:
    """The remainder with the divisor's sign."""
    x, y = ctx.inputs
    if x.type.dtype.is_float:
        return [ctx.op("Sub", x, ctx.op("Mul", ctx.op("Floor", ctx.op("Div", x, y)), y))]
    return [ctx.op("Mod", x, y, fmod=0)]


@converter("FloorDiv")
def convert_floor_div(ctx: TFContext) -> list[Value]:
    x, y = ctx.inputs
    if x.type.dtype.is_float:
        return [ctx.op("Floor", ctx.op("Div", x, y))]
    return [ctx.op("Div", ctx.op("Sub", x, ctx.op("Mod", x, y, fmod=0)), y)]  # exact division of x - x mod y


@converter("Select")
def convert_select(ctx: TFContext) -> list[Value]:
    """Select: a rank-1 condition picks whole rows of higher-rank operands."""
    c, a, b = ctx.inputs
    if c.type.rank == 1 and a.type.rank > 1:
        c = ctx.op("Reshape", c, ctx.int64([-1] + [1] * (a.type.rank - 1), "shape"))
    return [ctx.op("Where", c, a, b)]


@converter("Cast")
def convert_cast(ctx: TFContext) -> list[Value]:
    return [ctx.cast(ctx.inputs[0], aic_dtype(ctx.attr("DstT"), ctx.where))]


@converter("ClipByValue")
def convert_clip(ctx: TFContext) -> list[Value]:
    x, lo, hi = ctx.inputs
    return [ctx.op("Min", ctx.op("Max", x, lo), hi)]


_REDUCE = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax", "Min": "ReduceMin", "Prod": "ReduceProd"}


@converter(*_REDUCE)
def convert_reduce(ctx: TFContext) -> list[Value]:
    x, axes = ctx.inputs
    keep = int(bool(ctx.attr("keep_dims", False)))
    return [ctx.op(_REDUCE[ctx.op_type], x, ctx.axes(axes), keepdims=keep, noop_with_empty_axes=1)]


@converter("All", "Any")
def convert_all_any(ctx: TFContext) -> list[Value]:
    x, axes = ctx.inputs
    keep = int(bool(ctx.attr("keep_dims", False)))
    op = "ReduceMin" if ctx.op_type == "All" else "ReduceMax"
    y = ctx.op(op, ctx.cast(x, DType.int32), ctx.axes(axes), keepdims=keep, noop_with_empty_axes=1)
    return [ctx.cast(y, DType.bool)]


@converter("ArgMax", "ArgMin")
def convert_arg(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    y = ctx.op(ctx.op_type, x, axis=ctx.ints(1)[0], keepdims=0)
    return [ctx.cast(y, aic_dtype(ctx.attr("output_type", 9), ctx.where))]


@converter("Cumsum", "Cumprod")
def convert_cumulative(ctx: TFContext) -> list[Value]:
    x, axis = ctx.inputs
    op = "CumSum" if ctx.op_type == "Cumsum" else "CumProd"
    flags = {"exclusive": int(ctx.attr("exclusive", False)), "reverse": int(ctx.attr("reverse", False))}
    return [ctx.op(op, x, ctx.axes(axis), **flags)]


@converter("Mod")
def convert_mod(ctx: TFContext) -> list[Value]:
    """Truncated remainder (C fmod)."""
    return [ctx.op("Mod", *ctx.inputs, fmod=1)]
