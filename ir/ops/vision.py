"""Image sampling and scattering: GridSample, DeformConv, Col2Im, MaxUnpool.

GridSample and DeformConv read an image at fractional pixel coordinates. The
references build, per spatial axis, the taps each sampling point reads (input
indices and weights: one for nearest, two for linear, four for cubic, with the
padding mode applied to out-of-range taps) and sum the weighted values over
every combination of taps. Coordinates are computed in float32 (float64 for
float64 grids) in onnxruntime's order of operations; weights and sums in
float64, rounded once to the output type.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..dims import Dim, dim_div, dim_mul, dim_prod
from ..dtypes import FLOAT_TYPES, NUMERIC_TYPES, DType
from ..types import TensorType
from .registry import Attr, InferContext, OpDef, register
from .resize_weights import cubic_coefficients
from .symbolic import int_values, optional, shape_from_input, vector_length
from .window import dim_offset, make_window, value_error

Taps = list[tuple[np.ndarray, np.ndarray]]  # per tap: input index and weight of every sampling point


def _reflect(c: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Coordinates outside [lo, hi] reflected at the borders until they fall inside."""
    span = hi - lo
    if span <= 0:
        return np.full_like(c, lo)
    below, above = c < lo, c > hi
    distance = np.where(below, lo - c, c - hi)
    bounces = np.floor(distance / span)
    rest = distance - bounces * span
    even = bounces % 2 == 0
    from_below = np.where(even, lo + rest, hi - rest)
    from_above = np.where(even, hi - rest, lo + rest)
    return np.where(below, from_below, np.where(above, from_above, c))


def axis_taps(c: np.ndarray, length: int, mode: str, padding: str, align_corners: bool) -> Taps:
    """Taps along one axis of `length` pixels for the pixel coordinates `c`
    (nearest rounds halves to even). A tap outside the axis reads zero (zeros),
    the nearest edge pixel (border) or its reflection at the border region:
    [0, length-1] with align_corners, [-0.5, length-0.5] without. Padding
    applies to the taps only, never to `c` itself, as in onnxruntime."""
    lo, hi = (0.0, length - 1.0) if align_corners else (-0.5, length - 0.5)
    if mode == "nearest":
        positions, weights = [np.rint(c)], [np.ones(c.shape)]
    else:
        base = np.floor(c)
        frac = (c - base).astype(np.float64)
        if mode == "linear":
            positions, weights = [base, base + 1], [1 - frac, frac]
        else:
            positions = [base + k for k in (-1, 0, 1, 2)]
            weights = list(np.moveaxis(cubic_coefficients(frac.reshape(-1), -0.75).reshape(*frac.shape, 4), -1, 0))
    taps = []
    for p, w in zip(positions, weights):
        if padding == "zeros":
            w = np.where((p >= 0) & (p < length), w, 0.0)
        elif padding == "reflection":
            p = _reflect(p, lo, hi)
        taps.append((np.clip(np.trunc(p), 0, length - 1).astype(np.intp), w))
    return taps


def interpolate(data: np.ndarray, taps: list[Taps]) -> np.ndarray:
    """Sum over tap combinations of data[b, :, i1, i2, ...] times the weights:
    data (B, C, *spatial), one Taps per spatial axis with arrays (B, *points);
    returns (B, C, *points) in float64."""
    data = data.astype(np.float64, copy=False)
    points = taps[0][0][0].shape[1:]
    batch = np.arange(data.shape[0]).reshape(-1, *[1] * len(points))
    total = np.zeros((data.shape[0], *points, data.shape[1]))
    for combo in itertools.product(*taps):
        weight = np.prod([w for _, w in combo], axis=0)
        total += data[(batch, slice(None), *(i for i, _ in combo))] * weight[..., None]
    return np.moveaxis(total, -1, 1)


# GridSample -----------------------------------------------------------------


def _grid_sample_infer(ctx: InferContext) -> list[TensorType]:
    x, grid = ctx.input(0), ctx.input(1)
    if x.rank < 3 or grid.rank != x.rank:
        raise ctx.error("X must be (N, C, D1..Dr) and grid (N, D1_out..Dr_out, r), r >= 1")
    if not grid.dtype.is_float:
        raise ctx.error(f"grid must be a float tensor, got {grid.dtype.name}")
    r = x.rank - 2
    if isinstance(grid.shape[-1], int) and grid.shape[-1] != r:
        raise ctx.error(f"grid's last dim must be {r} (one coordinate per spatial axis)")
    if isinstance(x.shape[0], int) and isinstance(grid.shape[0], int) and x.shape[0] != grid.shape[0]:
        raise ctx.error("X and grid have different batch sizes")
    return [x.with_shape((x.shape[0], x.shape[1], *grid.shape[1:-1]))]


