"""Converters that decompose ONNX ops into aic primitives: linear quantization
(QuantizeLinear, DequantizeLinear, QLinearMatMul, QLinearConv; DynamicQuantizeLinear
maps onto aic's op of that name) and AffineGrid; plus the version converters of GridSample-16 and
RoiAlign-10 onto the newest forms.

Quantization follows onnxruntime's arithmetic: quantizing divides (in the
scale's type, or `precision`), rounds halves to even, adds the zero point and
saturates; requantizing an int32 accumulator multiplies it in float32 by
``a_scale * b_scale / y_scale`` and rounds the same way. Only the 8- and 16-bit
integer quantized types are supported (aic has no float8 or 4-bit types).
"""

from __future__ import annotations

import numpy as np
from aic.ir import DType, Value

from .converters import ConvertContext, converter, direct_from

F32 = DType.float32
QUANT_RANGES = {DType.int8: (-128, 127), DType.uint8: (0, 255), DType.int16: (-32768, 32767), DType.uint16: (0, 65535)}


def _onnx_type(ctx: ConvertContext, code: int, what: str) -> DType:
    try:
        return DType.from_onnx(code)
    except TypeError:
        raise ctx.error(f"{what} of ONNX element type {code} is not supported") from None


def _quant_range(ctx: ConvertContext, dtype: DType) -> tuple[int, int]:
    if dtype not in QUANT_RANGES:
        raise ctx.error(f"quantized type {dtype.name} is not supported; expected one of int8, uint8, int16, uint16")
    return QUANT_RANGES[dtype]


def _cast(ctx: ConvertContext, v: Value, dtype: DType) -> Value:
    return v if v.type.dtype == dtype else ctx.op("Cast", v, to=dtype.onnx)


def _scalar(ctx: ConvertContext, value: float | int, dtype: DType, hint: str) -> Value:
    return ctx.const(np.asarray(value, dtype=dtype.numpy), hint)


