"""Ops that generate tensors: Constant, ConstantOfShape, Range, EyeLike, OneHot."""

from __future__ import annotations

import math

import numpy as np

from ..dims import Dim, dim_sub, is_static
from ..dtypes import ALL_TYPES, NUMERIC_TYPES, DType
from ..types import TensorType
from .common import norm_axis
from .registry import Attr, InferContext, OpDef, register
from .symbolic import shape_from_input, small

# Constant -----------------------------------------------------------------

_CONSTANT_ATTRS = {
    "value": lambda v: np.asarray(v),
    "value_float": lambda v: np.array(v, dtype=np.float32),
    "value_floats": lambda v: np.array(v, dtype=np.float32).reshape(-1),
    "value_int": lambda v: np.array(v, dtype=np.int64),
    "value_ints": lambda v: np.array(v, dtype=np.int64).reshape(-1),
}


def constant_value(attrs: dict) -> np.ndarray | None:
    """The tensor a Constant node holds, or None if not exactly one value attribute is set."""
    given = [name for name in _CONSTANT_ATTRS if attrs.get(name) is not None]
    return _CONSTANT_ATTRS[given[0]](attrs[given[0]]) if len(given) == 1 else None


def _constant_infer(ctx: InferContext) -> list[TensorType]:
    value = constant_value(ctx.attrs)
    if value is None:
        raise ctx.error(f"needs exactly one of the attributes {sorted(_CONSTANT_ATTRS)}")
    try:
        return [TensorType(DType.from_numpy(value.dtype), value.shape)]
    except TypeError as err:
        raise ctx.error(str(err)) from None


def _constant_propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    value = constant_value(ctx.attrs)
    out = _constant_infer(ctx)[0]
    return [small(out, [int(v) for v in value.reshape(-1)]) if out.dtype.is_int and out.rank <= 1 else None]


register(
    OpDef(
        "Constant",
        _constant_infer,
        lambda inputs, attrs: [constant_value(attrs)],
        attrs={
            "value": Attr("tensor", None),
            "value_float": Attr("float", None),
            "value_floats": Attr("floats", None),
            "value_int": Attr("int", None),
            "value_ints": Attr("ints", None),
        },
        inputs=(0, 0),
        propagate=_constant_propagate,
        doc="A constant tensor given by one value attribute (float ones are f32, int ones i64).",
    )
)


# ConstantOfShape ------------------------------------------------------------


def _fill_value(attrs: dict) -> np.ndarray:
    value = attrs["value"]
    return np.zeros((), np.float32) if value is None else np.asarray(value).reshape(-1)[0:1].reshape(())


def _cos_infer(ctx: InferContext) -> list[TensorType]:
    value = ctx.attrs["value"]
    if value is not None and np.asarray(value).size != 1:
        raise ctx.error("value must hold exactly one element")
    if ctx.input(0).dtype is not DType.int64:
        raise ctx.error("the shape input must be int64")
    return [TensorType(DType.from_numpy(_fill_value(ctx.attrs).dtype), tuple(shape_from_input(ctx, 0)))]


def _cos_propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    out = _cos_infer(ctx)[0]
    if not out.dtype.is_int or out.rank > 1 or not is_static(out.shape):
        return [None]
    n = out.shape[0] if out.rank else 1
    return [small(out, [int(_fill_value(ctx.attrs))] * n)]  # type: ignore[operator]


register(
    OpDef(
        "ConstantOfShape",
        _cos_infer,
        lambda inputs, attrs: [np.full([int(d) for d in inputs[0]], _fill_value(attrs))],
        attrs={"value": Attr("tensor", None)},
        propagate=_cos_propagate,
        doc="A tensor of the input shape filled with `value` (a one-element tensor; float32 0 by default).",
    )
)


# Range --------------------------------------------------------------------

RANGE_TYPES = frozenset(
    {DType.float16, DType.bfloat16, DType.float32, DType.float64, DType.int16, DType.int32, DType.int64}
)


def _range_compute_dtype(dtype: np.dtype, stash_type: int) -> np.dtype:
    low = dtype in (DType.float16.numpy, DType.bfloat16.numpy)
    return np.dtype(np.float32) if low and stash_type == 1 else dtype


def range_length(start, limit, delta) -> int:
    """max(ceil((limit - start) / delta), 0), computed like ONNX Runtime (in double)."""
    if delta == 0:
        raise ValueError("Range delta must be non-zero")
    return max(math.ceil((float(limit) - float(start)) / float(delta)), 0)


