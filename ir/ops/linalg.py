"""Matrix products: MatMul, MatMulInteger, Gemm, and Det."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import Dim, dim_prod
from ..dtypes import DType
from ..types import TensorType
from .common import broadcast_shapes, check_same_dtype
from .conv import CONV_TYPES, QUANT_TYPES, compute_dtype
from .registry import Attr, InferContext, OpDef, register

MATMUL_TYPES = frozenset(
    {DType.float16, DType.bfloat16, DType.float32, DType.float64, DType.int32, DType.int64, DType.uint32, DType.uint64}
)


def matmul_shape(ctx: InferContext, a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """numpy.matmul shape rule: 1-D operands gain and lose a unit dim; batches broadcast."""
    if not a or not b:
        raise ctx.error("operands must have rank >= 1")
    a2 = a if len(a) > 1 else (1, *a)
    b2 = b if len(b) > 1 else (*b, 1)
    k_a, k_b = a2[-1], b2[-2]
    if isinstance(k_a, int) and isinstance(k_b, int) and k_a != k_b:
        raise ctx.error(f"inner dimensions differ: {list(a)} @ {list(b)}")
    batch = broadcast_shapes(ctx, a2[:-2], b2[:-2])
    return (*batch, *a[-2:-1], *(b[-1:] if len(b) > 1 else ()))


def _contracted(ins: list[TensorType | None]) -> Dim:
    assert ins[0] is not None
    return ins[0].shape[-1]


def matmul_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    """2 * multiply-accumulates."""
    return dim_prod([2, outs[0].numel, _contracted(ins)])


def accumulator(dtype: np.dtype) -> np.dtype:
    """Arithmetic type for a product: float32 at least for floats, the type itself for ints."""
    return compute_dtype(dtype) if DType.from_numpy(dtype).is_float else dtype


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b, accumulated per `accumulator`; the result has a's dtype."""
    ct = accumulator(a.dtype)
    return np.matmul(a.astype(ct, copy=False), b.astype(ct, copy=False)).astype(a.dtype, copy=False)


def _matmul_infer(ctx: InferContext) -> list[TensorType]:
    dtype = check_same_dtype(ctx, 0, 1)
    return [TensorType(dtype, matmul_shape(ctx, ctx.input(0).shape, ctx.input(1).shape))]


MatMul = register(
    OpDef(
        "MatMul",
        _matmul_infer,
        lambda inputs, attrs: [matmul(inputs[0], inputs[1])],  # type: ignore[arg-type]
        inputs=(2, 2),
        dtypes=MATMUL_TYPES,
        kind="contraction",
        flops=matmul_flops,
        doc="Matrix product with numpy.matmul semantics (1-D operands, broadcast batches).",
    )
)


def _matmul_integer_infer(ctx: InferContext) -> list[TensorType]:
    a, b = ctx.input(0), ctx.input(1)
    if b.dtype not in QUANT_TYPES:
        raise ctx.error(f"B must be int8 or uint8, got {b.dtype.name}")
    for zp, operand, along in ((2, a, -2), (3, b, -1)):
        if not ctx.has(zp):
            continue
        z = ctx.input(zp)
        if z.dtype != operand.dtype:
            raise ctx.error(f"zero point {zp} must be {operand.dtype.name}, got {z.dtype.name}")
        if z.rank > 1 or (z.rank == 1 and operand.rank > 1 and z.shape[0] not in (1, operand.shape[along])):
            raise ctx.error(f"zero point {zp} of shape {list(z.shape)} must be a scalar or one value per row/column")
    return [TensorType(DType.int32, matmul_shape(ctx, a.shape, b.shape))]


