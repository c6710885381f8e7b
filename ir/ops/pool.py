"""Pooling: MaxPool (with Indices), AveragePool, LpPool and their global forms.

References reduce a strided view of every window of the padded input, so they
stay vectorised for any rank, stride, dilation and ceil_mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..dims import Dim, dim_prod
from ..dtypes import DType
from ..types import TensorType
from .conv import CONV_TYPES, compute_dtype
from .registry import Attr, InferContext, OpDef, register
from .window import WINDOW_ATTRS, ErrorFn, Window, make_window, value_error

POOL_ATTRS = {**WINDOW_ATTRS, "kernel_shape": Attr("ints"), "ceil_mode": Attr("int", 0, (0, 1))}
MAX_POOL_TYPES = CONV_TYPES | {DType.int8, DType.uint8}


def _pool_window(attrs: dict[str, Any], error: ErrorFn) -> Window:
    return make_window(attrs, attrs["kernel_shape"], error, ceil_mode=bool(attrs["ceil_mode"]))


def _pool_shape(ctx: InferContext) -> tuple[Dim, ...]:
    shape = ctx.input(0).shape
    if len(shape) < 3:
        raise ctx.error("input must have rank >= 3 (N, C, spatial...)")
    kernel = ctx.attrs["kernel_shape"]
    if len(kernel) != len(shape) - 2:
        raise ctx.error(f"kernel_shape {kernel} needs {len(shape) - 2} values")
    window = _pool_window(ctx.attrs, ctx.error)
    out = [window.out_dim(i, d, ctx.fresh) for i, d in enumerate(shape[2:])]
    if any(isinstance(d, int) and d < 1 for d in out):
        raise ctx.error(f"window {list(window.spans)} does not fit the padded input; output would be {out}")
    return (*shape[:2], *out)


def _pool_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    return dim_prod([outs[0].numel, *attrs["kernel_shape"]])


def _taps(view: np.ndarray, rank: int) -> np.ndarray:
    """Flatten the trailing `rank` kernel axes of a window view into one."""
    return view.reshape(*view.shape[: view.ndim - rank], -1)


def _lowest(dtype: np.dtype) -> Any:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _max_pool_infer(ctx: InferContext) -> list[TensorType]:
    shape = _pool_shape(ctx)
    return [TensorType(ctx.input(0).dtype, shape), TensorType(DType.int64, shape)]


def _max_pool_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    (x,) = inputs
    assert x is not None
    window = _pool_window(attrs, value_error)
    rank = window.rank
    padded, outs = window.pad(x, _lowest(x.dtype))
    taps = _taps(window.windows(padded, outs), rank)
    best = np.argmax(taps, axis=-1)
    y = np.take_along_axis(taps, best[..., None], axis=-1)[..., 0]
    spatial = x.shape[2:]
    coords = []
    for i, k in enumerate(np.unravel_index(best, window.kernel)):
        begin = window.pad_amounts(i, spatial[i])[0]
        position = np.arange(outs[i]).reshape([-1 if j == i else 1 for j in range(rank)]) * window.strides[i]
        coords.append(position - begin + k * window.dilations[i])
    order = "F" if attrs["storage_order"] else "C"
    plane = int(np.prod(spatial))
    flat = np.ravel_multi_index(tuple(coords), spatial, order=order, mode="clip")
    base = np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[0], x.shape[1], *[1] * rank) * plane
    return [y, (base + flat).astype(np.int64)]


MaxPool = register(
    OpDef(
        "MaxPool",
        _max_pool_infer,
        _max_pool_reference,
        attrs={**POOL_ATTRS, "storage_order": Attr("int", 0, (0, 1))},
        outputs=(1, 2),
        dtypes=MAX_POOL_TYPES,
        kind="reduction",
        flops=_pool_flops,
        doc="Maximum over each window; the optional Indices output holds flat input positions.",
    )
)


def _average_pool_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    (x,) = inputs
    assert x is not None
    window = _pool_window(attrs, value_error)
    ct = compute_dtype(x.dtype)
    padded, outs = window.pad(x.astype(ct, copy=False), 0)
    axes = tuple(range(-window.rank, 0))
    total = window.windows(padded, outs).sum(axis=axes)
    inside = np.ones(x.shape[2:], ct)
    mask, _ = window.pad(inside, 1 if attrs["count_include_pad"] else 0, extra=0)
    counts = window.windows(mask, outs).sum(axis=axes)
    return [(total / counts).astype(x.dtype, copy=False)]


AveragePool = register(
    OpDef(
        "AveragePool",
        lambda ctx: [TensorType(ctx.input(0).dtype, _pool_shape(ctx))],
        _average_pool_reference,
        attrs={**POOL_ATTRS, "count_include_pad": Attr("int", 0, (0, 1))},
        dtypes=CONV_TYPES,
        kind="reduction",
        flops=_pool_flops,
        doc="Mean over each window, counting explicit pads only with count_include_pad.",
    )
)


def _lp(x: np.ndarray, p: int, axes: tuple[int, ...]) -> np.ndarray:
    return np.sum(np.abs(x) ** p, axis=axes, keepdims=False) ** (1.0 / p)


def _lp_pool_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    (x,) = inputs
    assert x is not None
    window = _pool_window(attrs, value_error)
    padded, outs = window.pad(x.astype(compute_dtype(x.dtype), copy=False), 0)
    y = _lp(window.windows(padded, outs), attrs["p"], tuple(range(-window.rank, 0)))
    return [y.astype(x.dtype, copy=False)]


def _check_p(ctx: InferContext) -> None:
    if ctx.attrs["p"] < 1:
        raise ctx.error(f"p = {ctx.attrs['p']} must be positive")


def _lp_pool_infer(ctx: InferContext) -> list[TensorType]:
    _check_p(ctx)
    return [TensorType(ctx.input(0).dtype, _pool_shape(ctx))]


LpPool = register(
    OpDef(
        "LpPool",
        _lp_pool_infer,
        _lp_pool_reference,
        attrs={**POOL_ATTRS, "p": Attr("int", 2)},
        dtypes=CONV_TYPES,
        kind="reduction",
        flops=_pool_flops,
        doc="Lp norm of each window: (sum |x|^p)^(1/p), zero padded.",
    )
)


def _global_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.input(0)
    if x.rank < 3:
        raise ctx.error("input must have rank >= 3 (N, C, spatial...)")
    if "p" in ctx.attrs:
        _check_p(ctx)
    return [TensorType(x.dtype, (*x.shape[:2], *[1] * (x.rank - 2)))]


GlobalFn = Callable[[np.ndarray, tuple[int, ...], dict[str, Any]], np.ndarray]


def _global(name: str, fn: GlobalFn, attrs: dict[str, Attr], doc: str) -> OpDef:
    """A pool over every spatial position: fn(x, spatial axes, attrs) reduces without keepdims."""

    def reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
        (x,) = inputs
        assert x is not None
        axes = tuple(range(2, x.ndim))
        y = fn(x.astype(compute_dtype(x.dtype), copy=False), axes, attrs)
        return [np.asarray(y).reshape(*x.shape[:2], *[1] * len(axes)).astype(x.dtype, copy=False)]

    return register(
        OpDef(
            name,
            _global_infer,
            reference,
            attrs=attrs,
            dtypes=CONV_TYPES,
            kind="reduction",
            flops=lambda ins, outs, attrs: ins[0].numel,  # type: ignore[union-attr]
            doc=doc,
        )
    )


GlobalAveragePool = _global(
    "GlobalAveragePool", lambda x, axes, attrs: x.mean(axis=axes), {}, "Mean over all spatial positions."
)
GlobalMaxPool = _global(
    "GlobalMaxPool", lambda x, axes, attrs: x.max(axis=axes), {}, "Maximum over all spatial positions."
)
GlobalLpPool = _global(
    "GlobalLpPool",
    lambda x, axes, attrs: _lp(x, attrs["p"], axes),
    {"p": Attr("int", 2)},
    "Lp norm over all spatial positions.",
)


def _roi_pool_infer(ctx: InferContext) -> list[TensorType]:
    x, rois = ctx.input(0), ctx.input(1)
    pooled = ctx.attrs["pooled_shape"]
    if x.rank != 4:
        raise ctx.error("input must be 4-D (N, C, H, W)")
    if rois.dtype != x.dtype or rois.rank != 2 or (isinstance(rois.shape[1], int) and rois.shape[1] != 5):
        raise ctx.error(f"rois must be [num_rois, 5] of {x.dtype.name}, got {rois}")
    if len(pooled) != 2 or min(pooled) < 1:
        raise ctx.error(f"pooled_shape {pooled} must be two positive sizes")
    return [TensorType(x.dtype, (rois.shape[0], x.shape[1], *pooled))]


def _round_half_away(v: float) -> int:
    return int(np.copysign(np.floor(abs(v) + 0.5), v))


def _roi_pool_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, rois = inputs
    assert x is not None and rois is not None
    pooled_h, pooled_w = attrs["pooled_shape"]
    height, width = x.shape[2:]
    y = np.zeros((len(rois), x.shape[1], pooled_h, pooled_w), x.dtype)
    for r, (batch, *box) in enumerate(rois.tolist()):
        x0, y0, x1, y1 = (_round_half_away(v * attrs["spatial_scale"]) for v in box)
        bin_h, bin_w = max(y1 - y0 + 1, 1) / pooled_h, max(x1 - x0 + 1, 1) / pooled_w
        for ph in range(pooled_h):
            top = min(max(int(np.floor(ph * bin_h)) + y0, 0), height)
            bottom = min(max(int(np.ceil((ph + 1) * bin_h)) + y0, 0), height)
            for pw in range(pooled_w):
                left = min(max(int(np.floor(pw * bin_w)) + x0, 0), width)
                right = min(max(int(np.ceil((pw + 1) * bin_w)) + x0, 0), width)
                if bottom > top and right > left:
                    y[r, :, ph, pw] = x[int(batch), :, top:bottom, left:right].max(axis=(1, 2))
    return [y]


MaxRoiPool = register(
    OpDef(
        "MaxRoiPool",
        _roi_pool_infer,
        _roi_pool_reference,
        attrs={"pooled_shape": Attr("ints"), "spatial_scale": Attr("float", 1.0)},
        inputs=(2, 2),
        dtypes=CONV_TYPES,
        kind="reduction",
        flops=lambda ins, outs, attrs: ins[0].numel,  # type: ignore[union-attr]
        doc="Max over a pooled_shape grid of bins in each region [batch, x1, y1, x2, y2]; empty bins give 0.",
    )
)
