"""Shape ops: Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Expand.

These change how a tensor's elements are indexed, never their order (Expand
repeats them), and they carry the symbolic contents of shape vectors through
shape arithmetic such as Shape -> Gather -> Concat -> Reshape.
"""

from __future__ import annotations

import numpy as np

from ..dims import Dim, dim_div, dim_prod, is_static
from ..dtypes import ALL_TYPES, DType
from ..types import TensorType
from .common import broadcast_shapes, norm_axes
from .registry import Attr, InferContext, InferFn, OpDef, PropagateFn, register
from .symbolic import input_sym, int_values, optional, shape_from_input, small, vector_length

I64 = DType.int64


def keep_contents(infer: InferFn) -> PropagateFn:
    """Propagation for ops that only re-index a vector: contents are unchanged."""
    return lambda ctx: [small(infer(ctx)[0], input_sym(ctx, 0))]


def movement(name: str, infer: InferFn, reference, **kwargs) -> OpDef:
    return register(OpDef(name, infer, reference, dtypes=ALL_TYPES, kind="movement", **kwargs))


# Shape / Size ---------------------------------------------------------------


def _shape_dims(ctx: InferContext) -> tuple[Dim, ...]:
    return ctx.input(0).shape[ctx.attrs["start"] : ctx.attrs["end"]]


def _shape_ref(inputs, attrs):
    return [np.array(inputs[0].shape[attrs["start"] : attrs["end"]], dtype=np.int64)]


register(
    OpDef(
        "Shape",
        lambda ctx: [TensorType(I64, (len(_shape_dims(ctx)),))],
        _shape_ref,
        attrs={"start": Attr("int", 0), "end": Attr("int", None)},
        propagate=lambda ctx: [small(TensorType(I64, (len(_shape_dims(ctx)),)), _shape_dims(ctx))],
        doc="The input's dims [start:end] as an int64 vector (Python slice clamping).",
    )
)

register(
    OpDef(
        "Size",
        lambda ctx: [TensorType(I64, ())],
        lambda inputs, attrs: [np.array(inputs[0].size, dtype=np.int64)],
        propagate=lambda ctx: [(ctx.input(0).numel,)],
        doc="Number of elements, as an int64 scalar.",
    )
)


# Reshape ------------------------------------------------------------------


def _reshape_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    n = vector_length(ctx, 1, "shape")
    target = ctx.values(1)
    if target is None:
        return [t.with_shape([ctx.fresh() for _ in range(n)])]
    allowzero = ctx.attrs["allowzero"]
    out: list[Dim] = []
    infer_at = None
    for i, v in enumerate(target):
        if v == -1:
            if infer_at is not None:
                raise ctx.error(f"shape {target} has more than one -1")
            infer_at = i
            out.append(1)
        elif v == 0 and not allowzero:
            if i >= t.rank:
                raise ctx.error(f"shape {target} copies dim {i} (a 0) beyond the input rank {t.rank}")
            out.append(t.shape[i])
        elif isinstance(v, int) and v < -1:
            raise ctx.error(f"shape {target} has an invalid dim {v}")
        else:
            out.append(v)
    if infer_at is not None:
        if allowzero and 0 in target:
            raise ctx.error(f"shape {target} mixes -1 and 0 with allowzero=1")
        known = dim_prod(out)
        quotient = dim_div(t.numel, known) if known != 0 else None
        if quotient is None:
            if is_static(t.shape) and is_static(out):
                raise ctx.error(f"cannot reshape {list(t.shape)} into {target}")
            quotient = ctx.fresh()
        out[infer_at] = quotient
    elif is_static(t.shape) and is_static(out) and dim_prod(out) != t.numel:
        raise ctx.error(f"cannot reshape {list(t.shape)} ({t.numel} elements) into {out}")
    return [t.with_shape(out)]


def _reshape_ref(inputs, attrs):
    x, shape = inputs
    dims = [int(v) for v in shape]
    if not attrs["allowzero"]:
        dims = [x.shape[i] if v == 0 else v for i, v in enumerate(dims)]
    return [x.reshape(dims)]


movement(
    "Reshape",
    _reshape_infer,
    _reshape_ref,
    attrs={"allowzero": Attr("int", 0, (0, 1))},
    inputs=(2, 2),
    propagate=keep_contents(_reshape_infer),
    doc="Reshape to the `shape` input (0 copies a dim unless allowzero, -1 is inferred).",
)


# Flatten ------------------------------------------------------------------


