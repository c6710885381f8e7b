"""Reductions (opset-18 form: axes as an optional input), ArgMax/ArgMin,
TopK and CumSum.

Float reductions are computed in float64 and rounded once to the input type,
so they are the accurate reference that kernels are measured against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..dims import Dim, dim_prod
from ..dtypes import DType
from ..types import TensorType
from .common import norm_axes, norm_axis
from .registry import Attr, InferContext, OpDef, register
from .symbolic import input_sym, int_values, optional, small, vector_length

SUM_TYPES = frozenset(
    {DType.uint32, DType.uint64, DType.int32, DType.int64, DType.float16, DType.float32, DType.float64, DType.bfloat16}
)
MINMAX_TYPES = SUM_TYPES | {DType.uint8, DType.int8, DType.bool}
FLOAT_ONLY = frozenset({DType.float16, DType.float32, DType.float64, DType.bfloat16})
SORTABLE = frozenset(d for d in DType if d is not DType.bool)


def _input_numel(ins: list[TensorType | None], outs: list[TensorType], attrs: dict) -> Dim:
    return ins[0].numel  # type: ignore[union-attr]


def _reduced_axes(ctx: InferContext) -> list[int] | None:
    """Axes reduced (possibly none), or None when the axes input is unknown."""
    rank = ctx.input(0).rank
    if not ctx.has(1) or vector_length(ctx, 1, "axes") == 0:
        return [] if ctx.attrs["noop_with_empty_axes"] else list(range(rank))
    axes = int_values(ctx, 1)
    return None if axes is None else norm_axes(ctx, axes, rank)


def _reduce_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    axes = _reduced_axes(ctx)
    keep = ctx.attrs["keepdims"]
    if axes is None:
        n = vector_length(ctx, 1, "axes")
        if keep:
            return [t.with_shape([1 if d == 1 else ctx.fresh() for d in t.shape])]
        return [t.with_shape([ctx.fresh() for _ in range(t.rank - n)])]
    if keep:
        return [t.with_shape([1 if i in axes else d for i, d in enumerate(t.shape)])]
    return [t.with_shape([d for i, d in enumerate(t.shape) if i not in axes])]


def _ref_axes(inputs, attrs) -> tuple[int, ...]:
    """Reduced axes for the reference. Reducing over no axes still applies the
    per-element part (ReduceL1 gives |x|, ReduceSumSquare x*x), as ONNX's reference."""
    x, axes = inputs[0], optional(inputs, 1)
    if axes is None or axes.size == 0:
        return () if attrs["noop_with_empty_axes"] else tuple(range(x.ndim))
    return tuple(int(a) % x.ndim for a in axes)


def reduction(
    name: str, fn: Callable[[np.ndarray, tuple[int, ...]], np.ndarray], dtypes, doc: str, propagate=None
) -> OpDef:
    """A reduction op; `fn(x, axes)` reduces with keepdims=True (floats arrive as float64)."""

    def reference(inputs, attrs):
        x = inputs[0]
        axes = _ref_axes(inputs, attrs)
        wide = x.astype(np.float64) if x.dtype.kind == "f" or x.dtype == DType.bfloat16.numpy else x
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = np.asarray(fn(wide, axes)).astype(x.dtype)
        return [out if attrs["keepdims"] else out.reshape([d for i, d in enumerate(out.shape) if i not in axes])]

    return register(
        OpDef(
            name,
            _reduce_infer,
            reference,
            attrs={"keepdims": Attr("int", 1, (0, 1)), "noop_with_empty_axes": Attr("int", 0, (0, 1))},
            inputs=(1, 2),
            dtypes=frozenset(dtypes),
            kind="reduction",
            propagate=propagate,
            flops=_input_numel,
            doc=doc,
        )
    )


def _reduce_prod_propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    """The product of a shape vector (e.g. the element count of a reshape target)."""
    sym = input_sym(ctx, 0)
    if sym is None or _reduced_axes(ctx) != list(range(ctx.input(0).rank)):
        return [None]
    return [small(_reduce_infer(ctx)[0], [dim_prod(sym)])]


def _sum(x, axes):
    return np.sum(x, axis=axes, keepdims=True, dtype=x.dtype)


def _extreme(fn, lowest: bool):
    def reduce(x, axes):
        if x.size == 0:  # ORT fills an empty reduction with the type's lowest (highest) value
            if x.dtype == bool:
                value = not lowest
            elif x.dtype.kind == "f":
                value = -np.inf if lowest else np.inf
            else:
                value = np.iinfo(x.dtype).min if lowest else np.iinfo(x.dtype).max
            return np.full([1 if i in axes else d for i, d in enumerate(x.shape)], value, x.dtype)
        return fn(x, axis=axes, keepdims=True)

    return reduce


def _logsumexp(x, axes):
    peak = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return np.log(np.sum(np.exp(x - peak), axis=axes, keepdims=True)) + peak


