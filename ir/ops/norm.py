"""Normalisations: BatchNormalization (inference), InstanceNormalization,
LayerNormalization, GroupNormalization, LpNormalization,
MeanVarianceNormalization and LRN; ChannelLayerNorm (aic's own: a LayerNorm over
the channels of a channels-first map).

Statistics are computed in float64 and results cast back to the input type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..dims import Dim, dim_mul
from ..dtypes import DType
from ..types import TensorType
from .common import broadcast_shapes, norm_axes, norm_axis
from .conv import CONV_TYPES
from .registry import Attr, InferContext, OpDef, register

FLOAT_TYPES = CONV_TYPES
EPSILON = Attr("float", 1e-5)


def _scaled_flops(per_element: int) -> Callable[[list[TensorType | None], list[TensorType], dict[str, Any]], Dim]:
    def flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
        return dim_mul(per_element, outs[0].numel)

    return flops


def _check_channel_params(ctx: InferContext, indices: Iterable[int]) -> None:
    x = ctx.input(0)
    if x.rank < 2:
        raise ctx.error("input must have rank >= 2 (N, C, ...)")
    for i in indices:
        t = ctx.input(i)
        if not t.dtype.is_float:
            raise ctx.error(f"input {i} must be a float tensor, got {t.dtype.name}")
        if t.rank != 1 or (isinstance(t.shape[0], int) and isinstance(x.shape[1], int) and t.shape[0] != x.shape[1]):
            raise ctx.error(f"input {i} of shape {list(t.shape)} must hold one value per channel ({x.shape[1]})")


def _per_channel(array: np.ndarray, rank: int) -> np.ndarray:
    """Shape a (C,) parameter to broadcast over (N, C, *spatial)."""
    return array.astype(np.float64).reshape(-1, *[1] * (rank - 2))


def _standardize(x: np.ndarray, axes: tuple[int, ...], epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x - mean) / sqrt(var + epsilon) over `axes`, with the mean and inverse std."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    inv_std = 1.0 / np.sqrt(np.mean(centered * centered, axis=axes, keepdims=True) + epsilon)
    return centered * inv_std, mean, inv_std


def _batch_norm_infer(ctx: InferContext) -> list[TensorType]:
    if ctx.attrs["training_mode"]:
        raise ctx.error("training_mode=1 is not supported; aic compiles inference graphs")
    if ctx.num_outputs > 1:
        raise ctx.error("running_mean/running_var outputs exist only in training mode")
    _check_channel_params(ctx, range(1, 5))
    return [ctx.input(0)]


def _batch_norm_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, scale, bias, mean, var = inputs
    assert x is not None and scale is not None and bias is not None and mean is not None and var is not None
    a = _per_channel(scale, x.ndim) / np.sqrt(_per_channel(var, x.ndim) + attrs["epsilon"])
    b = _per_channel(bias, x.ndim) - _per_channel(mean, x.ndim) * a
    ct = np.float64 if x.dtype == np.float64 else np.float32
    return [(x.astype(ct) * a.astype(ct) + b.astype(ct)).astype(x.dtype, copy=False)]


BatchNormalization = register(
    OpDef(
        "BatchNormalization",
        _batch_norm_infer,
        _batch_norm_reference,
        attrs={"epsilon": EPSILON, "momentum": Attr("float", 0.9), "training_mode": Attr("int", 0, (0, 1))},
        inputs=(5, 5),
        outputs=(1, 3),
        dtypes=FLOAT_TYPES,
        kind="elementwise",
        flops=_scaled_flops(2),
        doc="Inference batch normalisation: (x - mean) / sqrt(var + epsilon) * scale + B per channel.",
    )
)


def _map_norm_infer(ctx: InferContext) -> list[TensorType]:
    """An [N, C, spatial...] map normalized and then scaled (and shifted, when given) per channel."""
    _check_channel_params(ctx, [i for i in (1, 2) if ctx.has(i)])
    if ctx.input(0).rank < 3:
        raise ctx.error("input must have rank >= 3 (N, C, spatial...)")
    return [ctx.input(0)]


def _map_norm_reference(axes: Callable[[int], tuple[int, ...]]) -> Callable[..., list[np.ndarray]]:
    """The reference of `_map_norm_infer`'s ops: standardized over axes(rank), then scale (and bias) per channel."""

    def reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
        x, scale, bias = (*inputs, None)[:3]
        assert x is not None and scale is not None
        y, _, _ = _standardize(x.astype(np.float64), axes(x.ndim), attrs["epsilon"])
        y = y * _per_channel(scale, x.ndim)
        return [(y if bias is None else y + _per_channel(bias, x.ndim)).astype(x.dtype)]

    return reference