def _grid_sample_ref(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, grid = inputs[0], inputs[1]
    assert x is not None and grid is not None
    align = bool(attrs["align_corners"])
    if x.size == 0 or grid.size == 0:
        return [np.zeros((*x.shape[:2], *grid.shape[1:-1]), x.dtype)]
    g = grid.astype(np.float64 if grid.dtype == np.float64 else np.float32)
    r = x.ndim - 2
    taps = []
    for i in range(r):  # grid holds (x, y, z...): the last spatial axis first
        n, length = g[..., r - 1 - i], x.shape[2 + i]
        c = (n + 1) / 2 * (length - 1) if align else ((n + 1) * length - 1) / 2
        taps.append(axis_taps(c, length, attrs["mode"], attrs["padding_mode"], align))
    return [interpolate(x, taps).astype(x.dtype)]


register(
    OpDef(
        "GridSample",
        _grid_sample_infer,
        _grid_sample_ref,
        attrs={
            "align_corners": Attr("int", 0, (0, 1)),
            "mode": Attr("string", "linear", ("linear", "nearest", "cubic")),
            "padding_mode": Attr("string", "zeros", ("zeros", "border", "reflection")),
        },
        inputs=(2, 2),
        dtypes=FLOAT_TYPES,
        flops=lambda ins, outs, attrs: dim_prod([2 * 4 ** (len(outs[0].shape) - 2), outs[0].numel]),
        doc="Sample X at the normalised (-1..1) positions of `grid` (nearest, N-linear or N-cubic).",
    )
)


# DeformConv -----------------------------------------------------------------

_DEFORM_ATTRS = {
    "dilations": Attr("ints", []),
    "group": Attr("int", 1),
    "kernel_shape": Attr("ints", []),
    "offset_group": Attr("int", 1),
    "pads": Attr("ints", []),
    "strides": Attr("ints", []),
}


def _deform_kernel(ctx: InferContext) -> list[int]:
    spatial = ctx.input(1).shape[2:]
    kernel = ctx.attrs["kernel_shape"] or list(spatial)
    if len(kernel) != len(spatial) or not all(isinstance(k, int) for k in kernel):
        raise ctx.error(f"kernel_shape {kernel} must give the {len(spatial)} static kernel dims of W")
    return kernel  # type: ignore[return-value]


def _deform_infer(ctx: InferContext) -> list[TensorType]:
    x, w, offset = ctx.input(0), ctx.input(1), ctx.input(2)
    if x.rank < 3 or w.rank != x.rank or offset.rank != x.rank:
        raise ctx.error("X, W and offset must have one rank >= 3")
    group, offset_group = ctx.attrs["group"], ctx.attrs["offset_group"]
    channels, out_channels = x.shape[1], w.shape[0]
    if isinstance(channels, int) and isinstance(w.shape[1], int) and channels != w.shape[1] * group:
        raise ctx.error(f"input channels {channels} != W's {w.shape[1]} * group {group}")
    for what, n, parts in (("output channels", out_channels, group), ("input channels", channels, offset_group)):
        if parts < 1 or (isinstance(n, int) and n % parts):
            raise ctx.error(f"{what} {n} are not divisible into {parts} groups")
    kernel = _deform_kernel(ctx)
    taps = offset_group * int(np.prod(kernel))
    if isinstance(offset.shape[1], int) and offset.shape[1] != taps * len(kernel):
        raise ctx.error(f"offset needs {taps * len(kernel)} channels (offset_group * kernel taps * rank)")
    if ctx.has(4) and isinstance(ctx.input(4).shape[1], int) and ctx.input(4).shape[1] != taps:
        raise ctx.error(f"mask needs {taps} channels (offset_group * kernel taps)")
    if ctx.has(3) and ctx.input(3).shape != (out_channels,):
        raise ctx.error(f"B must have shape [{out_channels}]")
    window = make_window({**ctx.attrs, "kernel_shape": kernel}, kernel, ctx.error)
    out = [window.out_dim(i, d, ctx.fresh) for i, d in enumerate(x.shape[2:])]
    return [x.with_shape((x.shape[0], out_channels, *out))]


def _deform_ref(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, w, offset = inputs[0], inputs[1], inputs[2]
    assert x is not None and w is not None and offset is not None
    bias, mask = optional(inputs, 3), optional(inputs, 4)
    kernel = list(attrs["kernel_shape"] or w.shape[2:])
    window = make_window({**attrs, "kernel_shape": kernel}, kernel, value_error)
    n, channels, *spatial = x.shape
    r, groups, parts = len(spatial), attrs["group"], attrs["offset_group"]
    outs = [window.out_len(i, d) for i, d in enumerate(spatial)]
    offsets = offset.astype(np.float64).reshape(n, parts, *kernel, r, *outs)
    taps = []
    for i in range(r):  # sampling position = output position * stride - pad + tap * dilation + offset
        base = (np.arange(outs[i]) * window.strides[i] - window.pads[i]).reshape([-1] + [1] * (r - 1 - i))
        tap = (np.arange(kernel[i]) * window.dilations[i]).reshape([-1] + [1] * (2 * r - 1 - i))
        coords = np.take(offsets, i, axis=2 + r) + tap + base
        taps.append(axis_taps(coords.reshape(n * parts, *kernel, *outs), spatial[i], "linear", "zeros", True))
    cols = interpolate(x.reshape(n * parts, channels // parts, *spatial), taps)
    cols = cols.reshape(n, parts, channels // parts, *kernel, *outs)
    if mask is not None:
        cols = cols * mask.astype(np.float64).reshape(n, parts, 1, *kernel, *outs)
    cols = cols.reshape(n, groups, -1, int(np.prod(outs, dtype=np.int64)))
    weights = w.astype(np.float64).reshape(groups, w.shape[0] // groups, -1)
    y = np.einsum("gmk,ngkp->ngmp", weights, cols).reshape(n, w.shape[0], *outs)
    if bias is not None:
        y += bias.astype(np.float64).reshape(-1, *[1] * r)
    return [y.astype(x.dtype)]


register(
    OpDef(
        "DeformConv",
        _deform_infer,
        _deform_ref,
        attrs=_DEFORM_ATTRS,
        inputs=(3, 5),
        dtypes=FLOAT_TYPES,
        kind="contraction",
        flops=lambda ins, outs, attrs: dim_prod([2, outs[0].numel, *ins[1].shape[1:]]),  # type: ignore[union-attr]
        doc="Convolution whose kernel taps read X at learned offsets (bilinear, zero outside), times a mask.",
    )
)


# Col2Im ---------------------------------------------------------------------


def _col2im_geometry(attrs: dict[str, Any], block: list[int], error) -> tuple[list[int], list[int], list[int]]:
    r = len(block)

    def ints(name: str, default: int, length: int) -> list[int]:
        value = attrs[name] or [default] * length
        if len(value) != length:
            raise error(f"attribute '{name}' has {len(value)} values; expected {length}")
        return list(value)

    return ints("dilations", 1, r), ints("pads", 0, 2 * r), ints("strides", 1, r)


def _col2im_blocks(image: list[int], block: list[int], geometry: tuple[list[int], list[int], list[int]]) -> list[int]:
    """Number of block positions along each image axis."""
    dilations, pads, strides = geometry
    r = len(block)
    spans = [(k - 1) * d + 1 for k, d in zip(block, dilations)]
    return [(n + pads[i] + pads[i + r] - spans[i]) // strides[i] + 1 for i, n in enumerate(image)]


def _col2im_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    if t.rank != 3:
        raise ctx.error("input must be (N, C * prod(block_shape), L)")
    r = vector_length(ctx, 1, "image_shape")
    if vector_length(ctx, 2, "block_shape") != r:
        raise ctx.error("image_shape and block_shape must have the same length")
    image = shape_from_input(ctx, 1, "image_shape")
    block = int_values(ctx, 2)
    channels: Dim | None = dim_div(t.shape[1], int(np.prod(block))) if block is not None else None
    if block is not None:
        geometry = _col2im_geometry(ctx.attrs, block, ctx.error)
        if channels is None and isinstance(t.shape[1], int):
            raise ctx.error(f"input dim 1 ({t.shape[1]}) is not a multiple of the block size {block}")
        if all(isinstance(d, int) for d in image) and isinstance(t.shape[2], int):
            blocks = int(np.prod(_col2im_blocks(image, block, geometry)))  # type: ignore[arg-type]
            if blocks != t.shape[2]:
                raise ctx.error(f"input has {t.shape[2]} blocks; image_shape {image} and the attributes give {blocks}")
    return [t.with_shape((t.shape[0], channels if channels is not None else ctx.fresh("channels"), *image))]


def _col2im_ref(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, image_shape, block_shape = inputs[0], inputs[1], inputs[2]
    assert x is not None and image_shape is not None and block_shape is not None
    image, block = [int(v) for v in image_shape], [int(v) for v in block_shape]
    geometry = _col2im_geometry(attrs, block, value_error)
    dilations, pads, strides = geometry
    blocks, r = _col2im_blocks(image, block, geometry), len(block)
    n, channels = x.shape[0], x.shape[1] // int(np.prod(block))
    cols = x.reshape(n, channels, *block, *blocks)
    padded = np.zeros((n, channels, *[d + pads[i] + pads[i + r] for i, d in enumerate(image)]), x.dtype)
    for tap in itertools.product(*(range(k) for k in block)):
        target = tuple(slice(t * d, t * d + s * (b - 1) + 1, s) for t, d, s, b in zip(tap, dilations, strides, blocks))
        padded[(slice(None), slice(None), *target)] += cols[(slice(None), slice(None), *tap)]
    return [padded[(slice(None), slice(None), *(slice(pads[i], pads[i] + d) for i, d in enumerate(image)))].copy()]


register(
    OpDef(
        "Col2Im",
        _col2im_infer,
        _col2im_ref,
        attrs={"dilations": Attr("ints", []), "pads": Attr("ints", []), "strides": Attr("ints", [])},
        inputs=(3, 3),
        dtypes=NUMERIC_TYPES,
        kind="movement",
        doc="Sum column blocks (N, C * prod(block), L) back into an image (N, C, *image_shape): inverse im2col.",
    )
)


# MaxUnpool ------------------------------------------------------------------


def _unpool_window(attrs: dict[str, Any], error):
    kernel = attrs["kernel_shape"]
    return make_window({"kernel_shape": kernel, "strides": attrs["strides"], "pads": attrs["pads"]}, kernel, error)


def _max_unpool_infer(ctx: InferContext) -> list[TensorType]:
    x, indices = ctx.input(0), ctx.input(1)
    if x.rank < 3:
        raise ctx.error("X must be (N, C, D1..Dr)")
    if indices.dtype != DType.int64 or indices.rank != x.rank:
        raise ctx.error("I must be an int64 tensor of X's rank")
    window = _unpool_window(ctx.attrs, ctx.error)
    if window.rank != x.rank - 2:
        raise ctx.error(f"kernel_shape {list(window.kernel)} needs {x.rank - 2} values")
    if ctx.has(2):
        if vector_length(ctx, 2, "output_shape") != x.rank:
            raise ctx.error(f"output_shape must hold {x.rank} values")
        return [x.with_shape(shape_from_input(ctx, 2, "output_shape"))]
    out = [
        dim_offset(dim_mul(d, s), k - s - window.pads[i] - window.pads[i + window.rank])
        for i, (d, s, k) in enumerate(zip(x.shape[2:], window.strides, window.kernel))
    ]
    return [x.with_shape((x.shape[0], x.shape[1], *out))]


def _max_unpool_ref(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, indices, given = inputs[0], inputs[1], optional(inputs, 2)
    assert x is not None and indices is not None
    if given is not None:
        shape = [int(v) for v in given]
    else:
        window = _unpool_window(attrs, value_error)
        r = window.rank
        shape = [*x.shape[:2], *((d - 1) * s + k - window.pads[i] - window.pads[i + r]
                                 for i, (d, s, k) in enumerate(zip(x.shape[2:], window.strides, window.kernel)))]
    y = np.zeros(int(np.prod(shape, dtype=np.int64)), x.dtype)
    y[indices.reshape(-1)] = x.reshape(-1)
    return [y.reshape(shape)]


register(
    OpDef(
        "MaxUnpool",
        _max_unpool_infer,
        _max_unpool_ref,
        attrs={"kernel_shape": Attr("ints"), "pads": Attr("ints", []), "strides": Attr("ints", [])},
        inputs=(2, 3),
        dtypes=FLOAT_TYPES,
        kind="movement",
        doc="Scatter X into zeros at MaxPool's flat indices I (over the whole output tensor).",
    )
)
