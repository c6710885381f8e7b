"""Elementwise ops: the `unary`/`binary`/`variadic` factories and the binary ops
(arithmetic, comparisons, logic, bitwise), Pow, Where.

Float semantics: an op computes in a working precision and rounds once to its
element type: float32 for float16/bfloat16/float32, float64 for float64, and
float64 throughout for `precise` ops (transcendental functions). A single
IEEE operation (+, -, *, /, sqrt) rounded this way equals the native result.
Integer arithmetic wraps around; integer division truncates toward zero and
x / 0, x % 0 give 0 (undefined in ONNX; onnxruntime traps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..dims import dim_mul
from ..dtypes import FLOAT_TYPES, INT_TYPES, NUMERIC_TYPES, DType
from ..types import TensorType
from .cast import convert, is_float_array
from .common import broadcast_infer, broadcast_shapes, check_same_dtype, output_numel_flops
from .contents import (
    ScalarFn,
    contents,
    fold,
    ints,
    sym_add,
    sym_compare,
    sym_div,
    sym_equal,
    sym_max,
    sym_min,
    sym_mul,
    sym_sub,
)
from .registry import Attr, FlopsFn, InferContext, OpDef, register

BOOL = frozenset({DType.bool})
SIGNED_TYPES = frozenset(d for d in NUMERIC_TYPES if d.is_signed)


def working(x: np.ndarray, precise: bool = False) -> np.ndarray:
    """`x` in the precision an op computes in (see the module docstring); non-floats unchanged."""
    if not is_float_array(x):
        return x
    if precise or x.dtype == np.float64:
        return x.astype(np.float64, copy=False)
    return x.astype(np.float32, copy=False)


def finish(y: Any, dtype: DType) -> np.ndarray:
    """Round a working-precision result to the op's element type."""
    return convert(np.asarray(y), dtype)


def cost_flops(cost: int) -> FlopsFn:
    """`cost` operations per output element."""
    if cost == 1:
        return output_numel_flops
    return lambda ins, outs, attrs: dim_mul(outs[0].numel, cost)


# Factories ---------------------------------------------------------------------


def unary(
    name: str,
    fn: Callable[..., Any],
    dtypes=NUMERIC_TYPES,
    *,
    out: DType | None = None,
    attrs: dict[str, Attr] | None = None,
    precise: bool = False,
    sym: ScalarFn | None = None,
    cost: int = 1,
    doc: str = "",
) -> OpDef:
    """An elementwise op of one input: ``y = fn(x, **attrs)``; `out` fixes the output element type."""

    def infer(ctx: InferContext) -> list[TensorType]:
        t = ctx.input(0)
        return [t.with_dtype(out) if out else t]

    def reference(inputs, attrs):
        (x,) = inputs
        with np.errstate(all="ignore"):
            y = fn(working(x, precise), **attrs)
        return [finish(y, out or DType.from_numpy(x.dtype))]

    return register(
        OpDef(
            name,
            infer,
            reference,
            attrs=attrs or {},
            dtypes=frozenset(dtypes),
            kind="elementwise",
            propagate=contents(sym) if sym else None,
            flops=cost_flops(cost),
            doc=doc,
        )
    )


def binary(
    name: str,
    fn: Callable[..., Any],
    dtypes=NUMERIC_TYPES,
    *,
    out: DType | None = None,
    attrs: dict[str, Attr] | None = None,
    precise: bool = False,
    sym: ScalarFn | None = None,
    cost: int = 1,
    doc: str = "",
) -> OpDef:
    """A broadcasting op of two inputs of one element type: ``y = fn(a, b, **attrs)``."""

    def infer(ctx: InferContext) -> list[TensorType]:
        check_same_dtype(ctx, 0, 1)
        return broadcast_infer(out)(ctx)

    def reference(inputs, attrs):
        a, b = inputs
        with np.errstate(all="ignore"):
            y = fn(working(a, precise), working(b, precise), **attrs)
        return [finish(y, out or DType.from_numpy(a.dtype))]

    return register(
        OpDef(
            name,
            infer,
            reference,
            attrs=attrs or {},
            inputs=(2, 2),
            dtypes=frozenset(dtypes),
            kind="elementwise",
            propagate=contents(sym) if sym else None,
            flops=cost_flops(cost),
            doc=doc,
        )
    )


def variadic(
    name: str,
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    dtypes,
    *,
    mean: bool = False,
    sym: ScalarFn | None = None,
) -> OpDef:
    """A broadcasting op folding one or more inputs left to right in the working precision
    (`mean` then multiplies by 1/n, as onnxruntime does), rounded once."""

    def infer(ctx: InferContext) -> list[TensorType]:
        check_same_dtype(ctx, *range(len(ctx.types)))
        return broadcast_infer()(ctx)

    def reference(inputs, attrs):
        dtype = DType.from_numpy(inputs[0].dtype)
        shape = np.broadcast_shapes(*(x.shape for x in inputs))
        acc = working(inputs[0])
        with np.errstate(all="ignore"):
            for x in inputs[1:]:
                acc = fn(acc, working(x))
            if mean:
                acc = acc * acc.dtype.type(1 / len(inputs))
        return [np.broadcast_to(finish(acc, dtype), shape)]

    def flops(ins, outs, attrs):
        return dim_mul(outs[0].numel, max(len(ins) - 1 + mean, 0))

    return register(
        OpDef(
            name,
            infer,
            reference,
            inputs=(1, -1),
            dtypes=frozenset(dtypes),
            kind="elementwise",
            propagate=contents(fold(sym)) if sym else None,
            flops=flops,
        )
    )


