"""Resize (opset 19): nearest, linear and cubic interpolation over any axes.

Resizing is separable, so the reference resizes one axis at a time: nearest
gathers indices, linear and cubic multiply by an (out x in) weight matrix.
Coordinates follow onnxruntime's float32 arithmetic so that rounding ties in
nearest mode land on the same input pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..dims import Dim, dim_mul, dim_prod
from ..dtypes import NUMERIC_TYPES, DType
from ..types import TensorType
from .common import norm_axes
from .registry import Attr, InferContext, OpDef, register
from .resize_weights import antialias_weights, cubic_weights, linear_weights, nearest_indices, original_coords

COORDINATE_MODES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_crop_and_resize",
    "tf_half_pixel_for_nn",
)
RESIZE_ATTRS = {
    "mode": Attr("string", "nearest", ("nearest", "linear", "cubic")),
    "coordinate_transformation_mode": Attr("string", "half_pixel", COORDINATE_MODES),
    "nearest_mode": Attr("string", "round_prefer_floor", ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")),
    "cubic_coeff_a": Attr("float", -0.75),
    "exclude_outside": Attr("int", 0, (0, 1)),
    "extrapolation_value": Attr("float", 0.0),
    "antialias": Attr("int", 0, (0, 1)),
    "axes": Attr("ints", []),
    "keep_aspect_ratio_policy": Attr("string", "stretch", ("stretch", "not_larger", "not_smaller")),
}


def _scaled_length(length: int, scale: np.float32) -> int:
    """floor(scale * length) in float32, as onnxruntime computes it."""
    return int(np.floor(np.float32(scale) * np.float32(length)))


def plan(
    shape: Sequence[int], axes: Sequence[int], scales: Sequence[float] | None, sizes: Sequence[int] | None, policy: str
) -> dict[int, tuple[int, np.float32]]:
    """Output length and float32 scale of every resized axis."""
    if scales is not None:
        return {a: (_scaled_length(shape[a], np.float32(s)), np.float32(s)) for a, s in zip(axes, scales)}
    assert sizes is not None
    ratios = {a: np.float32(n) / np.float32(shape[a]) if shape[a] else np.float32(1) for a, n in zip(axes, sizes)}
    if policy == "stretch":
        return {a: (int(n), ratios[a]) for a, n in zip(axes, sizes)}
    common = min(ratios.values()) if policy == "not_larger" else max(ratios.values())
    return {a: (int(np.floor(np.float64(common * np.float32(shape[a])) + 0.5)), common) for a in axes}


def _given(ctx: InferContext, index: int) -> bool:
    """An optional input that is present and not an empty tensor."""
    return ctx.has(index) and ctx.input(index).shape != (0,)


def _resize_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.input(0)
    attrs = ctx.attrs
    axes = norm_axes(ctx, attrs["axes"] or range(x.rank), x.rank)
    if attrs["mode"] != "nearest" and not (x.dtype.is_float or x.dtype.is_int):
        raise ctx.error(f"mode '{attrs['mode']}' needs a numeric input")
    if attrs["antialias"] and attrs["mode"] == "nearest":
        raise ctx.error("antialias applies to the linear and cubic modes only")
    has_scales, has_sizes = _given(ctx, 2), _given(ctx, 3)
    if has_scales == has_sizes:
        raise ctx.error("exactly one of 'scales' and 'sizes' must be given")
    index = 2 if has_scales else 3
    given = ctx.input(index)
    if given.rank != 1 or (isinstance(given.shape[0], int) and given.shape[0] != len(axes)):
        raise ctx.error(
            f"'{('scales', 'sizes')[index - 2]}' must hold {len(axes)} values, got shape {list(given.shape)}"
        )
    if (has_scales and not given.dtype.is_float) or (has_sizes and given.dtype != DType.int64):
        raise ctx.error(f"input {index} has element type {given.dtype.name}")
    out = list(x.shape)
    resized = [x.shape[a] for a in axes]
    if has_scales:
        scales = ctx.const(2)
        for i, a in enumerate(axes):
            out[a] = ctx.fresh("resize") if scales is None else _scaled_dim(ctx, x.shape[a], np.float32(scales[i]))
        return [x.with_shape(out)]
    sizes = ctx.values(3)
    if sizes is not None and attrs["keep_aspect_ratio_policy"] == "stretch":
        for a, n in zip(axes, sizes):
            out[a] = n
    elif sizes is not None and all(isinstance(d, int) for d in [*sizes, *resized]):
        for a, (n, _) in plan(x.shape, axes, None, sizes, attrs["keep_aspect_ratio_policy"]).items():  # type: ignore[arg-type]
            out[a] = n
    else:
        for a in axes:
            out[a] = ctx.fresh("resize")
    return [x.with_shape(out)]


def _scaled_dim(ctx: InferContext, length: Dim, scale: np.float32) -> Dim:
    if isinstance(length, int):
        return _scaled_length(length, scale)
    if float(scale).is_integer():
        return dim_mul(length, int(scale))
    return ctx.fresh("resize")


def _present(inputs: list[np.ndarray | None], index: int) -> np.ndarray | None:
    array = inputs[index] if index < len(inputs) else None
    return None if array is None or array.size == 0 else array


def _resize_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x = inputs[0]
    assert x is not None
    roi, scales, sizes = (_present(inputs, i) for i in (1, 2, 3))
    axes = [a % x.ndim for a in attrs["axes"]] or list(range(x.ndim))
    geometry = plan(
        x.shape,
        axes,
        None if scales is None else scales.tolist(),
        None if sizes is None else sizes.tolist(),
        attrs["keep_aspect_ratio_policy"],
    )
    mode, coordinate_mode = attrs["mode"], attrs["coordinate_transformation_mode"]
    crop = coordinate_mode == "tf_crop_and_resize"
    y = x if mode == "nearest" else x.astype(np.float64)
    outside: list[tuple[int, np.ndarray]] = []
    for i, axis in enumerate(axes):
        length, (out, scale) = x.shape[axis], geometry[axis]
        box = (0.0, 1.0) if roi is None else (float(roi[i]), float(roi[i + len(axes)]))
        if out == length and scale == 1 and (not crop or box == (0.0, 1.0)):
            continue
        coords = original_coords(coordinate_mode, out, length, scale, box)
        if crop:
            outside.append((axis, (coords < 0) | (coords > length - 1)))
        if mode == "nearest":
            y = np.take(y, nearest_indices(coords, attrs["nearest_mode"], length), axis=axis)
            continue
        if attrs["antialias"]:
            weights = antialias_weights(coords, length, scale, mode, attrs["cubic_coeff_a"], attrs["exclude_outside"])
        elif mode == "linear":
            weights = linear_weights(coords, length)
        else:
            weights = cubic_weights(coords, length, attrs["cubic_coeff_a"], attrs["exclude_outside"])
        y = np.moveaxis(np.tensordot(weights, y, axes=(1, axis)), 0, axis)
    if outside:
        mask = np.zeros(y.shape, bool)
        for axis, flags in outside:
            mask |= flags.reshape([-1 if a == axis else 1 for a in range(y.ndim)])
        y = np.where(mask, np.asarray(attrs["extrapolation_value"]).astype(y.dtype), y)
    return [_cast(y, x.dtype)]


def _cast(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the input type; integers truncate toward zero and saturate."""
    if dtype.kind in "iu" and y.dtype.kind == "f":
        info = np.iinfo(dtype)
        return np.clip(np.trunc(y), info.min, info.max).astype(dtype)
    return y.astype(dtype, copy=False)


def _resize_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    taps = {"nearest": 0, "linear": 2, "cubic": 4}[attrs["mode"]]
    return dim_prod([2 * taps, outs[0].numel]) if taps else 0


Resize = register(
    OpDef(
        "Resize",
        _resize_infer,
        _resize_reference,
        attrs=RESIZE_ATTRS,
        inputs=(1, 4),
        dtypes=NUMERIC_TYPES | {DType.bool},
        kind="other",
        flops=_resize_flops,
        doc="Resize by scales or to sizes with nearest, (multi-)linear or cubic interpolation.",
    )
)
