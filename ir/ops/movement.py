"""Data-movement ops: Transpose, Concat, Split, Tile, DepthToSpace,
SpaceToDepth, ReverseSequence, Trilu."""

from __future__ import annotations

import itertools

import numpy as np

from ..dims import Dim, dim_add, dim_div, dim_mul
from ..dtypes import DType
from ..types import TensorType
from .common import check_same_dtype, norm_axis
from .registry import Attr, InferContext
from .shape import movement
from .symbolic import input_sym, int_values, optional, small, vector_length

# Transpose ----------------------------------------------------------------


def _perm(ctx: InferContext) -> list[int]:
    rank = ctx.input(0).rank
    perm = ctx.attrs["perm"]
    if perm is None:
        return list(range(rank))[::-1]
    if sorted(perm) != list(range(rank)):
        raise ctx.error(f"perm {perm} is not a permutation of {rank} axes")
    return perm


def _transpose_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    return [t.with_shape([t.shape[p] for p in _perm(ctx)])]


movement(
    "Transpose",
    _transpose_infer,
    lambda inputs, attrs: [np.transpose(inputs[0], attrs["perm"]).copy()],
    attrs={"perm": Attr("ints", None)},
    doc="Permute axes (output axis i is input axis perm[i]; reversed by default).",
)


# Concat -------------------------------------------------------------------


def _merge_dim(ctx: InferContext, a: Dim, b: Dim, axis: int) -> Dim:
    if a == b or isinstance(b, str):
        return a
    if isinstance(a, str):
        return b
    raise ctx.error(f"inputs differ in size along axis {axis} ({a} vs {b})")


def _concat_infer(ctx: InferContext) -> list[TensorType]:
    check_same_dtype(ctx, *range(len(ctx.types)))
    types = [ctx.input(i) for i in range(len(ctx.types))]
    rank = types[0].rank
    if rank == 0 or any(t.rank != rank for t in types):
        raise ctx.error("inputs must have one rank of at least 1")
    axis = norm_axis(ctx, ctx.attrs["axis"], rank)
    out = list(types[0].shape)
    for t in types[1:]:
        for i, d in enumerate(t.shape):
            out[i] = dim_add(out[i], d) if i == axis else _merge_dim(ctx, out[i], d, i)
    return [types[0].with_shape(out)]


def _concat_propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    parts = [input_sym(ctx, i) for i in range(len(ctx.types))]
    if any(p is None for p in parts):
        return [None]
    return [small(_concat_infer(ctx)[0], [v for p in parts for v in p])]  # type: ignore[union-attr]


movement(
    "Concat",
    _concat_infer,
    lambda inputs, attrs: [np.concatenate(inputs, axis=attrs["axis"])],
    attrs={"axis": Attr("int")},
    inputs=(1, -1),
    propagate=_concat_propagate,
    doc="Join inputs along `axis`.",
)


# Split --------------------------------------------------------------------