def _along(ctx: ConvertContext, param: Value, x: Value) -> Value:
    """A scale or zero point shaped to broadcast against `x`: one value
    (per-tensor), a vector along `axis` (per-axis), or, with `block_size`, a
    tensor of x's rank whose entries repeat block_size times along `axis`."""
    t = param.type
    if t.rank <= 1 and t.numel == 1:
        return param if t.rank == 0 else ctx.op("Reshape", param, ctx.ints([], "scalar"))
    axis, block, rank = ctx.attrs.get("axis", 1), ctx.attrs.get("block_size", 0), x.type.rank
    if not -rank <= axis < rank:
        raise ctx.error(f"axis {axis} is out of range for rank {rank}")
    axis %= rank
    if block <= 0:
        if t.rank != 1:
            raise ctx.error(f"a per-axis scale or zero point must be 1-D, got {t}")
        trailing = x.type.rank - axis - 1
        return ctx.op("Reshape", param, ctx.ints([-1] + [1] * trailing, "per_axis")) if trailing else param
    if t.rank != x.type.rank:
        raise ctx.error(f"a blocked scale or zero point must have the rank of {x.type}, got {t}")
    length = x.type.shape[axis]
    if isinstance(length, int):
        index = ctx.const(np.arange(length, dtype=np.int64) // block, "block_index")
    else:
        n = ctx.op("Reshape", ctx.op("Shape", x, start=axis, end=axis + 1), ctx.ints([], "scalar"))
        positions = ctx.op("Range", _scalar(ctx, 0, DType.int64, "zero"), n, _scalar(ctx, 1, DType.int64, "one"))
        index = ctx.op("Div", positions, _scalar(ctx, block, DType.int64, "block"))
    return ctx.op("Gather", param, index, axis=axis)


def _saturate(ctx: ConvertContext, q: Value, zero_point: Value | None, target: DType) -> list[Value]:
    """Rounded values plus the zero point, clipped to `target`'s range and cast to it
    (the addition and clipping in float32 or wider, where they are exact)."""
    lo, hi = _quant_range(ctx, target)
    q = _cast(ctx, q, F32) if q.type.dtype.itemsize < 4 else q
    dtype = q.type.dtype
    if zero_point is not None:
        q = ctx.op("Add", q, _cast(ctx, zero_point, dtype))
    q = ctx.op("Clip", q, _scalar(ctx, lo, dtype, "qmin"), _scalar(ctx, hi, dtype, "qmax"))
    return ctx.final("Cast", q, to=target.onnx)


def _division_type(ctx: ConvertContext, x: DType, scale: DType) -> DType:
    """The type x / scale is computed in: `precision`, else the promotion of both
    (numpy's: integers divide in float64; float16 with bfloat16 in float32)."""
    precision = ctx.attrs.get("precision", 0)
    if precision:
        dtype = _onnx_type(ctx, precision, "precision")
        if not dtype.is_float:
            raise ctx.error(f"precision must be a float type, got {dtype.name}")
        return dtype
    if x == scale:
        return x if x.is_float else DType.float64
    if not (x.is_float and scale.is_float):
        return DType.float64
    return max((x, scale), key=lambda d: d.itemsize) if x.itemsize != scale.itemsize else F32


@converter("QuantizeLinear", 10)
def quantize_linear(ctx: ConvertContext) -> list[Value]:
    """y = saturate(round_half_even(x / scale) + zero_point), per tensor, axis or block."""
    x, scale, zero_point = ctx.input(0), ctx.input(1), ctx.input(2)
    assert x is not None and scale is not None
    declared = ctx.attrs.get("output_dtype", 0)
    target = zero_point.type.dtype if zero_point is not None else DType.uint8
    if declared:
        wanted = _onnx_type(ctx, declared, "output_dtype")
        if zero_point is not None and wanted != target:
            raise ctx.error(f"output_dtype {wanted.name} differs from the zero point's type {target.name}")
        target = wanted
    compute = _division_type(ctx, x.type.dtype, scale.type.dtype)
    q = ctx.op("Round", ctx.op("Div", _cast(ctx, x, compute), _cast(ctx, _along(ctx, scale, x), compute)))
    zp = _along(ctx, zero_point, x) if zero_point is not None else None
    return _saturate(ctx, q, zp, target)


@converter("DequantizeLinear", 10)
def dequantize_linear(ctx: ConvertContext) -> list[Value]:
    """y = (x - zero_point) * scale, in float32 (float64 for a float64 scale),
    then rounded to the scale's type or `output_dtype`."""
    x, scale, zero_point = ctx.input(0), ctx.input(1), ctx.input(2)
    assert x is not None and scale is not None
    if x.type.dtype not in (*QUANT_RANGES, DType.int32):
        raise ctx.error(f"quantized type {x.type.dtype.name} is not supported")
    declared = ctx.attrs.get("output_dtype", 0)
    out = _onnx_type(ctx, declared, "output_dtype") if declared else scale.type.dtype
    compute = DType.float64 if scale.type.dtype == DType.float64 else F32
    v = _cast(ctx, x, compute)
    if zero_point is not None:
        v = ctx.op("Sub", v, _cast(ctx, _along(ctx, zero_point, x), compute))
    s = _cast(ctx, _along(ctx, scale, x), compute)
    if out == compute:
        return ctx.final("Mul", v, s)
    return ctx.final("Cast", ctx.op("Mul", v, s), to=out.onnx)


@converter("DynamicQuantizeLinear", 11)
def dynamic_quantize_linear(ctx: ConvertContext) -> list[Value]:
    """aic's DynamicQuantizeLinear (one kernel: the range, then the quantizer; ir/ops/quant.py)."""
    return ctx.emit("DynamicQuantizeLinear", [ctx.inputs[0]], num_outputs=3)


def _requantize(ctx: ConvertContext, acc: Value, multiplier: Value, zero_point: Value) -> list[Value]:
    """An int32 accumulator times the float32 multiplier, rounded, shifted by the
    zero point and saturated to its type."""
    q = ctx.op("Round", ctx.op("Mul", ctx.op("Cast", acc, to=F32.onnx), _cast(ctx, multiplier, F32)))
    return _saturate(ctx, q, zero_point, zero_point.type.dtype)


def _multiplier(ctx: ConvertContext, a_scale: Value, b_scale: Value, y_scale: Value) -> Value:
    """a_scale * b_scale / y_scale in the scales' type."""
    return ctx.op("Div", ctx.op("Mul", a_scale, b_scale), y_scale)


def _flat(ctx: ConvertContext, v: Value) -> Value:
    """A one-element scale or zero point as a scalar; others unchanged."""
    return ctx.op("Reshape", v, ctx.ints([], "scalar")) if v.type.rank == 1 and v.type.numel == 1 else v


@converter("QLinearMatMul", 10)
def qlinear_matmul(ctx: ConvertContext) -> list[Value]:
    """MatMulInteger, then requantization. A 1-D a_scale holds one scale per row
    of a, a 1-D b_scale one per column of b."""
    a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = ctx.inputs
    acc = ctx.op("MatMulInteger", a, b, a_zp, b_zp)
    row_scale = _flat(ctx, a_scale)
    if row_scale.type.rank == 1:
        row_scale = ctx.op("Unsqueeze", row_scale, ctx.ints([1], "row"))
    multiplier = _multiplier(ctx, row_scale, _flat(ctx, b_scale), _flat(ctx, y_scale))
    return _requantize(ctx, acc, multiplier, _flat(ctx, y_zp))


@converter("QLinearConv", 10)
def qlinear_conv(ctx: ConvertContext) -> list[Value]:
    """ConvInteger plus the int32 bias, then requantization (w_scale per output channel or one)."""
    x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp = ctx.inputs[:8]
    bias = ctx.input(8)
    acc = ctx.op("ConvInteger", x, w, x_zp, w_zp, **ctx.attrs)
    trailing = [1] * (x.type.rank - 2)
    if bias is not None:
        acc = ctx.op("Add", acc, ctx.op("Reshape", bias, ctx.ints([-1, *trailing], "bias_shape")))
    channel_scale = _flat(ctx, w_scale)
    if channel_scale.type.rank == 1:
        channel_scale = ctx.op("Reshape", channel_scale, ctx.ints([-1, *trailing], "scale_shape"))
    multiplier = _multiplier(ctx, _flat(ctx, x_scale), channel_scale, _flat(ctx, y_scale))
    return _requantize(ctx, acc, multiplier, _flat(ctx, y_zp))


# AffineGrid ----------------------------------------------------------------


@converter("AffineGrid", 20)
def affine_grid(ctx: ConvertContext) -> list[Value]:
    """grid[n, *p, :] = theta[n] @ (x_p, y_p[, z_p], 1) over the normalised pixel
    centres of the output size (-1 and 1 at the corner pixels' centres with
    align_corners, at their outer edges without), as a broadcast sum of
    theta's columns times one coordinate vector per spatial axis."""
    theta, size = ctx.inputs[:2]
    dims = theta.type.shape[1] if theta.type.rank == 3 else None
    if dims not in (2, 3) or theta.type.shape[2] != dims + 1:
        raise ctx.error(f"theta must have shape [N, 2, 3] or [N, 3, 4], got {theta.type}")
    if size.type.shape != (dims + 2,):
        raise ctx.error(f"size must hold {dims + 2} values (N, C and the {dims} spatial sizes), got {size.type}")
    dtype = theta.type.dtype
    rank = dims + 2  # of the grid: N, spatial..., coordinate
    total: Value | None = None
    for j in range(dims):
        term = ctx.op("Mul", _column(ctx, theta, j), _base_coords(ctx, size, dims - 1 - j, rank, dtype))
        total = term if total is None else ctx.op("Add", total, term)
    return ctx.final("Add", total, _column(ctx, theta, dims))


def _column(ctx: ConvertContext, theta: Value, j: int) -> Value:
    """theta[:, :, j] shaped [N, 1, ..., 1, dims] to broadcast over the grid."""
    dims = theta.type.shape[1]
    column = ctx.op("Gather", theta, ctx.ints([j], f"col{j}"), axis=2)  # [N, dims, 1]
    return ctx.op("Reshape", column, ctx.ints([-1, *[1] * dims, dims], "column_shape"))


def _base_coords(ctx: ConvertContext, size: Value, spatial: int, rank: int, dtype: DType) -> Value:
    """Normalised coordinates along spatial axis `spatial` (0: the first after N, C),
    shaped to broadcast over the grid."""
    length = ctx.op("Cast", ctx.op("Gather", size, ctx.ints([2 + spatial], "dim"), axis=0), to=dtype.onnx)
    length = ctx.op("Reshape", length, ctx.ints([], "scalar"))
    zero, one, two = (_scalar(ctx, v, dtype, h) for v, h in ((0, "zero"), (1, "one"), (2, "two")))
    k = ctx.op("Range", zero, length, one)
    if ctx.attrs.get("align_corners", 0):  # 1 - 2 (L - 1 - k) / (L - 1); one pixel sits at 1, as in onnxruntime
        last = ctx.op("Sub", length, one)
        coords = ctx.op("Sub", one, ctx.op("Div", ctx.op("Mul", ctx.op("Sub", last, k), two), ctx.op("Max", last, one)))
    else:
        coords = ctx.op("Sub", ctx.op("Div", ctx.op("Add", ctx.op("Mul", k, two), one), length), one)
    shape = [1] * rank
    shape[1 + spatial] = -1
    return ctx.op("Reshape", coords, ctx.ints(shape, "coords_shape"))


# Older forms of GridSample and RoiAlign --------------------------------------------

_GRID_SAMPLE_MODES = {"bilinear": "linear", "bicubic": "cubic", "nearest": "nearest"}


@converter("GridSample", 16)
def grid_sample_v16(ctx: ConvertContext) -> list[Value]:
    """GridSample-16 named its modes bilinear and bicubic (and took 4-D inputs only)."""
    mode = ctx.attrs.get("mode", "bilinear")
    if mode not in _GRID_SAMPLE_MODES:
        raise ctx.error(f"mode '{mode}' is not one of {sorted(_GRID_SAMPLE_MODES)}")
    return ctx.emit("GridSample", ctx.inputs, {**ctx.attrs, "mode": _GRID_SAMPLE_MODES[mode]})


direct_from("GridSample", 20)


@converter("RoiAlign", 10)
def roi_align_v10(ctx: ConvertContext) -> list[Value]:
    """RoiAlign-10 did not shift pixel coordinates by half a pixel (output_half_pixel)."""
    return ctx.emit("RoiAlign", ctx.inputs, {**ctx.attrs, "coordinate_transformation_mode": "output_half_pixel"})


direct_from("RoiAlign", 16)
