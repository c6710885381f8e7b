"""Indexing ops: Gather, GatherElements, GatherND, ScatterElements, ScatterND,
Compress, NonZero, Unique. Negative indices count from the end of their axis."""

from __future__ import annotations

import numpy as np

from ..dims import Dim
from ..dtypes import ALL_TYPES, DType
from ..types import TensorType
from .common import check_same_dtype, norm_axis
from .registry import Attr, InferContext, OpDef, register
from .shape import movement
from .symbolic import input_sym, int_values, small

INDEX_TYPES = (DType.int32, DType.int64)
REDUCTIONS = ("none", "add", "mul", "max", "min")


def _check_indices(ctx: InferContext, i: int) -> TensorType:
    t = ctx.input(i)
    if t.dtype not in INDEX_TYPES:
        raise ctx.error(f"indices must be int32 or int64, got {t.dtype.name}")
    return t


# Gather -------------------------------------------------------------------


def _gather_infer(ctx: InferContext) -> list[TensorType]:
    data, idx = ctx.input(0), _check_indices(ctx, 1)
    axis = norm_axis(ctx, ctx.attrs["axis"], data.rank)
    if data.rank == 0:
        raise ctx.error("data must have rank >= 1")
    return [data.with_shape([*data.shape[:axis], *idx.shape, *data.shape[axis + 1 :]])]


def _gather_ref(inputs, attrs):
    data, idx = inputs
    return [np.take(data, idx.astype(np.int64), axis=attrs["axis"])]


def _gather_propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    sym, idx = input_sym(ctx, 0), int_values(ctx, 1)
    if sym is None or idx is None or ctx.input(0).rank != 1:
        return [None]
    if any(not -len(sym) <= i < len(sym) for i in idx):
        raise ctx.error(f"indices {idx} are out of range for a vector of {len(sym)}")
    return [small(_gather_infer(ctx)[0], [sym[i] for i in idx])]


movement(
    "Gather",
    _gather_infer,
    _gather_ref,
    attrs={"axis": Attr("int", 0)},
    inputs=(2, 2),
    propagate=_gather_propagate,
    doc="Take entries of `axis` at `indices` (an index tensor replaces that axis).",
)


# GatherElements / ScatterElements -------------------------------------------


def _gather_elements_infer(ctx: InferContext) -> list[TensorType]:
    data, idx = ctx.input(0), _check_indices(ctx, 1)
    if idx.rank != data.rank or data.rank == 0:
        raise ctx.error("data and indices must have one rank of at least 1")
    norm_axis(ctx, ctx.attrs["axis"], data.rank)
    return [data.with_shape(idx.shape)]


