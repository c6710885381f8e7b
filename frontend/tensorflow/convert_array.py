"""Converters of TensorFlow's shape and indexing ops: reshape, concat, slices,
gathers, padding, tiling, fills, shapes, one-hot, top-k."""

from __future__ import annotations

import numpy as np
from aic.ir import Value

from .context import TFContext, converter
from .errors import TFFrontendError
from .tensors import aic_dtype

BIG = np.iinfo(np.int64).max


@converter("Reshape")
def convert_reshape(ctx: TFContext) -> list[Value]:
    x, shape = ctx.inputs
    return [ctx.op("Reshape", x, ctx.as_int64(shape), allowzero=1)]  # 0 is a size in TensorFlow


@converter("Squeeze")
def convert_squeeze(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    axes = ctx.attr("squeeze_dims") or [i for i, d in enumerate(x.type.shape) if d == 1]
    return [ctx.op("Squeeze", x, ctx.int64(axes, "axes"))] if axes else [x]


@converter("ExpandDims")
def convert_expand_dims(ctx: TFContext) -> list[Value]:
    x, axis = ctx.inputs
    return [ctx.op("Unsqueeze", x, ctx.as_int64(ctx.op("Reshape", axis, ctx.int64([-1], "shape"))))]


@converter("Transpose")
def convert_transpose(ctx: TFContext) -> list[Value]:
    return [ctx.op("Transpose", ctx.inputs[0], perm=ctx.ints(1))]


@converter("ConcatV2", "Concat")
def convert_concat(ctx: TFContext) -> list[Value]:
    if ctx.op_type == "Concat":
        axis, values = ctx.ints(0)[0], ctx.inputs[1:]
    else:
        axis, values = ctx.ints(len(ctx.inputs) - 1)[0], ctx.inputs[:-1]
    return [ctx.op("Concat", *values, axis=axis) if len(values) > 1 else values[0]]


@converter("Pack")
def convert_pack(ctx: TFContext) -> list[Value]:
    axis = ctx.attr("axis", 0)
    rank = ctx.inputs[0].type.rank
    axis = axis + rank + 1 if axis < 0 else axis
    parts = [ctx.op("Unsqueeze", v, ctx.int64([axis], "axes")) for v in ctx.inputs]
    return [ctx.op("Concat", *parts, axis=axis) if len(parts) > 1 else parts[0]]


@converter("Unpack")
def convert_unpack(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    axis, num = ctx.attr("axis", 0), ctx.attr("num")
    parts = ctx.node("Split", [x], {"axis": axis, "num_outputs": num}, num) if num > 1 else [x]
    return [ctx.op("Squeeze", p, ctx.int64([axis], "axes")) for p in parts]


@converter("Split")
def convert_split(ctx: TFContext) -> list[Value]:
    axis, x = ctx.ints(0)[0], ctx.inputs[1]
    num = ctx.attr("num_split")
    return ctx.node("Split", [x], {"axis": axis, "num_outputs": num}, num) if num > 1 else [x]


@converter("SplitV")
def convert_split_v(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    sizes, axis = ctx.ints(1), ctx.ints(2)[0]
    if -1 in sizes:
        total = x.type.shape[axis]
        if not isinstance(total, int):
            raise ctx.error("a -1 split size needs a static dim")
        sizes[sizes.index(-1)] = total - sum(s for s in sizes if s != -1)
    if len(sizes) == 1:
        return [x]
    return ctx.node("Split", [x, ctx.int64(sizes, "sizes")], {"axis": axis}, len(sizes))


@converter("Slice")
def convert_slice(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    starts, sizes = ctx.ints(1), ctx.ints(2)
    ends = [BIG if n == -1 else b + n for b, n in zip(starts, sizes)]
    return [ctx.op("Slice", x, ctx.int64(starts, "starts"), ctx.int64(ends, "ends"))]


@converter("StridedSlice")
def convert_strided_slice(ctx: TFContext) -> list[Value]:
    """All masks: the spec expands to one (start, end, step) per input dim, then
    shrunk dims are squeezed and new axes inserted. Begin and end may be
    computed at run time (an index in a loop): shrunk dims are then gathered."""
    x = ctx.inputs[0]
    strides = ctx.ints(3)
    begin, end = _entries(ctx, 1, len(strides)), _entries(ctx, 2, len(strides))
    dynamic = any(isinstance(b, Value) for b in begin + end)
    masks = {m: ctx.attr(f"{m}_mask", 0) for m in ("begin", "end", "ellipsis", "new_axis", "shrink_axis")}
    rank = x.type.rank
    special = masks["new_axis"] | masks["ellipsis"]
    consuming = sum(1 for i in range(len(begin)) if not (special >> i) & 1)
    starts, ends, steps, axes, shrink, out = [], [], [], [], [], []  # out: final dims, "new" or an input axis
    dim = 0
    for i in range(len(begin)):
        bit = 1 << i
        if masks["ellipsis"] & bit:
            for _ in range(rank - consuming):
                out.append(dim)
                dim += 1
            continue
        if masks["new_axis"] & bit:
            out.append("new")
            continue
        step = strides[i]
        if step == 0:
            raise ctx.error("a stride of 0")
        if masks["shrink_axis"] & bit:
            b = begin[i]
            if dynamic:
                shrink.append((dim, b))
            else:
                starts.append(b)
                ends.append(b + 1 if b != -1 else BIG)
                steps.append(1)
                axes.append(dim)
                shrink.append(dim)
        else:
            starts.append((0 if step > 0 else BIG) if masks["begin"] & bit else begin[i])
            ends.append((BIG if step > 0 else -BIG) if masks["end"] & bit else end[i])
            steps.append(step)
            axes.append(dim)
            out.append(dim)
        dim += 1
    out.extend(range(dim, rank))  # dims the spec does not reach are kept whole
    y = x
    if axes:
        y = ctx.op("Slice", x, _vector(ctx, starts), _vector(ctx, ends), ctx.int64(axes, "axes"),
                   ctx.int64(steps, "steps"))  # fmt: skip
    if shrink and dynamic:
        for axis, index in reversed(shrink):  # the last first, so earlier axes keep their numbers
            scalar = index if not isinstance(index, Value) else ctx.op("Reshape", index, ctx.int64([], "scalar"))
            y = ctx.op("Gather", y, scalar if isinstance(scalar, Value) else ctx.const(np.int64(index)), axis=axis)
    elif shrink:
        y = ctx.op("Squeeze", y, ctx.int64(shrink, "shrink"))
    new = [i for i, d in enumerate(out) if d == "new"]
    if new:
        y = ctx.op("Unsqueeze", y, ctx.int64(new, "new_axes"))
    return [y]


def _entries(ctx: TFContext, i: int, count: int) -> list[int | Value]:
    """A begin/end vector: ints where known at compile time, else one-element int64 slices of it."""
    v = ctx.inputs[i]
    try:
        return list(ctx.ints(i))
    except TFFrontendError:
        pass
    v64 = ctx.as_int64(v)
    return [ctx.op("Slice", v64, ctx.int64([k]), ctx.int64([k + 1])) for k in range(count)]


def _vector(ctx: TFContext, items: list[int | Value]) -> Value:
    if all(not isinstance(item, Value) for item in items):
        return ctx.int64(items)
    pieces = [item if isinstance(item, Value) else ctx.int64([item]) for item in items]
    return ctx.op("Concat", *pieces, axis=0)


def _pads(ctx: TFContext, i: int) -> Value:
    """TensorFlow's [rank, 2] paddings as aic's [begins..., ends...]."""
    pairs = np.asarray(ctx.ints(i), dtype=np.int64).reshape(-1, 2)
    return ctx.int64(np.concatenate([pairs[:, 0], pairs[:, 1]]), "pads")


@converter("Pad", "PadV2")
def convert_pad(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    value = ctx.inputs[2] if ctx.op_type == "PadV2" else None
    return [ctx.op("Pad", x, _pads(ctx, 1), value, mode="constant")]


@converter("MirrorPad")
def convert_mirror_pad(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    mode = ctx.attr("mode")
    if mode == "REFLECT":
        return [ctx.op("Pad", x, _pads(ctx, 1), mode="reflect")]
    if mode != "SYMMETRIC":
        raise ctx.error(f"mode {mode} is not supported")
    # SYMMETRIC repeats the edge element: concat mirrored slices axis by axis
    pairs = np.asarray(ctx.ints(1)).reshape(-1, 2)
    y = x
    for axis, (before, after) in enumerate(pairs.tolist()):
        parts = []
        if before:
            head = ctx.op("Slice", y, ctx.int64([before - 1]), ctx.int64([-BIG]), ctx.int64([axis]), ctx.int64([-1]))
            parts.append(head)
        parts.append(y)
        if after:
            tail = ctx.op("Slice", y, ctx.int64([-1]), ctx.int64([-after - 1]), ctx.int64([axis]), ctx.int64([-1]))
            parts.append(tail)
        y = ctx.op("Concat", *parts, axis=axis) if len(parts) > 1 else y
    return [y]


@converter("Tile")
def convert_tile(ctx: TFContext) -> list[Value]:
    x, multiples = ctx.inputs
    return [ctx.op("Tile", x, ctx.as_int64(multiples))]


@converter("GatherV2", "Gather")
def convert_gather(ctx: TFContext) -> list[Value]:
    params, indices = ctx.inputs[:2]
    axis = ctx.ints(2)[0] if ctx.op_type == "GatherV2" else 0
    if ctx.attr("batch_dims", 0):
        raise ctx.error("batch_dims other than 0 is not supported")
    return [ctx.op("Gather", params, indices, axis=axis)]


@converter("GatherNd")
def convert_gather_nd(ctx: TFContext) -> list[Value]:
    params, indices = ctx.inputs
    return [ctx.op("GatherND", params, ctx.as_int64(indices))]


@converter("Where")
def convert_where(ctx: TFContext) -> list[Value]:
    """The coordinates of true (non-zero) elements, [count, rank] int64."""
    return [ctx.op("Transpose", ctx.op("NonZero", ctx.inputs[0]), perm=[1, 0])]


@converter("Fill")
def convert_fill(ctx: TFContext) -> list[Value]:
    dims, value = ctx.inputs
    return [ctx.op("Expand", value, ctx.as_int64(dims))]


@converter("BroadcastTo")
def convert_broadcast_to(ctx: TFContext) -> list[Value]:
    x, shape = ctx.inputs
    return [ctx.op("Expand", x, ctx.as_int64(shape))]


@converter("ZerosLike", "OnesLike")
def convert_fill_like(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    value = np.full((), 0 if ctx.op_type == "ZerosLike" else 1, x.type.dtype.numpy)
    return [ctx.op("Expand", ctx.const(value, "value"), ctx.op("Shape", x))]


@converter("Range")
def convert_range(ctx: TFContext) -> list[Value]:
    return [ctx.op("Range", *ctx.inputs)]


@converter("Shape", "Size")
def convert_shape(ctx: TFContext) -> list[Value]:
    y = ctx.op(ctx.op_type, ctx.inputs[0])
    return [ctx.cast(y, aic_dtype(ctx.attr("out_type", 3), ctx.where))]


@converter("ShapeN")
def convert_shape_n(ctx: TFContext) -> list[Value]:
    dtype = aic_dtype(ctx.attr("out_type", 3), ctx.where)
    return [ctx.cast(ctx.op("Shape", x), dtype) for x in ctx.inputs]


@converter("Rank")
def convert_rank(ctx: TFContext) -> list[Value]:
    return [ctx.const(np.asarray(ctx.inputs[0].type.rank, np.int32), "rank")]


@converter("OneHot")
def convert_one_hot(ctx: TFContext) -> list[Value]:
    indices, depth, on, off = ctx.inputs
    values = ctx.op("Concat", ctx.op("Reshape", off, ctx.int64([1])), ctx.op("Reshape", on, ctx.int64([1])), axis=0)
    return [ctx.op("OneHot", indices, ctx.as_int64(depth), values, axis=ctx.attr("axis", -1))]


@converter("TopKV2")
def convert_top_k(ctx: TFContext) -> list[Value]:
    x, k = ctx.inputs
    k64 = ctx.op("Reshape", ctx.as_int64(k), ctx.int64([1], "shape"))
    values, indices = ctx.node("TopK", [x, k64], {"axis": -1, "largest": 1, "sorted": 1}, 2)
    return [values, ctx.cast(indices, aic_dtype(ctx.attr("index_type", 3), ctx.where))]


@converter("ReverseV2")
def convert_reverse(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    axes = ctx.ints(1)
    n = len(axes)
    return [ctx.op("Slice", x, ctx.int64([-1] * n), ctx.int64([-BIG] * n), ctx.int64(axes), ctx.int64([-1] * n))]