InstanceNormalization = register(
    OpDef(
        "InstanceNormalization",
        _map_norm_infer,
        _map_norm_reference(lambda rank: tuple(range(2, rank))),
        attrs={"epsilon": EPSILON},
        inputs=(3, 3),
        dtypes=FLOAT_TYPES,
        kind="reduction",
        flops=_scaled_flops(8),
        doc="Normalises each (n, c) plane over its spatial positions, then scales and shifts per channel.",
    )
)


STASH_TYPES = {1: DType.float32, 16: DType.bfloat16, 10: DType.float16, 11: DType.float64}


def _layer_norm_infer(ctx: InferContext) -> list[TensorType]:
    x = ctx.input(0)
    axis = norm_axis(ctx, ctx.attrs["axis"], x.rank)
    stash = STASH_TYPES.get(ctx.attrs["stash_type"])
    if stash is None:
        raise ctx.error(f"stash_type {ctx.attrs['stash_type']} is not a float type code")
    normalized = x.shape[axis:]
    for i in (1, 2):
        if ctx.has(i):
            t = ctx.input(i)
            if t.dtype != x.dtype or broadcast_shapes(ctx, t.shape, normalized) != normalized:
                raise ctx.error(f"input {i} of type {t} must be {x.dtype.name} and broadcast to {list(normalized)}")
    stats = TensorType(stash, (*x.shape[:axis], *[1] * (x.rank - axis)))
    return [x, stats, stats]


def _layer_norm_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, scale = inputs[0], inputs[1]
    assert x is not None and scale is not None
    axis = attrs["axis"] % x.ndim
    y, mean, inv_std = _standardize(x.astype(np.float64), tuple(range(axis, x.ndim)), attrs["epsilon"])
    y = y * scale.astype(np.float64)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + inputs[2].astype(np.float64)
    stash = STASH_TYPES[attrs["stash_type"]].numpy
    return [y.astype(x.dtype), mean.astype(stash), inv_std.astype(stash)]


LayerNormalization = register(
    OpDef(
        "LayerNormalization",
        _layer_norm_infer,
        _layer_norm_reference,
        attrs={"axis": Attr("int", -1), "epsilon": EPSILON, "stash_type": Attr("int", 1)},
        inputs=(2, 3),
        outputs=(1, 3),
        dtypes=FLOAT_TYPES,
        kind="reduction",
        flops=_scaled_flops(8),
        doc="Normalises over axes [axis, rank), then applies Scale and B; optional Mean and InvStdDev outputs.",
    )
)


ChannelLayerNorm = register(
    OpDef(
        "ChannelLayerNorm",
        _map_norm_infer,
        _map_norm_reference(lambda rank: (1,)),
        attrs={"epsilon": EPSILON},
        inputs=(2, 3),
        dtypes=FLOAT_TYPES,
        kind="reduction",
        flops=_scaled_flops(8),
        doc="LayerNorm of each position of an [N, C, spatial...] map over its C channels, then Scale and B per "
            "channel: LayerNormalization(Transpose(x, channels last), axis=-1) without the transposes (the "
            "channels-first pass; ConvNeXt).",
    )
)


def _group_norm_infer(ctx: InferContext) -> list[TensorType]:
    _check_channel_params(ctx, range(1, 3))
    x = ctx.input(0)
    groups = ctx.attrs["num_groups"]
    if groups < 1 or (isinstance(x.shape[1], int) and x.shape[1] % groups):
        raise ctx.error(f"num_groups {groups} must divide the {x.shape[1]} channels")
    if ctx.attrs["stash_type"] not in STASH_TYPES:
        raise ctx.error(f"stash_type {ctx.attrs['stash_type']} is not a float type code")
    return [x]


def _group_norm_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x, scale, bias = inputs
    assert x is not None and scale is not None and bias is not None
    grouped = x.astype(np.float64).reshape(x.shape[0], attrs["num_groups"], -1)
    y, _, _ = _standardize(grouped, (2,), attrs["epsilon"])
    y = y.reshape(x.shape) * _per_channel(scale, x.ndim) + _per_channel(bias, x.ndim)
    return [y.astype(x.dtype)]


