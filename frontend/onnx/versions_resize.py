"""Version converters for Upsample and Resize, onto Resize-19.

Upsample-7/9 and Resize-10 sample at ``x_out / scale`` (the "asymmetric"
transformation). Their nearest mode, as onnxruntime implements it, rounds down
on axes that grow and up on axes that shrink; with constant scales both kinds
of axes are resized by one Resize each (nearest resizing is separable).
Resize-11/13 may pass empty roi and scales tensors for "absent".
"""

from __future__ import annotations

import numpy as np
from aic.ir import Value

from .converters import ConvertContext, converter, direct_from


def _resize_asymmetric(ctx: ConvertContext, scales: Value) -> list[Value]:
    x = ctx.inputs[0]
    attrs = {"mode": ctx.attrs.get("mode", "nearest"), "coordinate_transformation_mode": "asymmetric"}
    if attrs["mode"] != "nearest" or scales.const is None:
        return ctx.final("Resize", x, None, scales, **attrs, nearest_mode="floor")
    values = np.asarray(scales.const, np.float32).reshape(-1).tolist()
    grow = [i for i, s in enumerate(values) if s > 1]
    shrink = [i for i, s in enumerate(values) if s < 1]
    if not grow or not shrink:
        return ctx.final("Resize", x, None, scales, **attrs, nearest_mode="ceil" if shrink else "floor")
    grown = ctx.op("Resize", x, None, _part(ctx, values, grow), **attrs, nearest_mode="floor", axes=grow)
    return ctx.final("Resize", grown, None, _part(ctx, values, shrink), **attrs, nearest_mode="ceil", axes=shrink)


def _part(ctx: ConvertContext, values: list[float], axes: list[int]) -> Value:
    return ctx.const(np.array([values[i] for i in axes], np.float32), "scales")


@converter("Upsample", 7)
def upsample_v7(ctx: ConvertContext) -> list[Value]:
    """Upsample-7 took scales as an attribute."""
    return _resize_asymmetric(ctx, ctx.const(np.asarray(ctx.attrs["scales"], np.float32), "scales"))


@converter("Upsample", 9)
@converter("Resize", 10)
def resize_v10(ctx: ConvertContext) -> list[Value]:
    """Upsample-9 and Resize-10 take (X, scales)."""
    return _resize_asymmetric(ctx, ctx.inputs[1])


@converter("Resize", 11)
def resize_v11(ctx: ConvertContext) -> list[Value]:
    """Resize-11/13: an empty roi or scales tensor means the input is absent."""
    inputs = [None if v is not None and v.type.shape == (0,) else v for v in ctx.inputs]
    return ctx.emit("Resize", inputs, ctx.attrs)


direct_from("Resize", 18)