# Arithmetic ----------------------------------------------------------------------


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if is_float_array(a):
        return a / b
    q = a // b  # floor; truncate toward zero instead
    return np.where((q < 0) & (q * b != a), q + 1, q)


def _mod(a: np.ndarray, b: np.ndarray, fmod: int) -> np.ndarray:
    return np.fmod(a, b) if fmod else np.mod(a, b)


def _bitshift(x: np.ndarray, y: np.ndarray, direction: str) -> np.ndarray:
    bits = x.dtype.itemsize * 8
    valid = (y >= 0) & (y < bits)
    y = np.where(valid, y, 0)
    if direction == "LEFT":
        return np.where(valid, np.left_shift(x, y), 0)
    fill = np.where(x < 0, -1, 0) if x.dtype.kind == "i" else 0
    return np.where(valid, np.right_shift(x, y), fill)


binary("Add", np.add, sym=sym_add)
binary("Sub", np.subtract, sym=sym_sub)
binary("Mul", np.multiply, sym=sym_mul)
binary("Div", _divide, sym=sym_div, doc="Integer division truncates toward zero.")
binary(
    "Mod",
    _mod,
    attrs={"fmod": Attr("int", 0, (0, 1))},
    doc="fmod=0: sign of the divisor (floor); fmod=1: sign of the dividend (C fmod).",
)
binary(
    "BitShift",
    _bitshift,
    INT_TYPES,
    attrs={"direction": Attr("string", choices=("LEFT", "RIGHT"))},
    doc="Signed right shifts are arithmetic; shifts outside [0, bits) give the sign fill (0 or -1).",
)
binary("BitwiseAnd", np.bitwise_and, INT_TYPES)
binary("BitwiseOr", np.bitwise_or, INT_TYPES)
binary("BitwiseXor", np.bitwise_xor, INT_TYPES)

variadic("Max", np.maximum, NUMERIC_TYPES, sym=sym_max)
variadic("Min", np.minimum, NUMERIC_TYPES, sym=sym_min)
variadic("Sum", np.add, FLOAT_TYPES)
variadic("Mean", np.add, FLOAT_TYPES, mean=True)

# Comparisons and logic -------------------------------------------------------------

binary("Equal", np.equal, NUMERIC_TYPES | BOOL, out=DType.bool, sym=sym_equal)
binary("Less", np.less, out=DType.bool, sym=sym_compare(lambda a, b: a < b))
binary("LessOrEqual", np.less_equal, out=DType.bool, sym=sym_compare(lambda a, b: a <= b))
binary("Greater", np.greater, out=DType.bool, sym=sym_compare(lambda a, b: a > b))
binary("GreaterOrEqual", np.greater_equal, out=DType.bool, sym=sym_compare(lambda a, b: a >= b))
binary("And", np.logical_and, BOOL, sym=ints(lambda a, b: int(bool(a and b))))
binary("Or", np.logical_or, BOOL, sym=ints(lambda a, b: int(bool(a or b))))
binary("Xor", np.logical_xor, BOOL, sym=ints(lambda a, b: int(bool(a) != bool(b))))


# Pow -----------------------------------------------------------------------------------


def _pow_infer(ctx: InferContext) -> list[TensorType]:
    exponent = ctx.input(1).dtype
    if exponent not in NUMERIC_TYPES:
        raise ctx.error(f"exponent element type {exponent.name} is not numeric")
    return broadcast_infer()(ctx)


def _pow_reference(inputs, attrs):
    x, y = inputs
    with np.errstate(all="ignore"):
        z = np.power(x.astype(np.float64), y.astype(np.float64))
    return [finish(z, DType.from_numpy(x.dtype))]


register(
    OpDef(
        "Pow",
        _pow_infer,
        _pow_reference,
        inputs=(2, 2),
        dtypes=frozenset({DType.int32, DType.int64} | FLOAT_TYPES),
        kind="elementwise",
        flops=output_numel_flops,
        doc="x ** y with y of any numeric type, computed in float64 and converted to x's type "
        "(integer results truncate, as onnxruntime's pow does).",
    )
)


# Where ---------------------------------------------------------------------------------


def _where_infer(ctx: InferContext) -> list[TensorType]:
    dtype = check_same_dtype(ctx, 1, 2)
    return [TensorType(dtype, broadcast_shapes(ctx, *(ctx.input(i).shape for i in range(3))))]


def _where_reference(inputs, attrs):
    cond, x, y = inputs
    return [np.where(cond, x, y)]


register(
    OpDef(
        "Where",
        _where_infer,
        _where_reference,
        inputs=(3, 3),
        dtypes=BOOL,
        kind="elementwise",
        propagate=contents(lambda c, x, y: x if c else y),
        flops=output_numel_flops,
        doc="condition ? X : Y, broadcasting all three.",
    )
)