GroupNormalization = register(
    OpDef(
        "GroupNormalization",
        _group_norm_infer,
        _group_norm_reference,
        attrs={"num_groups": Attr("int"), "epsilon": EPSILON, "stash_type": Attr("int", 1)},
        inputs=(3, 3),
        dtypes=FLOAT_TYPES,
        kind="reduction",
        flops=_scaled_flops(8),
        doc="Normalises each group of channels over its channels and positions, then scales and shifts per channel.",
    )
)


def _lp_norm_infer(ctx: InferContext) -> list[TensorType]:
    norm_axis(ctx, ctx.attrs["axis"], ctx.input(0).rank)
    return [ctx.input(0)]


def _lp_norm_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    (x,) = inputs
    assert x is not None
    wide = x.astype(np.float64)
    if attrs["p"] == 1:
        norm = np.abs(wide).sum(axis=attrs["axis"], keepdims=True)
    else:
        norm = np.sqrt((wide * wide).sum(axis=attrs["axis"], keepdims=True))
    y = np.divide(wide, norm, out=np.zeros_like(wide), where=norm != 0)
    return [y.astype(x.dtype)]


LpNormalization = register(
    OpDef(
        "LpNormalization",
        _lp_norm_infer,
        _lp_norm_reference,
        attrs={"axis": Attr("int", -1), "p": Attr("int", 2, (1, 2))},
        dtypes=FLOAT_TYPES,
        kind="reduction",
        flops=_scaled_flops(3),
        doc="x divided by its L1 or L2 norm along one axis (zero where the norm is zero).",
    )
)


def _mvn_infer(ctx: InferContext) -> list[TensorType]:
    norm_axes(ctx, ctx.attrs["axes"], ctx.input(0).rank)
    return [ctx.input(0)]


def _mvn_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    (x,) = inputs
    assert x is not None
    wide = x.astype(np.float64)
    axes = tuple(a % x.ndim for a in attrs["axes"])
    mean = wide.mean(axis=axes, keepdims=True)
    var = np.maximum((wide * wide).mean(axis=axes, keepdims=True) - mean * mean, 0.0)
    return [((wide - mean) / (np.sqrt(var) + 1e-9)).astype(x.dtype)]


MeanVarianceNormalization = register(
    OpDef(
        "MeanVarianceNormalization",
        _mvn_infer,
        _mvn_reference,
        attrs={"axes": Attr("ints", [0, 2, 3])},
        dtypes=FLOAT_TYPES,
        kind="reduction",
        flops=_scaled_flops(6),
        doc="(x - mean) / (std + 1e-9) over `axes`.",
    )
)


def _lrn_infer(ctx: InferContext) -> list[TensorType]:
    if ctx.input(0).rank < 3:
        raise ctx.error("input must have rank >= 3 (N, C, spatial...)")
    if ctx.attrs["size"] < 1:
        raise ctx.error(f"size {ctx.attrs['size']} must be positive")
    return [ctx.input(0)]


def _lrn_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    (x,) = inputs
    assert x is not None
    size = attrs["size"]
    wide = x.astype(np.float64)
    squares = np.pad(wide * wide, [(0, 0), ((size - 1) // 2, size // 2)] + [(0, 0)] * (x.ndim - 2))
    running = np.cumsum(np.pad(squares, [(0, 0), (1, 0)] + [(0, 0)] * (x.ndim - 2)), axis=1)
    window = running[:, size:] - running[:, :-size]
    y = wide / (attrs["bias"] + attrs["alpha"] / size * window) ** attrs["beta"]
    return [y.astype(x.dtype)]


LRN = register(
    OpDef(
        "LRN",
        _lrn_infer,
        _lrn_reference,
        attrs={
            "size": Attr("int"),
            "alpha": Attr("float", 1e-4),
            "beta": Attr("float", 0.75),
            "bias": Attr("float", 1.0),
        },
        dtypes=FLOAT_TYPES,
        kind="other",
        flops=lambda ins, outs, attrs: dim_mul(attrs["size"] + 4, outs[0].numel),
        doc="Local response normalisation across channels.",
    )
)