def _matmul_integer_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    a, b = (x.astype(np.float64) for x in inputs[:2])  # type: ignore[union-attr]
    if len(inputs) > 2 and inputs[2] is not None:
        za = inputs[2].astype(np.float64)
        a -= za.reshape(-1, 1) if za.ndim == 1 and a.ndim > 1 else za
    if len(inputs) > 3 and inputs[3] is not None:
        b -= inputs[3].astype(np.float64)
    return [np.rint(np.matmul(a, b)).astype(np.int32)]


MatMulInteger = register(
    OpDef(
        "MatMulInteger",
        _matmul_integer_infer,
        _matmul_integer_reference,
        inputs=(2, 4),
        dtypes=QUANT_TYPES,
        kind="contraction",
        flops=matmul_flops,
        doc="Matrix product of 8-bit integers minus their zero points, accumulated in int32.",
    )
)


def _gemm_infer(ctx: InferContext) -> list[TensorType]:
    dtype = check_same_dtype(ctx, 0, 1, 2)
    a, b = ctx.input(0).shape, ctx.input(1).shape
    if len(a) != 2 or len(b) != 2:
        raise ctx.error("A and B must be matrices")
    m, k_a = a[::-1] if ctx.attrs["transA"] else a
    k_b, n = b[::-1] if ctx.attrs["transB"] else b
    if isinstance(k_a, int) and isinstance(k_b, int) and k_a != k_b:
        raise ctx.error(f"inner dimensions differ: {k_a} != {k_b} (transA={ctx.attrs['transA']})")
    if ctx.has(2):
        c = ctx.input(2).shape
        if len(c) > 2 or broadcast_shapes(ctx, c, (m, n)) != (m, n):
            raise ctx.error(f"C of shape {list(c)} does not broadcast to [{m}, {n}]")
    return [TensorType(dtype, (m, n))]


def _gemm_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    a, b = inputs[0], inputs[1]
    assert a is not None and b is not None
    ct = accumulator(a.dtype)
    y = np.matmul((a.T if attrs["transA"] else a).astype(ct), (b.T if attrs["transB"] else b).astype(ct))
    if attrs["alpha"] != 1.0:
        y = y * np.asarray(attrs["alpha"], ct)
    if len(inputs) > 2 and inputs[2] is not None:
        c = inputs[2].astype(ct)
        y = y + (c if attrs["beta"] == 1.0 else c * np.asarray(attrs["beta"], ct))
    return [y.astype(a.dtype, copy=False)]


def _gemm_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    assert ins[0] is not None
    return dim_prod([2, outs[0].numel, ins[0].shape[0 if attrs["transA"] else 1]])


Gemm = register(
    OpDef(
        "Gemm",
        _gemm_infer,
        _gemm_reference,
        attrs={
            "alpha": Attr("float", 1.0),
            "beta": Attr("float", 1.0),
            "transA": Attr("int", 0, (0, 1)),
            "transB": Attr("int", 0, (0, 1)),
        },
        inputs=(2, 3),
        dtypes=MATMUL_TYPES,
        kind="contraction",
        flops=_gemm_flops,
        doc="alpha * op(A) @ op(B) + beta * C, where op optionally transposes and C broadcasts.",
    )
)


def _det_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.input(0)
    if x.rank < 2:
        raise ctx.error("input must have rank >= 2")
    rows, cols = x.shape[-2:]
    if isinstance(rows, int) and isinstance(cols, int) and rows != cols:
        raise ctx.error(f"matrices of shape [{rows}, {cols}] are not square")
    return [TensorType(x.dtype, x.shape[:-2])]


def _det_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    (x,) = inputs
    assert x is not None
    return [np.asarray(np.linalg.det(x.astype(np.float64))).astype(x.dtype)]


Det = register(
    OpDef(
        "Det",
        _det_infer,
        _det_reference,
        dtypes=CONV_TYPES,
        kind="other",
        flops=lambda ins, outs, attrs: dim_prod([ins[0].numel, ins[0].shape[-1]]),  # type: ignore[union-attr]
        doc="Determinant of each square matrix in the last two axes.",
    )
)
