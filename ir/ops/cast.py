"""Cast and CastLike, and `convert`: the one element-type conversion every op uses.

Conversions follow ONNX; where ONNX leaves a result undefined (a float out of an
integer type's range, NaN to an integer), aic defines it as onnxruntime computes
it on x86-64, so folded constants and compiled code agree with it bit for bit:

- to int32/int64: truncate toward zero; NaN and out-of-range give the type's
  minimum (the x86 ``cvttsd2si`` "integer indefinite" value);
- to int8/int16/uint8/uint16: convert to int32 as above, then keep the low bits;
- to uint32/uint64: values below 2**(n-1) convert as the signed n-bit case, larger
  ones as ``signed(x - 2**(n-1)) ^ 2**(n-1)`` (so NaN gives 2**(n-1)).

The `saturate` and `round_mode` attributes only concern float8 types, which aic
does not have; they are accepted and have no effect.
"""

from __future__ import annotations

import numpy as np

from ..dims import Dim
from ..dtypes import ALL_TYPES, FLOAT_TYPES, DType
from ..types import TensorType
from .registry import Attr, InferContext, OpDef, register
from .symbolic import MAX_SYM

_FLOAT_NUMPY = frozenset(d.numpy for d in FLOAT_TYPES)


def is_float_array(x: np.ndarray) -> bool:
    return x.dtype in _FLOAT_NUMPY


def _truncate_signed(t: np.ndarray, bits: int) -> np.ndarray:
    """Already-truncated float64 values to int64 in the signed `bits` range, or its minimum."""
    low = -(2.0 ** (bits - 1))
    ok = (t >= low) & (t < -low)
    return np.where(ok, np.where(ok, t, 0.0).astype(np.int64), np.int64(low))


def _float_to_int(x: np.ndarray, dtype: DType) -> np.ndarray:
    t = np.trunc(x.astype(np.float64))
    bits = dtype.itemsize * 8
    if dtype in (DType.uint32, DType.uint64):
        half = 2.0 ** (bits - 1)
        low = _truncate_signed(t, bits).astype(dtype.numpy)
        high = _truncate_signed(t - half, bits).astype(dtype.numpy) ^ dtype.numpy.type(half)
        return np.where(t >= half, high, low)
    return _truncate_signed(t, max(bits, 32)).astype(dtype.numpy)


def convert(x: np.ndarray, dtype: DType) -> np.ndarray:
    """`x` as element type `dtype`, with the rules in the module docstring."""
    x = np.asarray(x)
    if x.dtype == dtype.numpy:
        return x
    if dtype is DType.bool:
        return x != 0
    if dtype.is_int and is_float_array(x):
        with np.errstate(invalid="ignore"):
            return _float_to_int(x, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(dtype.numpy)


def _target(ctx: InferContext) -> DType:
    try:
        return DType.from_onnx(ctx.attrs["to"])
    except TypeError:
        raise ctx.error(f"cannot cast to ONNX element type {ctx.attrs['to']}: aic does not support it") from None


def _wrap(v: Dim, dtype: DType) -> Dim | None:
    """An integer or symbolic value cast between integer/bool types (symbols are assumed in range)."""
    if dtype is DType.bool:
        return None if isinstance(v, str) else int(v != 0)
    if isinstance(v, str):
        return v
    bits = dtype.itemsize * 8
    v %= 2**bits
    return v - 2**bits if dtype.is_signed and v >= 2 ** (bits - 1) else v


def _cast_propagate(dtype: DType, ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    """Contents of small integer/bool tensors survive casts between integer and bool types."""
    values = ctx.values(0)
    if values is None or ctx.input(0).dtype.is_float or dtype.is_float or ctx.input(0).rank > 1:
        return [None]
    out = [_wrap(v, dtype) for v in values]
    return [None if len(out) > MAX_SYM or None in out else tuple(out)]  # type: ignore[arg-type]


_FLOAT8_ATTRS = {"saturate": Attr("int", 1), "round_mode": Attr("string", "up", ("up", "down", "nearest"))}

register(
    OpDef(
        "Cast",
        lambda ctx: [ctx.input(0).with_dtype(_target(ctx))],
        lambda inputs, attrs: [convert(inputs[0], DType.from_onnx(attrs["to"]))],
        attrs={"to": Attr("int"), **_FLOAT8_ATTRS},
        dtypes=ALL_TYPES,
        kind="elementwise",
        propagate=lambda ctx: _cast_propagate(_target(ctx), ctx),
        flops=lambda ins, outs, attrs: 0,
        doc="Element type conversion to the ONNX type code `to`.",
    )
)


def _like(ctx: InferContext) -> list[TensorType]:
    return [ctx.input(0).with_dtype(ctx.input(1).dtype)]


register(
    OpDef(
        "CastLike",
        _like,
        lambda inputs, attrs: [convert(inputs[0], DType.from_numpy(inputs[1].dtype))],
        attrs=dict(_FLOAT8_ATTRS),
        inputs=(2, 2),
        dtypes=ALL_TYPES,
        kind="elementwise",
        propagate=lambda ctx: _cast_propagate(ctx.input(1).dtype, ctx),
        flops=lambda ins, outs, attrs: 0,
        doc="Cast to the element type of the second input.",
    )
)


def _bitcast_infer(ctx: InferContext) -> list[TensorType]:
    source, target = ctx.input(0).dtype, _target(ctx)
    if source.itemsize != target.itemsize:
        raise ctx.error(f"cannot reinterpret {source.name} as {target.name}: their bit widths differ")
    return [ctx.input(0).with_dtype(target)]


def _bitcast_reference(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]:
    x, target = np.asarray(inputs[0]), DType.from_onnx(attrs["to"])  # same width: a view of any layout
    if target is DType.bool:  # any nonzero byte reads as true
        return [x.view(np.uint8) != 0]
    return [x.view(target.numpy)]


register(
    OpDef(
        "BitCast",
        _bitcast_infer,
        _bitcast_reference,
        attrs={"to": Attr("int")},
        dtypes=ALL_TYPES,
        kind="elementwise",
        flops=lambda ins, outs, attrs: 0,
        doc="Reinterpret the bits of each element as the ONNX type `to` of the same width.",
    )
)