def _mean(x, axes):
    count = int(np.prod([x.shape[a] for a in axes]))
    total = _sum(x, axes)
    if count == 0:
        return np.zeros_like(total)  # as ONNX Runtime
    if x.dtype.kind in "fu":
        return total / count if x.dtype.kind == "f" else total // count
    return np.where(total < 0, -(-total // count), total // count)  # integer division truncates


reduction("ReduceSum", _sum, SUM_TYPES, "Sum over `axes`.")
reduction("ReduceMean", _mean, SUM_TYPES, "Mean over `axes` (integer means truncate toward zero).")
reduction("ReduceMax", _extreme(np.max, lowest=True), MINMAX_TYPES, "Maximum over `axes`.")
reduction("ReduceMin", _extreme(np.min, lowest=False), MINMAX_TYPES, "Minimum over `axes`.")
reduction(
    "ReduceProd",
    lambda x, a: np.prod(x, axis=a, keepdims=True, dtype=x.dtype),
    SUM_TYPES,
    "Product over `axes`.",
    propagate=_reduce_prod_propagate,
)
reduction("ReduceL1", lambda x, a: _sum(np.abs(x), a), SUM_TYPES, "Sum of absolute values.")
reduction("ReduceL2", lambda x, a: np.sqrt(_sum(x * x, a)), SUM_TYPES, "Square root of the sum of squares.")
reduction("ReduceSumSquare", lambda x, a: _sum(x * x, a), SUM_TYPES, "Sum of squares.")
reduction("ReduceLogSum", lambda x, a: np.log(_sum(x, a)), FLOAT_ONLY, "Log of the sum.")
reduction("ReduceLogSumExp", _logsumexp, FLOAT_ONLY, "Log of the sum of exponentials (max-shifted).")


# ArgMax / ArgMin ------------------------------------------------------------


def _arg_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    axis = norm_axis(ctx, ctx.attrs["axis"], t.rank)
    if t.shape[axis] == 0:
        raise ctx.error(f"cannot take the arg-extreme of an empty axis {axis}")
    keep = ctx.attrs["keepdims"]
    dims = [1 if i == axis else d for i, d in enumerate(t.shape)] if keep else [*t.shape[:axis], *t.shape[axis + 1 :]]
    return [TensorType(DType.int64, dims)]


def arg_extreme(name: str, fn) -> OpDef:
    def reference(inputs, attrs):
        x = inputs[0]
        axis = attrs["axis"] % x.ndim
        if attrs["select_last_index"]:
            found = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis, keepdims=True)
        else:
            found = fn(x, axis=axis, keepdims=True)
        found = found.astype(np.int64)
        return [found if attrs["keepdims"] else found.squeeze(axis)]

    return register(
        OpDef(
            name,
            _arg_infer,
            reference,
            attrs={
                "axis": Attr("int", 0),
                "keepdims": Attr("int", 1, (0, 1)),
                "select_last_index": Attr("int", 0, (0, 1)),
            },
            dtypes=SORTABLE,
            kind="reduction",
            flops=_input_numel,
            doc=f"Index (int64) of the {name[3:].lower()} along `axis`; first occurrence unless select_last_index.",
        )
    )


arg_extreme("ArgMax", np.argmax)
arg_extreme("ArgMin", np.argmin)


# TopK ---------------------------------------------------------------------


def _topk_infer(ctx: InferContext) -> list[TensorType]:
    t, kt = ctx.input(0), ctx.input(1)
    if kt.dtype is not DType.int64 or kt.numel != 1:
        raise ctx.error("K must be a one-element int64 tensor")
    axis = norm_axis(ctx, ctx.attrs["axis"], t.rank)
    known = ctx.values(1)
    k: Dim = known[0] if known is not None else ctx.fresh("k")
    dim = t.shape[axis]
    if isinstance(k, int) and (k < 0 or (isinstance(dim, int) and k > dim)):
        raise ctx.error(f"K={k} is out of range for axis {axis} of size {dim}")
    shape = [k if i == axis else d for i, d in enumerate(t.shape)]
    return [t.with_shape(shape), TensorType(DType.int64, shape)]


def _topk_ref(inputs, attrs):
    x, k = inputs[0], int(inputs[1].reshape(-1)[0])
    axis = attrs["axis"] % x.ndim
    n = x.shape[axis]
    if attrs["largest"]:
        # stable ascending order of the reversed axis, reversed: descending values, ties by lower index
        order = n - 1 - np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    order = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, order, axis), order.astype(np.int64)]


register(
    OpDef(
        "TopK",
        _topk_infer,
        _topk_ref,
        attrs={"axis": Attr("int", -1), "largest": Attr("int", 1, (0, 1)), "sorted": Attr("int", 1, (0, 1))},
        inputs=(2, 2),
        outputs=(2, 2),
        dtypes=SORTABLE,
        flops=_input_numel,
        doc="The K largest (smallest) values along `axis` and their int64 indices, sorted; ties: lower index first.",
    )
)


# CumSum -------------------------------------------------------------------


def _cumsum_infer(ctx: InferContext) -> list[TensorType]:
    t, at = ctx.input(0), ctx.input(1)
    if at.dtype not in (DType.int32, DType.int64) or at.numel != 1:
        raise ctx.error("axis must be a one-element int32 or int64 tensor")
    axis = int_values(ctx, 1)
    if axis is not None:
        norm_axis(ctx, axis[0], t.rank)
    return [t]


def _cumsum_ref(inputs, attrs):
    x = inputs[0]
    axis = int(inputs[1].reshape(-1)[0]) % x.ndim
    y = np.flip(x, axis) if attrs["reverse"] else x
    total = np.cumsum(y, axis=axis, dtype=x.dtype)
    if attrs["exclusive"] and x.shape[axis]:
        zero = np.zeros_like(np.take(total, [0], axis=axis))
        total = np.concatenate([zero, np.take(total, np.arange(x.shape[axis] - 1), axis=axis)], axis=axis)
    return [np.ascontiguousarray(np.flip(total, axis) if attrs["reverse"] else total)]


register(
    OpDef(
        "CumSum",
        _cumsum_infer,
        _cumsum_ref,
        attrs={"exclusive": Attr("int", 0, (0, 1)), "reverse": Attr("int", 0, (0, 1))},
        inputs=(2, 2),
        dtypes=SUM_TYPES,
        flops=_input_numel,
        doc="Running sum along `axis` (exclusive: shifted by one; reverse: from the end).",
    )
)
