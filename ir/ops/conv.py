"""Convolutions: Conv, ConvTranspose and ConvInteger (1-D, 2-D, 3-D, grouped).

References lower to matrix products: Conv gathers every window (im2col over a
strided view) and multiplies by the weights per group; ConvTranspose
multiplies first and scatters one kernel tap at a time into the output.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..dims import Dim, dim_mul, dim_prod
from ..dtypes import DType
from ..types import TensorType
from .common import check_same_dtype
from .registry import Attr, InferContext, OpDef, register
from .window import WINDOW_ATTRS, ErrorFn, Window, dim_offset, make_window, value_error

CONV_TYPES = frozenset({DType.float16, DType.bfloat16, DType.float32, DType.float64})
QUANT_TYPES = frozenset({DType.int8, DType.uint8})
CONV_ATTRS = {**WINDOW_ATTRS, "group": Attr("int", 1)}


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """Arithmetic type for a float input: at least float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _kernel(ctx: InferContext, w_shape: tuple[Dim, ...]) -> list[int]:
    given = ctx.attrs["kernel_shape"]
    spatial = w_shape[2:]
    if given:
        if len(given) != len(spatial) or any(isinstance(d, int) and d != k for d, k in zip(spatial, given)):
            raise ctx.error(f"kernel_shape {given} does not match weight shape {list(w_shape)}")
        return list(given)
    if not all(isinstance(d, int) for d in spatial):
        raise ctx.error(f"weight spatial dims {list(spatial)} must be static")
    return list(spatial)  # type: ignore[arg-type]


def _check_rank(ctx: InferContext) -> tuple[tuple[Dim, ...], tuple[Dim, ...], int]:
    xs, ws = ctx.input(0).shape, ctx.input(1).shape
    group = ctx.attrs["group"]
    if len(xs) < 3:
        raise ctx.error("input must have rank >= 3 (N, C, spatial...)")
    if len(ws) != len(xs):
        raise ctx.error(f"weight rank {len(ws)} differs from input rank {len(xs)}")
    if group < 1:
        raise ctx.error(f"group {group} must be positive")
    return xs, ws, group


def conv_shape(ctx: InferContext) -> tuple[Dim, ...]:
    """Output shape of a Conv-like node (inputs X, W, attributes of CONV_ATTRS)."""
    xs, ws, group = _check_rank(ctx)
    channels, out_channels = xs[1], ws[0]
    if isinstance(channels, int) and isinstance(ws[1], int) and channels != ws[1] * group:
        raise ctx.error(f"input channels {channels} != weight channels {ws[1]} * group {group}")
    if isinstance(out_channels, int) and out_channels % group:
        raise ctx.error(f"output channels {out_channels} are not divisible by group {group}")
    window = make_window(ctx.attrs, _kernel(ctx, ws), ctx.error)
    out = [window.out_dim(i, d, ctx.fresh) for i, d in enumerate(xs[2:])]
    if any(isinstance(d, int) and d < 1 for d in out):
        raise ctx.error(f"window {list(window.spans)} does not fit the padded input; output would be {out}")
    return (xs[0], out_channels, *out)


def _check_bias(ctx: InferContext, index: int, channels: Dim) -> None:
    if ctx.has(index) and ctx.input(index).shape != (channels,):
        raise ctx.error(f"bias shape {list(ctx.input(index).shape)} must be [{channels}]")


def conv_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    """2 * multiply-accumulates: each output reads C/group * prod(kernel) weights."""
    assert ins[1] is not None
    return dim_prod([2, outs[0].numel, *ins[1].shape[1:]])