def _element_index(data: np.ndarray, idx: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    """Full index tuple selecting data[..., idx[i], ...] at every position i of idx."""
    axis %= data.ndim
    grid = list(np.indices(idx.shape, sparse=True))
    idx = idx.astype(np.int64)
    grid[axis] = np.where(idx < 0, idx + data.shape[axis], idx)
    return tuple(grid)


movement(
    "GatherElements",
    _gather_elements_infer,
    lambda inputs, attrs: [inputs[0][_element_index(inputs[0], inputs[1], attrs["axis"])]],
    attrs={"axis": Attr("int", 0)},
    inputs=(2, 2),
    doc="out[i][j][k] = data[idx[i][j][k]][j][k] (for axis 0): indexing element by element.",
)


_UFUNCS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_into(out: np.ndarray, index: tuple, updates: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        out[index] = updates
    else:
        _UFUNCS[reduction].at(out, index, updates)
    return out


def _scatter_elements_infer(ctx: InferContext) -> list[TensorType]:
    data, idx, upd = ctx.input(0), _check_indices(ctx, 1), ctx.input(2)
    check_same_dtype(ctx, 0, 2)
    if idx.rank != data.rank or upd.rank != data.rank or data.rank == 0:
        raise ctx.error("data, indices and updates must have one rank of at least 1")
    norm_axis(ctx, ctx.attrs["axis"], data.rank)
    return [data]


def _scatter_elements_ref(inputs, attrs):
    data, idx, updates = inputs
    index = _element_index(data, idx, attrs["axis"])
    return [_scatter_into(data.copy(), index, updates, attrs["reduction"])]


movement(
    "ScatterElements",
    _scatter_elements_infer,
    _scatter_elements_ref,
    attrs={"axis": Attr("int", 0), "reduction": Attr("string", "none", REDUCTIONS)},
    inputs=(3, 3),
    doc="Copy of data with updates written (or reduced) at element positions given by indices.",
)


# GatherND / ScatterND -------------------------------------------------------


def _nd_depth(ctx: InferContext, data: TensorType, idx: TensorType, batch: int) -> int:
    if idx.rank < 1 or not isinstance(idx.shape[-1], int):
        raise ctx.error("indices need a static last dim")
    depth = idx.shape[-1]
    if batch < 0 or batch >= min(data.rank, idx.rank) or batch + depth > data.rank:
        raise ctx.error(f"indices of depth {depth} with batch_dims {batch} do not fit data of rank {data.rank}")
    for d, i in zip(data.shape[:batch], idx.shape[:batch]):
        if isinstance(d, int) and isinstance(i, int) and d != i:
            raise ctx.error(f"the first {batch} (batch) dims of data and indices differ")
    return depth


def _gather_nd_infer(ctx: InferContext) -> list[TensorType]:
    data, idx = ctx.input(0), ctx.input(1)
    if idx.dtype is not DType.int64:
        raise ctx.error(f"indices must be int64, got {idx.dtype.name}")
    batch = ctx.attrs["batch_dims"]
    depth = _nd_depth(ctx, data, idx, batch)
    return [data.with_shape([*idx.shape[:-1], *data.shape[batch + depth :]])]


def _gather_nd_ref(inputs, attrs):
    data, idx = inputs
    batch, depth = attrs["batch_dims"], idx.shape[-1]
    nbatch = int(np.prod(data.shape[:batch]))
    rows = int(np.prod(idx.shape[batch:-1]))
    d = data.reshape((nbatch, *data.shape[batch:]))
    ix = idx.reshape(nbatch, rows, depth)
    parts = [d[b][tuple(ix[b, :, k] for k in range(depth))] for b in range(nbatch)]
    tail = data.shape[batch + depth :]
    out = np.stack(parts) if parts else np.empty((0, rows, *tail), data.dtype)
    return [out.reshape((*idx.shape[:-1], *tail))]


movement(
    "GatherND",
    _gather_nd_infer,
    _gather_nd_ref,
    attrs={"batch_dims": Attr("int", 0)},
    inputs=(2, 2),
    doc="Gather slices of data addressed by the last axis of indices, after batch_dims shared leading axes.",
)


def _scatter_nd_infer(ctx: InferContext) -> list[TensorType]:
    data, idx, upd = ctx.input(0), ctx.input(1), ctx.input(2)
    check_same_dtype(ctx, 0, 2)
    if idx.dtype is not DType.int64:
        raise ctx.error(f"indices must be int64, got {idx.dtype.name}")
    depth = _nd_depth(ctx, data, idx, 0)
    expected = (*idx.shape[:-1], *data.shape[depth:])
    if upd.rank != len(expected):
        raise ctx.error(f"updates must have shape {list(expected)}")
    return [data]


def _scatter_nd_ref(inputs, attrs):
    data, idx, updates = inputs
    depth = idx.shape[-1]
    flat = idx.reshape(-1, depth)
    index = tuple(flat[:, k] for k in range(depth))
    rows = updates.reshape((flat.shape[0], *data.shape[depth:]))
    return [_scatter_into(data.copy(), index, rows, attrs["reduction"])]


movement(
    "ScatterND",
    _scatter_nd_infer,
    _scatter_nd_ref,
    attrs={"reduction": Attr("string", "none", REDUCTIONS)},
    inputs=(3, 3),
    doc="Copy of data with slices addressed by indices' last axis replaced (or reduced) by updates.",
)


# Compress / NonZero: data-dependent sizes -----------------------------------


def _compress_infer(ctx: InferContext) -> list[TensorType]:
    data, cond = ctx.input(0), ctx.input(1)
    if cond.dtype is not DType.bool or cond.rank != 1:
        raise ctx.error(f"condition must be a 1-D bool tensor, got {cond}")
    c = ctx.const(1)
    axis = ctx.attrs["axis"]
    dim = data.numel if axis is None else data.shape[norm_axis(ctx, axis, data.rank)]
    kept: Dim = int(np.count_nonzero(c[:dim])) if c is not None and isinstance(dim, int) else ctx.fresh()
    if axis is None:
        return [data.with_shape((kept,))]
    axis %= data.rank
    return [data.with_shape([*data.shape[:axis], kept, *data.shape[axis + 1 :]])]


def _compress_ref(inputs, attrs):
    data, cond = inputs
    if attrs["axis"] is None:
        data, cond = data.reshape(-1), cond[: data.size]
        return [np.compress(cond, data)]
    axis = attrs["axis"] % data.ndim
    return [np.compress(cond[: data.shape[axis]], data, axis=axis)]


movement(
    "Compress",
    _compress_infer,
    _compress_ref,
    attrs={"axis": Attr("int", None)},
    inputs=(2, 2),
    doc="Keep the slices along `axis` (of the flattened input if none) where condition is true.",
)


def _nonzero_infer(ctx: InferContext) -> list[TensorType]:
    t, c = ctx.input(0), ctx.const(0)
    count = int(np.count_nonzero(c)) if c is not None else ctx.fresh("nnz")
    return [TensorType(DType.int64, (max(t.rank, 1), count))]


def _nonzero_ref(inputs, attrs):
    return [np.array(np.nonzero(np.atleast_1d(inputs[0])), dtype=np.int64)]


register(
    OpDef(
        "NonZero",
        _nonzero_infer,
        _nonzero_ref,
        dtypes=ALL_TYPES,
        doc="Indices of the non-zero elements, one column per element (int64 [rank, count]).",
    )
)


def _unique_infer(ctx: InferContext) -> list[TensorType]:
    t, axis = ctx.input(0), ctx.attrs["axis"]
    count = ctx.fresh("unique")
    if axis is None:
        y, n = t.with_shape((count,)), t.numel
    else:
        axis = norm_axis(ctx, axis, t.rank)
        y, n = t.with_shape([*t.shape[:axis], count, *t.shape[axis + 1 :]]), t.shape[axis]
    index = TensorType(DType.int64, (count,))
    return [y, index, TensorType(DType.int64, (n,)), index]


def _unique_ref(inputs, attrs):
    x, axis = inputs[0], attrs["axis"]
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis %= x.ndim
    _, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True, return_counts=True, axis=axis)
    inverse = inverse.reshape(-1)
    if not attrs["sorted"]:  # order of first occurrence
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    y = np.take(x, first, axis=axis)
    return [y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)]


register(
    OpDef(
        "Unique",
        _unique_infer,
        _unique_ref,
        attrs={"axis": Attr("int", None), "sorted": Attr("int", 1, (0, 1))},
        outputs=(1, 4),
        dtypes=ALL_TYPES,
        doc="Unique values (or slices along `axis`), first-occurrence indices, inverse indices and counts.",
    )
)
