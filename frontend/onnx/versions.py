"""Version converters for data-movement ops: older ONNX forms onto the newest.

Older opsets passed shapes, axes, pads and sizes as attributes where the newest
forms take inputs; each converter here turns such attributes into constant
inputs of the aic op (which follows the newest semantics).
"""

from __future__ import annotations

import numpy as np
import onnx
from aic.ir import Value

from .converters import ConvertContext, converter, direct_from


def _pop(ctx: ConvertContext, *names: str) -> dict:
    """Attributes without `names` (which the old form had and the new one lacks)."""
    return {k: v for k, v in ctx.attrs.items() if k not in names}


@converter("Reshape", 1)
def reshape_v1(ctx: ConvertContext) -> list[Value]:
    """Reshape-1 took the target shape as an attribute."""
    if "shape" not in ctx.attrs:
        raise ctx.error("missing attribute 'shape'")
    return ctx.final("Reshape", ctx.inputs[0], ctx.ints(ctx.attrs["shape"], "shape"))


direct_from("Reshape", 5)


@converter("Squeeze", 1)
def squeeze_v1(ctx: ConvertContext) -> list[Value]:
    """Squeeze-1/11 took `axes` as an attribute."""
    axes = ctx.attrs.get("axes")  # absent or empty: every size-1 dim
    return ctx.final("Squeeze", ctx.inputs[0], ctx.ints(axes, "axes") if axes else None)


@converter("Unsqueeze", 1)
def unsqueeze_v1(ctx: ConvertContext) -> list[Value]:
    """Unsqueeze-1/11 took `axes` as an attribute."""
    return ctx.final("Unsqueeze", ctx.inputs[0], ctx.ints(ctx.attrs["axes"], "axes"))


direct_from("Squeeze", 13)
direct_from("Unsqueeze", 13)


@converter("Slice", 1)
def slice_v1(ctx: ConvertContext) -> list[Value]:
    """Slice-1 took starts, ends and axes as attributes (and had no steps)."""
    axes = ctx.attrs.get("axes")
    inputs = [ctx.inputs[0], ctx.ints(ctx.attrs["starts"], "starts"), ctx.ints(ctx.attrs["ends"], "ends")]
    if axes is not None:
        inputs.append(ctx.ints(axes, "axes"))
    return ctx.final("Slice", *inputs)


direct_from("Slice", 10)


@converter("Split", 1, 2, 11)
def split_v1(ctx: ConvertContext) -> list[Value]:
    """Split-1 took `split` as an attribute or an input; 2 and 11 as an attribute."""
    split = ctx.attrs.get("split")
    sizes = ctx.ints(split, "split") if split else ctx.input(1)
    return _split(ctx, sizes)


@converter("Split", 13)
def split_v13(ctx: ConvertContext) -> list[Value]:
    return _split(ctx, ctx.input(1))


def _split(ctx: ConvertContext, sizes: Value | None) -> list[Value]:
    """Without sizes, the older forms split into as many equal parts as there are outputs."""
    attrs = {"axis": ctx.attrs.get("axis", 0)}
    if sizes is None:
        attrs["num_outputs"] = len(ctx.output_names)
    return ctx.emit("Split", [ctx.inputs[0], sizes], attrs, num_outputs=len(ctx.output_names))


direct_from("Split", 18)


@converter("Pad", 1, 2)
def pad_v2(ctx: ConvertContext) -> list[Value]:
    """Pad-1 named the pads `paddings`, Pad-2 `pads`; both took the fill value as a float attribute."""
    pads = ctx.attrs["pads" if ctx.opset >= 2 else "paddings"]
    x = ctx.inputs[0]
    value = ctx.const(ctx.attrs.get("value", 0.0), "value", dtype=x.type.dtype.numpy)
    return ctx.final("Pad", x, ctx.ints(pads, "pads"), value, mode=ctx.attrs.get("mode", "constant"))


direct_from("Pad", 11)


@converter("Concat", 1)
def concat_v1(ctx: ConvertContext) -> list[Value]:
    """Concat-1 concatenated along axis 1 by default."""
    return ctx.emit("Concat", ctx.inputs, {"axis": ctx.attrs.get("axis", 1)})


direct_from("Concat", 4)


@converter("TopK", 1)
def topk_v1(ctx: ConvertContext) -> list[Value]:
    """TopK-1 took `k` as an attribute."""
    k = ctx.ints([ctx.attrs["k"]], "k")
    return ctx.emit("TopK", [ctx.inputs[0], k], _pop(ctx, "k"), num_outputs=2)


direct_from("TopK", 10)


@converter("Cast", 1)
def cast_v1(ctx: ConvertContext) -> list[Value]:
    """Cast-1 named the target type by string ("FLOAT"); later opsets use the type code."""
    to = ctx.attrs["to"]
    try:
        code = onnx.TensorProto.DataType.Value(to.upper())
    except ValueError:
        raise ctx.error(f"unknown element type '{to}'") from None
    return ctx.final("Cast", ctx.inputs[0], to=code)


direct_from("Cast", 6)


_CONSTANT_FORMS = {
    "value_float": np.float32,
    "value_floats": np.float32,
    "value_int": np.int64,
    "value_ints": np.int64,
}


@converter("Constant", 1)
def constant(ctx: ConvertContext) -> list[Value]:
    """A Constant node becomes a constant value (weights and shapes then fold
    into type inference). Exactly one value attribute is allowed."""
    forms = sorted(ctx.attrs)
    if len(forms) != 1:
        raise ctx.error(f"expected exactly one value attribute, got {forms}")
    form = forms[0]
    if form == "value":
        return ctx.final_const(np.asarray(ctx.attrs["value"]))
    if form in _CONSTANT_FORMS:
        return ctx.final_const(np.asarray(ctx.attrs[form], dtype=_CONSTANT_FORMS[form]))
    raise ctx.error(f"attribute '{form}' is not supported (tensors of numbers only)")


@converter("Scatter", 9)
def scatter(ctx: ConvertContext) -> list[Value]:
    """Scatter (deprecated in opset 11) is ScatterElements without reduction."""
    return ctx.emit("ScatterElements", ctx.inputs, {"axis": ctx.attrs.get("axis", 0)})