def _range_infer(ctx: InferContext) -> list[TensorType]:
    dtype = ctx.input(0).dtype
    for i in range(3):
        t = ctx.input(i)
        if t.dtype is not dtype or t.numel != 1:
            raise ctx.error("start, limit and delta must be scalars of one type")
    consts = [ctx.const(i) for i in range(3)]
    if all(c is not None for c in consts):
        try:
            return [TensorType(dtype, (range_length(*(c.reshape(()) for c in consts)),))]  # type: ignore[union-attr]
        except ValueError as err:
            raise ctx.error(str(err)) from None
    start, limit, delta = (ctx.values(i) if dtype.is_int else None for i in range(3))
    if start is not None and limit is not None and delta == [1]:
        length = dim_sub(limit[0], start[0])
        return [TensorType(dtype, (length if not isinstance(length, int) else max(length, 0),))]
    return [TensorType(dtype, (ctx.fresh(),))]


def _range_ref(inputs, attrs):
    start, limit, delta = (x.reshape(()) for x in inputs)
    compute = _range_compute_dtype(start.dtype, attrs["stash_type"])
    n = range_length(start, limit, delta)
    steps = np.arange(n, dtype=compute)
    return [(start.astype(compute) + steps * delta.astype(compute)).astype(start.dtype)]


def _range_propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    out = _range_infer(ctx)[0]
    values = [ctx.values(i) for i in range(3)]
    if not out.dtype.is_int or any(v is None or not isinstance(v[0], int) for v in values) or values[2] == [0]:
        return [None]
    start, limit, delta = (v[0] for v in values)  # type: ignore[index]
    return [small(out, range(start, limit, delta))]  # type: ignore[arg-type]  # a range: len() is O(1)


register(
    OpDef(
        "Range",
        _range_infer,
        _range_ref,
        attrs={"stash_type": Attr("int", 1, (0, 1))},
        inputs=(3, 3),
        dtypes=RANGE_TYPES,
        propagate=_range_propagate,
        doc="start + i * delta for i < ceil((limit - start) / delta); f16/bf16 computed in f32 by default.",
    )
)


# EyeLike / OneHot -----------------------------------------------------------


def _eyelike_dtype(ctx_dtype: DType, attrs: dict) -> DType:
    return ctx_dtype if attrs["dtype"] is None else DType.from_onnx(attrs["dtype"])


def _eyelike_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    if t.rank != 2:
        raise ctx.error("expects a 2-D input")
    try:
        return [TensorType(_eyelike_dtype(t.dtype, ctx.attrs), t.shape)]
    except TypeError as err:
        raise ctx.error(str(err)) from None


def _eyelike_ref(inputs, attrs):
    x = inputs[0]
    dtype = _eyelike_dtype(DType.from_numpy(x.dtype), attrs).numpy
    return [np.eye(x.shape[0], x.shape[1], attrs["k"], dtype=dtype)]


register(
    OpDef(
        "EyeLike",
        _eyelike_infer,
        _eyelike_ref,
        attrs={"dtype": Attr("int", None), "k": Attr("int", 0)},
        dtypes=ALL_TYPES,
        doc="A 2-D tensor shaped like the input with ones on diagonal k (dtype: an ONNX type code).",
    )
)


def _onehot_infer(ctx: InferContext) -> list[TensorType]:
    idx, depth_t, values = ctx.input(0), ctx.input(1), ctx.input(2)
    if depth_t.numel != 1 or values.rank != 1 or values.shape[0] not in (2, str(values.shape[0])):
        raise ctx.error("depth must hold one value and values must be [off, on]")
    axis = norm_axis(ctx, ctx.attrs["axis"], idx.rank + 1)
    c = ctx.const(1)
    depth: Dim
    if c is not None:
        depth = int(c.reshape(-1)[0])
    else:
        known = ctx.values(1) if depth_t.dtype.is_int else None
        depth = known[0] if known is not None else ctx.fresh("depth")
    if isinstance(depth, int) and depth < 1:
        raise ctx.error(f"depth {depth} must be positive")
    return [values.with_shape([*idx.shape[:axis], depth, *idx.shape[axis:]])]


def _onehot_ref(inputs, attrs):
    idx, depth, values = inputs
    depth = int(depth.reshape(-1)[0])
    idx = idx.astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)
    hot = idx[..., None] == np.arange(depth)
    out = np.where(hot, values[1], values[0]).astype(values.dtype)
    return [np.ascontiguousarray(np.moveaxis(out, -1, attrs["axis"] % out.ndim))]


register(
    OpDef(
        "OneHot",
        _onehot_infer,
        _onehot_ref,
        attrs={"axis": Attr("int", -1)},
        inputs=(3, 3),
        dtypes=NUMERIC_TYPES - {DType.bfloat16},
        doc="values[1] where indices (negative: from depth) equal the position along the new axis, else values[0].",
    )
)