def _flatten_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    axis = ctx.attrs["axis"]
    if not -t.rank <= axis <= t.rank:
        raise ctx.error(f"axis {axis} is out of range for rank {t.rank}")
    if axis < 0:
        axis += t.rank
    return [t.with_shape((dim_prod(t.shape[:axis]), dim_prod(t.shape[axis:])))]


def _flatten_ref(inputs, attrs):
    x = inputs[0]
    axis = attrs["axis"] if attrs["axis"] >= 0 else attrs["axis"] + x.ndim
    return [x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))]


movement(
    "Flatten",
    _flatten_infer,
    _flatten_ref,
    attrs={"axis": Attr("int", 1)},
    propagate=keep_contents(_flatten_infer),
    doc="Flatten to 2-D: dims before `axis` and dims from `axis` on.",
)


# Squeeze / Unsqueeze ---------------------------------------------------------


def _squeeze_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    if not ctx.has(1):
        return [t.with_shape([d for d in t.shape if d != 1])]
    axes = int_values(ctx, 1)
    if axes is None:
        n = 1 if ctx.input(1).rank == 0 else vector_length(ctx, 1, "axes")  # a scalar: one axis
        return [t.with_shape([ctx.fresh() for _ in range(t.rank - n)])]
    axes = norm_axes(ctx, axes, t.rank)
    for a in axes:
        if isinstance(t.shape[a], int) and t.shape[a] != 1:
            raise ctx.error(f"cannot squeeze axis {a} of size {t.shape[a]}")
    return [t.with_shape([d for i, d in enumerate(t.shape) if i not in axes])]


def _squeeze_ref(inputs, attrs):
    x = inputs[0]
    if optional(inputs, 1) is None:
        return [x.reshape([d for d in x.shape if d != 1])]
    return [np.squeeze(x, axis=tuple(int(a) for a in np.reshape(inputs[1], -1)))]


movement(
    "Squeeze",
    _squeeze_infer,
    _squeeze_ref,
    inputs=(1, 2),
    propagate=keep_contents(_squeeze_infer),
    doc="Remove size-1 dims (`axes` input, or every static 1 when absent).",
)


def _unsqueeze_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    axes = int_values(ctx, 1)
    if axes is None:  # where the new dims go is unknown
        count = 1 if ctx.input(1).rank == 0 else vector_length(ctx, 1, "axes")  # a scalar: one axis
        return [t.with_shape([ctx.fresh() for _ in range(t.rank + count)])]
    axes = norm_axes(ctx, axes, t.rank + len(axes))
    dims = iter(t.shape)
    return [t.with_shape([1 if i in axes else next(dims) for i in range(t.rank + len(axes))])]


def _unsqueeze_ref(inputs, attrs):
    x, axes = inputs
    rank = x.ndim + axes.size
    return [np.expand_dims(x, tuple(sorted(int(a) % rank for a in np.reshape(axes, -1))))]


movement(
    "Unsqueeze",
    _unsqueeze_infer,
    _unsqueeze_ref,
    inputs=(2, 2),
    propagate=keep_contents(_unsqueeze_infer),
    doc="Insert size-1 dims at `axes` (positions in the output).",
)


# Expand -------------------------------------------------------------------


def _expand_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    if ctx.values(1) is not None:
        return [t.with_shape(broadcast_shapes(ctx, t.shape, shape_from_input(ctx, 1)))]
    n = vector_length(ctx, 1, "shape")
    rank = max(n, t.rank)
    padded = [1] * (rank - t.rank) + list(t.shape)
    return [t.with_shape([d if d != 1 else ctx.fresh() for d in padded])]


def _expand_ref(inputs, attrs):
    x, shape = inputs
    out = np.broadcast_shapes(x.shape, tuple(int(v) for v in shape))
    return [np.broadcast_to(x, out).copy()]


def _expand_propagate(ctx: InferContext) -> list[tuple[Dim, ...] | None]:
    out = _expand_infer(ctx)[0]
    sym = input_sym(ctx, 0)
    if sym is None or out.rank > 1 or not is_static(out.shape):
        return [None]
    n = int(dim_prod(out.shape))
    return [small(out, sym * n if len(sym) == 1 else sym)]


movement(
    "Expand",
    _expand_infer,
    _expand_ref,
    inputs=(2, 2),
    propagate=_expand_propagate,
    doc="Broadcast to `shape` (bidirectional: the result takes the larger of each dim).",
)