def conv_nd(x: np.ndarray, w: np.ndarray, group: int, window: Window) -> np.ndarray:
    """Grouped N-d cross-correlation of x (N, C, *spatial) with w (M, C/group, *kernel)."""
    n, channels = x.shape[:2]
    out_channels = w.shape[0]
    padded, outs = window.pad(x, 0)
    cols = window.windows(padded, outs)  # (N, C, *outs, *kernel)
    rank = len(outs)
    cols = cols.reshape(n, group, channels // group, *cols.shape[2:])
    order = (0, 1, *range(3, 3 + rank), 2, *range(3 + rank, 3 + 2 * rank))
    taps = (channels // group) * int(np.prod(window.kernel))
    cols = cols.transpose(order).reshape(n, group, -1, taps)
    weights = w.reshape(group, out_channels // group, taps).transpose(0, 2, 1)
    y = np.matmul(cols, weights)  # (N, group, positions, M/group)
    return y.transpose(0, 1, 3, 2).reshape(n, out_channels, *outs)


def _window_of(attrs: dict[str, Any], w: np.ndarray) -> Window:
    return make_window(attrs, attrs["kernel_shape"] or w.shape[2:], value_error)


def _conv_infer(ctx: InferContext) -> list[TensorType]:
    dtype = check_same_dtype(ctx, 0, 1, 2)
    shape = conv_shape(ctx)
    _check_bias(ctx, 2, shape[1])
    return [TensorType(dtype, shape)]


def _conv_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, w = inputs[0], inputs[1]
    assert x is not None and w is not None
    ct = compute_dtype(x.dtype)
    y = conv_nd(x.astype(ct, copy=False), w.astype(ct, copy=False), attrs["group"], _window_of(attrs, w))
    if len(inputs) > 2 and inputs[2] is not None:
        y += inputs[2].astype(ct).reshape(-1, *[1] * (x.ndim - 2))
    return [y.astype(x.dtype, copy=False)]


Conv = register(
    OpDef(
        "Conv",
        _conv_infer,
        _conv_reference,
        attrs=CONV_ATTRS,
        inputs=(2, 3),
        dtypes=CONV_TYPES,
        kind="contraction",
        flops=conv_flops,
        doc="N-d convolution (cross-correlation) with optional bias, groups, strides, dilations and padding.",
    )
)


def _conv_integer_infer(ctx: InferContext) -> list[TensorType]:
    for i in (1, 2, 3):
        if ctx.has(i) and ctx.input(i).dtype not in QUANT_TYPES:
            raise ctx.error(f"input {i} must be int8 or uint8, got {ctx.input(i).dtype.name}")
    for i, j in ((2, 0), (3, 1)):
        if ctx.has(i) and ctx.input(i).dtype != ctx.input(j).dtype:
            raise ctx.error(f"zero point {i} must have the element type of input {j}")
    shape = conv_shape(ctx)
    if ctx.has(2) and ctx.input(2).numel != 1:
        raise ctx.error("x_zero_point must be a scalar")
    if ctx.has(3) and ctx.input(3).numel not in (1, shape[1]):
        raise ctx.error(f"w_zero_point must be a scalar or have {shape[1]} values")
    return [TensorType(DType.int32, shape)]


def _conv_integer_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, w = (a.astype(np.float64) for a in inputs[:2])  # type: ignore[union-attr]
    if len(inputs) > 2 and inputs[2] is not None:
        x -= inputs[2].astype(np.float64).reshape(())
    if len(inputs) > 3 and inputs[3] is not None:
        w -= inputs[3].astype(np.float64).reshape(-1, *[1] * (w.ndim - 1))
    y = conv_nd(x, w, attrs["group"], _window_of(attrs, w))
    return [np.rint(y).astype(np.int32)]


ConvInteger = register(
    OpDef(
        "ConvInteger",
        _conv_integer_infer,
        _conv_integer_reference,
        attrs=CONV_ATTRS,
        inputs=(2, 4),
        dtypes=QUANT_TYPES,
        kind="contraction",
        flops=conv_flops,
        doc="Convolution of 8-bit integers minus their zero points, accumulated in int32.",
    )
)


TRANSPOSE_ATTRS = {**CONV_ATTRS, "output_padding": Attr("ints", []), "output_shape": Attr("ints", [])}


def _transpose_geometry(attrs: dict[str, Any], kernel: list[int], error: ErrorFn) -> tuple[Window, list[int]]:
    window = make_window(attrs, kernel, error)
    padding = attrs["output_padding"] or [0] * window.rank
    if len(padding) != window.rank:
        raise error(f"output_padding {padding} needs {window.rank} values")
    if any(not 0 <= p < max(s, d) for p, s, d in zip(padding, window.strides, window.dilations)):
        raise error(f"output_padding {padding} must be smaller than the strides or dilations")
    return window, list(padding)


def _transpose_out(window: Window, padding: list[int], i: int, x: Dim) -> Dim:
    """Output length along spatial axis i from explicit pads: s*(x-1) + span + output_padding - pads."""
    s = window.strides[i]
    offset = window.spans[i] - s + padding[i] - window.pads[i] - window.pads[i + window.rank]
    return dim_offset(dim_mul(x, s), offset)


def _transpose_crop(window: Window, padding: list[int], i: int, x: int, out: int) -> int:
    """Leading cropping of the full transposed output when its length is given as `out`."""
    total = max(0, window.strides[i] * (x - 1) + padding[i] + window.spans[i] - out)
    return total // 2 if window.auto_pad == "SAME_UPPER" else total - total // 2


def _output_shape(attrs: dict[str, Any], rank: int, error: ErrorFn) -> list[int] | None:
    shape = attrs["output_shape"]
    if not shape:
        return None
    if len(shape) != rank:
        raise error(f"output_shape {shape} needs {rank} spatial values")
    return list(shape)


def _conv_transpose_infer(ctx: InferContext) -> list[TensorType]:
    dtype = check_same_dtype(ctx, 0, 1, 2)
    xs, ws, group = _check_rank(ctx)
    if isinstance(xs[1], int) and isinstance(ws[0], int) and xs[1] != ws[0]:
        raise ctx.error(f"input channels {xs[1]} != weight dim 0 ({ws[0]})")
    if isinstance(ws[0], int) and ws[0] % group:
        raise ctx.error(f"input channels {ws[0]} are not divisible by group {group}")
    window, padding = _transpose_geometry(ctx.attrs, _kernel(ctx, ws), ctx.error)
    out_channels = dim_mul(ws[1], group)
    _check_bias(ctx, 2, out_channels)
    given = _output_shape(ctx.attrs, window.rank, ctx.error)
    if given is not None:
        out: list[Dim] = list(given)
    elif window.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [dim_mul(d, s) for d, s in zip(xs[2:], window.strides)]
    else:
        out = [_transpose_out(window, padding, i, d) for i, d in enumerate(xs[2:])]
    if any(isinstance(d, int) and d < 1 for d in out):
        raise ctx.error(f"output spatial shape {out} is empty")
    return [TensorType(dtype, (xs[0], out_channels, *out))]


def conv_transpose_nd(
    x: np.ndarray, w: np.ndarray, group: int, window: Window, outs: list[int], crop: list[int]
) -> np.ndarray:
    """Grouped transposed convolution of x (N, C, *in) with w (C, M/group, *kernel),
    cropped by `crop` at the start of each spatial axis to length `outs`."""
    n, channels, *spatial = x.shape
    per_group = w.shape[1]
    rank = len(spatial)
    taps = int(np.prod(window.kernel))
    xg = x.reshape(n, group, channels // group, -1).transpose(0, 1, 3, 2)  # (N, g, P, C/g)
    wg = w.reshape(group, channels // group, per_group * taps)
    cols = np.matmul(xg, wg).reshape(n, group, *spatial, per_group, *window.kernel)
    extent = [
        max(s * (length - 1) + span, c + o)
        for s, length, span, c, o in zip(window.strides, spatial, window.spans, crop, outs)
    ]
    full = np.zeros((n, group, per_group, *extent), dtype=cols.dtype)
    lead = (slice(None),) * 3
    for tap in itertools.product(*(range(k) for k in window.kernel)):
        part = np.moveaxis(cols[(slice(None), slice(None), *[slice(None)] * rank, slice(None), *tap)], -1, 2)
        target = tuple(
            slice(t * d, t * d + s * (length - 1) + 1, s)
            for t, d, s, length in zip(tap, window.dilations, window.strides, spatial)
        )
        full[lead + target] += part
    y = full[lead + tuple(slice(c, c + o) for c, o in zip(crop, outs))]
    return y.reshape(n, group * per_group, *outs)


def _conv_transpose_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, w = inputs[0], inputs[1]
    assert x is not None and w is not None
    window, padding = _transpose_geometry(attrs, list(attrs["kernel_shape"] or w.shape[2:]), value_error)
    spatial = x.shape[2:]
    outs = _output_shape(attrs, window.rank, value_error)
    if outs is None and window.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        outs = [d * s for d, s in zip(spatial, window.strides)]
    if outs is None:
        crop = list(window.pads[: window.rank])
        outs = [int(_transpose_out(window, padding, i, d)) for i, d in enumerate(spatial)]
    else:
        crop = [_transpose_crop(window, padding, i, d, o) for i, (d, o) in enumerate(zip(spatial, outs))]
    ct = compute_dtype(x.dtype)
    y = conv_transpose_nd(x.astype(ct, copy=False), w.astype(ct, copy=False), attrs["group"], window, outs, crop)
    if len(inputs) > 2 and inputs[2] is not None:
        y += inputs[2].astype(ct).reshape(-1, *[1] * len(spatial))
    return [y.astype(x.dtype, copy=False)]


ConvTranspose = register(
    OpDef(
        "ConvTranspose",
        _conv_transpose_infer,
        _conv_transpose_reference,
        attrs=TRANSPOSE_ATTRS,
        inputs=(2, 3),
        dtypes=CONV_TYPES,
        kind="contraction",
        flops=lambda ins, outs, attrs: dim_prod([2, ins[0].numel, *ins[1].shape[1:]]),  # type: ignore[union-attr]
        doc="Transposed convolution (the gradient of Conv) with output_padding or output_shape.",
    )
)
