"""Converters of TensorFlow's neural-network ops: convolution, pooling, batch norm,
matrix products, activations, softmax, resize.

Convolution, pooling and fused batch norm are aic ops on channels-first data:
their converters transpose NHWC input to NCHW and the result back (and HWIO
filters to OIHW constants); the layout passes cancel the transposes that meet.
"""

from __future__ import annotations

import numpy as np
from aic.ir import DType, Value

from .context import TFContext, converter
from .tensors import aic_dtype


def _spatial(ctx: TFContext, values: list[int], rank: int) -> list[int]:
    """The spatial entries of a per-dim attribute (strides, dilations, ksize)."""
    if len(values) != rank:
        raise ctx.error(f"expects {rank} entries per attribute, got {values}")
    return values[1:-1] if ctx.channels_last() else values[2:]


def _padding(ctx: TFContext, rank: int) -> dict:
    """aic pad attributes from TensorFlow's padding (SAME pads the extra at the end)."""
    padding = ctx.attr("padding")
    if padding == "SAME":
        return {"auto_pad": "SAME_UPPER"}
    if padding == "VALID":
        return {"auto_pad": "VALID"}
    if padding == "EXPLICIT":
        pairs = np.asarray(ctx.attr("explicit_paddings"), dtype=np.int64).reshape(rank, 2)
        spatial = pairs[1:-1] if ctx.channels_last() else pairs[2:]
        return {"pads": [*spatial[:, 0].tolist(), *spatial[:, 1].tolist()]}
    raise ctx.error(f"padding {padding} is not supported")


def _channels_first(ctx: TFContext, x: Value) -> Value:
    return ctx.to_channels_first(x) if ctx.channels_last() else x


def _back(ctx: TFContext, y: Value) -> list[Value]:
    return [ctx.to_channels_last(y) if ctx.channels_last() else y]


def _oihw(ctx: TFContext, w: Value) -> Value:
    """A spatial...-I-O filter as O-I-spatial."""
    r = w.type.rank
    return ctx.op("Transpose", w, perm=[r - 1, r - 2, *range(r - 2)])


@converter("Conv2D", "Conv3D")
def convert_conv(ctx: TFContext) -> list[Value]:
    x, w = ctx.inputs
    rank = x.type.rank
    channels = x.type.shape[-1 if ctx.channels_last() else 1]
    per_group = w.type.shape[-2]
    if not isinstance(channels, int) or not isinstance(per_group, int) or channels % per_group:
        raise ctx.error(f"input channels {channels} are not a multiple of the filter's {per_group}")
    y = ctx.op(
        "Conv",
        _channels_first(ctx, x),
        _oihw(ctx, w),
        strides=_spatial(ctx, ctx.attr("strides"), rank),
        dilations=_spatial(ctx, ctx.attr("dilations", [1] * rank), rank),
        group=channels // per_group,
        **_padding(ctx, rank),
    )
    return _back(ctx, y)


@converter("DepthwiseConv2dNative")
def convert_depthwise(ctx: TFContext) -> list[Value]:
    """Filter [H, W, C, M]: a grouped conv with C groups of M outputs (channel c*M+m)."""
    x, w = ctx.inputs
    h, kw, c, m = w.type.shape
    flat = ctx.op("Reshape", w, ctx.int64([h, kw, 1, c * m], "shape"))
    y = ctx.op(
        "Conv",
        _channels_first(ctx, x),
        _oihw(ctx, flat),
        strides=_spatial(ctx, ctx.attr("strides"), 4),
        dilations=_spatial(ctx, ctx.attr("dilations", [1] * 4), 4),
        group=c,
        **_padding(ctx, 4),
    )
    return _back(ctx, y)