def _split_sizes(ctx: InferContext) -> list[Dim]:
    t = ctx.input(0)
    axis = norm_axis(ctx, ctx.attrs["axis"], t.rank)
    dim, count = t.shape[axis], ctx.attrs["num_outputs"]
    if ctx.has(1):
        if count is not None:
            raise ctx.error("give either the split input or num_outputs, not both")
        sizes = ctx.values(1)
        if sizes is None:
            return [ctx.fresh() for _ in range(vector_length(ctx, 1, "split"))]
        if all(isinstance(s, int) for s in sizes) and isinstance(dim, int) and sum(sizes) != dim:  # type: ignore[arg-type]
            raise ctx.error(f"split {sizes} does not sum to the axis size {dim}")
        return list(sizes)
    if count is None or count < 1:
        raise ctx.error("needs the split input or a positive num_outputs")
    if isinstance(dim, str):
        part = dim_div(dim, count)
        return [part if part is not None else ctx.fresh() for _ in range(count)]
    chunk = -(-dim // count)
    last = dim - chunk * (count - 1)
    if last < 0 or (last == 0 and dim > 0):
        raise ctx.error(f"axis size {dim} cannot be split into {count} outputs")
    return [chunk] * (count - 1) + [last]


def _split_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    axis = norm_axis(ctx, ctx.attrs["axis"], t.rank)
    sizes = _split_sizes(ctx)
    if len(sizes) != ctx.num_outputs:
        raise ctx.error(f"splits into {len(sizes)} parts but the node has {ctx.num_outputs} outputs")
    return [t.with_shape([*t.shape[:axis], s, *t.shape[axis + 1 :]]) for s in sizes]


def _split_ref(inputs, attrs):
    x, split = inputs[0], optional(inputs, 1)
    axis = attrs["axis"] % x.ndim
    if split is None:
        chunk = -(-x.shape[axis] // attrs["num_outputs"])
        sizes = [chunk] * (attrs["num_outputs"] - 1)
    else:
        sizes = [int(s) for s in split[:-1]]
    return [part.copy() for part in np.split(x, np.cumsum(sizes), axis=axis)]


def _split_propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    sym = input_sym(ctx, 0)
    sizes = _split_sizes(ctx)
    if sym is None or ctx.input(0).rank != 1 or not all(isinstance(s, int) for s in sizes):
        return [None] * len(sizes)
    starts = np.cumsum([0, *sizes]).tolist()
    return [tuple(sym[a:b]) for a, b in itertools.pairwise(starts)]


movement(
    "Split",
    _split_infer,
    _split_ref,
    attrs={"axis": Attr("int", 0), "num_outputs": Attr("int", None)},
    inputs=(1, 2),
    outputs=(1, -1),
    propagate=_split_propagate,
    doc="Split along `axis` by the `split` sizes, or into num_outputs near-equal parts (the last smaller).",
)


# Tile ---------------------------------------------------------------------


def _tile_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    if vector_length(ctx, 1, "repeats") != t.rank:
        raise ctx.error(f"repeats must have one entry per input axis ({t.rank})")
    repeats = ctx.values(1)
    if repeats is None:
        return [t.with_shape([0 if d == 0 else ctx.fresh() for d in t.shape])]
    return [t.with_shape([dim_mul(d, r) for d, r in zip(t.shape, repeats)])]


def _tile_propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    sym, repeats = input_sym(ctx, 0), int_values(ctx, 1)
    if sym is None or repeats is None or ctx.input(0).rank != 1:
        return [None]
    return [small(_tile_infer(ctx)[0], sym * repeats[0])]


movement(
    "Tile",
    _tile_infer,
    lambda inputs, attrs: [np.tile(inputs[0], [int(r) for r in inputs[1]])],
    inputs=(2, 2),
    propagate=_tile_propagate,
    doc="Repeat the input `repeats[i]` times along each axis i.",
)


# DepthToSpace / SpaceToDepth -------------------------------------------------


def _nchw(ctx: InferContext) -> tuple[TensorType, int]:
    t, bs = ctx.input(0), ctx.attrs["blocksize"]
    if t.rank != 4:
        raise ctx.error(f"expects a 4-D NCHW input, got {t}")
    if bs < 1:
        raise ctx.error(f"blocksize {bs} must be positive")
    return t, bs


def _exact_div(ctx: InferContext, d: Dim, by: int, what: str) -> Dim:
    q = dim_div(d, by)
    if q is None:
        if isinstance(d, int):
            raise ctx.error(f"{what} {d} is not divisible by {by}")
        return ctx.fresh()
    return q


def _d2s_infer(ctx: InferContext) -> list[TensorType]:
    t, bs = _nchw(ctx)
    n, c, h, w = t.shape
    return [t.with_shape((n, _exact_div(ctx, c, bs * bs, "channels"), dim_mul(h, bs), dim_mul(w, bs)))]


def _d2s_ref(inputs, attrs):
    x, bs = inputs[0], attrs["blocksize"]
    n, c, h, w = x.shape
    if attrs["mode"] == "DCR":
        y = x.reshape(n, bs, bs, c // (bs * bs), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (bs * bs), bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [y.reshape(n, c // (bs * bs), h * bs, w * bs)]


movement(
    "DepthToSpace",
    _d2s_infer,
    _d2s_ref,
    attrs={"blocksize": Attr("int"), "mode": Attr("string", "DCR", ("DCR", "CRD"))},
    doc="Move channel blocks into spatial blocks (DCR: depth-column-row order, CRD: column-row-depth).",
)


def _s2d_infer(ctx: InferContext) -> list[TensorType]:
    t, bs = _nchw(ctx)
    n, c, h, w = t.shape
    return [t.with_shape((n, dim_mul(c, bs * bs), _exact_div(ctx, h, bs, "height"), _exact_div(ctx, w, bs, "width")))]


def _s2d_ref(inputs, attrs):
    x, bs = inputs[0], attrs["blocksize"]
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // bs, bs, w // bs, bs)
    y = blocks.transpose(0, 3, 5, 1, 2, 4) if attrs["mode"] == "DCR" else blocks.transpose(0, 1, 3, 5, 2, 4)
    return [y.reshape(n, c * bs * bs, h // bs, w // bs)]


movement(
    "SpaceToDepth",
    _s2d_infer,
    _s2d_ref,
    attrs={"blocksize": Attr("int"), "mode": Attr("string", "DCR", ("DCR", "CRD"))},
    doc="Move spatial blocks into channels (the inverse of DepthToSpace in the same mode).",
)


# ReverseSequence ------------------------------------------------------------


def _revseq_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    axes = {ctx.attrs["batch_axis"], ctx.attrs["time_axis"]}
    if t.rank < 2 or axes != {0, 1}:
        raise ctx.error("needs rank >= 2 and batch_axis, time_axis being 0 and 1 in some order")
    lens = ctx.input(1)
    if lens.dtype is not DType.int64 or lens.rank != 1:
        raise ctx.error(f"sequence_lens must be a 1-D int64 tensor, got {lens}")
    return [t]


def _revseq_ref(inputs, attrs):
    x, lens = inputs
    batch_axis, time_axis = attrs["batch_axis"], attrs["time_axis"]
    y = np.moveaxis(x, (batch_axis, time_axis), (0, 1)).copy()
    for b, n in enumerate(lens):
        y[b, : int(n)] = y[b, : int(n)][::-1]
    return [np.moveaxis(y, (0, 1), (batch_axis, time_axis)).copy()]


movement(
    "ReverseSequence",
    _revseq_infer,
    _revseq_ref,
    attrs={"batch_axis": Attr("int", 1), "time_axis": Attr("int", 0)},
    inputs=(2, 2),
    doc="Reverse the first sequence_lens[b] steps along time_axis for each batch entry b.",
)


# Trilu --------------------------------------------------------------------


def _trilu_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    if t.rank < 2:
        raise ctx.error("needs an input of rank >= 2")
    return [t]


def _trilu_ref(inputs, attrs):
    x, k = inputs[0], optional(inputs, 1)
    k = 0 if k is None else int(k.reshape(-1)[0])
    return [np.triu(x, k) if attrs["upper"] else np.tril(x, k)]


movement(
    "Trilu",
    _trilu_infer,
    _trilu_ref,
    attrs={"upper": Attr("int", 1, (0, 1))},
    inputs=(1, 2),
    doc="Keep the upper (or lower) triangle of the last two axes, from diagonal k; zero the rest.",
)