@converter("Conv2DBackpropInput", "Conv3DBackpropInputV2")
def convert_conv_transpose(ctx: TFContext) -> list[Value]:
    """A transposed conv with output size `input_sizes`; filter [spatial..., out, in]."""
    _, w, x = ctx.inputs
    rank = x.type.rank
    out_size = _spatial(ctx, ctx.ints(0), rank)
    in_size = x.type.shape[1:-1] if ctx.channels_last() else x.type.shape[2:]
    strides = _spatial(ctx, ctx.attr("strides"), rank)
    dilations = _spatial(ctx, ctx.attr("dilations", [1] * rank), rank)
    kernel = w.type.shape[:-2]
    padding = ctx.attr("padding")
    begins, ends, extra = [], [], []
    for i, (n_in, n_out, s, d, k) in enumerate(zip(in_size, out_size, strides, dilations, kernel)):
        if not isinstance(n_in, int):
            raise ctx.error("a transposed conv needs static spatial input dims")
        k_eff = (k - 1) * d + 1
        full = (n_in - 1) * s + k_eff
        if padding == "SAME":
            begin = max((-(-n_out // s) - 1) * s + k_eff - n_out, 0) // 2
        elif padding == "VALID":
            begin = 0
        else:
            begin = _padding(ctx, rank)["pads"][i]
        end = full - n_out - begin
        begins.append(begin)
        ends.append(max(end, 0))
        extra.append(max(-end, 0))
    r = w.type.rank
    weights = ctx.op("Transpose", w, perm=[r - 1, r - 2, *range(r - 2)])  # -> [in, out, spatial...]
    y = ctx.op(
        "ConvTranspose",
        _channels_first(ctx, x),
        weights,
        strides=strides,
        dilations=dilations,
        pads=begins + ends,
        output_padding=extra,
    )
    return _back(ctx, y)


@converter("BiasAdd", "BiasAddV1")
def convert_bias_add(ctx: TFContext) -> list[Value]:
    x, b = ctx.inputs
    if not ctx.channels_last() and x.type.rank > 2:
        b = ctx.op("Reshape", b, ctx.int64([-1] + [1] * (x.type.rank - 2), "shape"))
    return [ctx.op("Add", x, b)]


@converter("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def convert_fused_batch_norm(ctx: TFContext) -> list[Value]:
    if ctx.attr("is_training", False):
        raise ctx.error("batch norm in training mode is not supported (export the model for inference)")
    x, scale, offset, mean, variance = ctx.inputs[:5]
    y = ctx.op(
        "BatchNormalization", _channels_first(ctx, x), scale, offset, mean, variance, epsilon=ctx.attr("epsilon", 1e-4)
    )
    return _back(ctx, y)


def _pool(ctx: TFContext, op: str) -> list[Value]:
    x = ctx.inputs[0]
    rank = x.type.rank
    attrs = dict(kernel_shape=_spatial(ctx, ctx.attr("ksize"), rank), strides=_spatial(ctx, ctx.attr("strides"), rank))
    attrs.update(_padding(ctx, rank))
    if op == "AveragePool":
        attrs["count_include_pad"] = 0  # TensorFlow averages over the valid window only
    return _back(ctx, ctx.op(op, _channels_first(ctx, x), **attrs))


@converter("MaxPool", "MaxPool3D")
def convert_max_pool(ctx: TFContext) -> list[Value]:
    return _pool(ctx, "MaxPool")


@converter("AvgPool", "AvgPool3D")
def convert_avg_pool(ctx: TFContext) -> list[Value]:
    return _pool(ctx, "AveragePool")


def _swap_last(ctx: TFContext, v: Value) -> Value:
    r = v.type.rank
    return ctx.op("Transpose", v, perm=[*range(r - 2), r - 1, r - 2])


@converter("MatMul")
def convert_matmul(ctx: TFContext) -> list[Value]:
    a, b = ctx.inputs
    a = _swap_last(ctx, a) if ctx.attr("transpose_a", False) else a
    b = _swap_last(ctx, b) if ctx.attr("transpose_b", False) else b
    return [ctx.op("MatMul", a, b)]


@converter("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
def convert_batch_matmul(ctx: TFContext) -> list[Value]:
    a, b = ctx.inputs
    a = _swap_last(ctx, a) if ctx.attr("adj_x", False) else a
    b = _swap_last(ctx, b) if ctx.attr("adj_y", False) else b
    y = ctx.op("MatMul", a, b)
    out = ctx.attr("Tout")
    return [ctx.cast(y, aic_dtype(out, ctx.where)) if out is not None else y]


@converter("Einsum")
def convert_einsum(ctx: TFContext) -> list[Value]:
    return [ctx.op("Einsum", *ctx.inputs, equation=ctx.attr("equation"))]


@converter("Relu6")
def convert_relu6(ctx: TFContext) -> list[Value]:
    x = ctx.inputs[0]
    dtype = x.type.dtype.numpy
    return [ctx.op("Clip", x, ctx.const(np.zeros((), dtype), "min"), ctx.const(np.full((), 6, dtype), "max"))]


@converter("LeakyRelu")
def convert_leaky_relu(ctx: TFContext) -> list[Value]:
    return [ctx.op("LeakyRelu", ctx.inputs[0], alpha=ctx.attr("alpha", 0.2))]


@converter("Gelu")
def convert_gelu(ctx: TFContext) -> list[Value]:
    return [ctx.op("Gelu", ctx.inputs[0], approximate="tanh" if ctx.attr("approximate", False) else "none")]


@converter("Softmax", "LogSoftmax")
def convert_softmax(ctx: TFContext) -> list[Value]:
    return [ctx.op(ctx.op_type, ctx.inputs[0], axis=-1)]


def _resize(ctx: TFContext, mode: str) -> list[Value]:
    """Resize over the H, W axes of NHWC data (no layout change needed)."""
    x, size = ctx.inputs
    align, half = ctx.attr("align_corners", False), ctx.attr("half_pixel_centers", False)
    attrs = {"mode": mode, "axes": [1, 2]}
    if mode == "linear":
        attrs["coordinate_transformation_mode"] = "align_corners" if align else "half_pixel" if half else "asymmetric"
    else:
        attrs["coordinate_transformation_mode"] = (
            "align_corners" if align else "tf_half_pixel_for_nn" if half else "asymmetric"
        )
        attrs["nearest_mode"] = "round_prefer_ceil" if align else "floor"
    return [ctx.op("Resize", x, None, None, ctx.as_int64(size), **attrs)]


@converter("ResizeBilinear")
def convert_resize_bilinear(ctx: TFContext) -> list[Value]:
    ctx.inputs[0] = ctx.cast(ctx.inputs[0], DType.float32)  # TensorFlow returns float32 for any input
    return _resize(ctx, "linear")


@converter("ResizeNearestNeighbor")
def convert_resize_nearest(ctx: TFContext) -> list[Value]:
    return _resize(ctx, "nearest")
