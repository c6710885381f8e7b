"""The blocked channel layout (NCHWc): BlockChannels, UnblockChannels and ConvBlocked.

A blocked tensor [N, ceil(C/B), *spatial, B] holds channel c at block c // B, lane c % B, so B
channels (one vector) sit side by side at every position. Channels are padded with zeros to a
multiple of B by BlockChannels; UnblockChannels keeps the first `channels` only. The padding lanes
of a blocked tensor are finite but otherwise unspecified: the weights that read them are zero.

ConvBlocked is Conv on blocked tensors: input [N, Cin/B, *spatial, B], weights [Cout, Cin/group,
*kernel] in the usual layout (Cout and Cin padded to multiples of B; kernels pack them at compile
time), optional bias [Cout], optional scale [N, Cin/B, 1, 1, B] (a per-image factor of every input channel,
as a squeeze-excite block computes: the convolution reads x * scale), output [N, Cout/B, *outs, B], after the
`activation` (an elementwise op of one input, with its default attributes; none when empty). An optional second
output is the mean of the first over the spatial positions, [N, Cout/B, 1, 1, B] (a squeeze-excite pool computed
as the output is written). An entry convolution reads a plain input [N, C, *spatial] (one group, C at most a block:
a stem on an image; or depthwise, C a multiple of the block) and writes blocks of the `block` attribute. A depthwise
convolution may take an input expansion: a 1x1 convolution, weights [M, C, 1, 1] (input 4), optional bias [M]
(input 5), `expand_activation` and `expand_clip` ([min, max] after it: ReLU6), whose M activated output channels
are the depthwise convolution's input, computed inside its kernel instead of written out (no scale then). Made by
the `blocked-layout` and `fuse-expand` passes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import Dim, dim_prod
from ..types import TensorType
from .conv import CONV_ATTRS, CONV_TYPES, _conv_reference, conv_flops
from .registry import Attr, InferContext, OpDef, get_op, register
from .window import make_window


def block_array(x: np.ndarray, block: int) -> np.ndarray:
    """[N, C, *spatial] -> [N, ceil(C/block), *spatial, block], zero padded."""
    n, c, *spatial = x.shape
    blocks = -(-c // block)
    padded = np.zeros((n, blocks * block, *spatial), x.dtype)
    padded[:, :c] = x
    return np.moveaxis(padded.reshape(n, blocks, block, *spatial), 2, -1).copy()


def unblock_array(x: np.ndarray, channels: int) -> np.ndarray:
    """[N, C/B, *spatial, B] -> [N, channels, *spatial]."""
    n, blocks, *spatial, block = x.shape
    return np.moveaxis(x, -1, 2).reshape(n, blocks * block, *spatial)[:, :channels].copy()


def _block_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    block = ctx.attrs["block"]
    if t.rank < 3:
        raise ctx.error("input must have rank >= 3 (N, C, spatial...)")
    if block < 1 or not isinstance(t.shape[1], int):
        raise ctx.error(f"channels {t.shape[1]} must be static and block {block} positive")
    return [t.with_shape([t.shape[0], -(-t.shape[1] // block), *t.shape[2:], block])]


def _unblock_infer(ctx: InferContext) -> list[TensorType]:
    t = ctx.input(0)
    channels = ctx.attrs["channels"]
    if t.rank < 4 or not isinstance(t.shape[1], int) or not isinstance(t.shape[-1], int):
        raise ctx.error("input must be blocked: [N, C/B, spatial..., B] with static C/B and B")
    if not 0 < channels <= t.shape[1] * t.shape[-1]:
        raise ctx.error(f"channels {channels} must be in 1..{t.shape[1] * t.shape[-1]}")
    return [t.with_shape([t.shape[0], channels, *t.shape[2:-1]])]


BlockChannels = register(
    OpDef(
        "BlockChannels",
        _block_infer,
        lambda ins, attrs: [block_array(ins[0], attrs["block"])],  # type: ignore[arg-type]
        attrs={"block": Attr("int", 8)},
        kind="movement",
        doc="[N, C, spatial...] -> [N, ceil(C/block), spatial..., block], channels zero padded.",
    )
)

UnblockChannels = register(
    OpDef(
        "UnblockChannels",
        _unblock_infer,
        lambda ins, attrs: [unblock_array(ins[0], attrs["channels"])],  # type: ignore[arg-type]
        attrs={"channels": Attr("int")},
        kind="movement",
        doc="[N, C/B, spatial..., B] -> [N, channels, spatial...]: the first `channels` channels.",
    )
)


ACTIVATIONS = ("", "Relu", "Swish", "HardSwish", "Sigmoid", "HardSigmoid")  # ConvBlocked's own activation


def _conv_blocked_infer(ctx: InferContext) -> list[TensorType]:
    x, w = ctx.input(0), ctx.input(1)
    if x.dtype != w.dtype:
        raise ctx.error("input and weights must have one element type")
    entry = ctx.attrs["block"] > 0  # a plain input [N, C, spatial...]
    if x.rank < 4 or w.rank != x.rank - (0 if entry else 1):
        raise ctx.error(f"input must be [N, C/B, spatial..., B] (or [N, C, spatial...] with a block) and weights "
                        f"[M, C/group, kernel...], got ranks {x.rank} and {w.rank}")
    block, group = ctx.attrs["block"] if entry else x.shape[-1], ctx.attrs["group"]
    out_channels, in_channels = w.shape[0], w.shape[1]
    blocks = x.shape[1]
    if not all(isinstance(d, int) for d in (block, blocks, out_channels, in_channels, *w.shape[2:])):
        raise ctx.error("channels, blocks and kernel must be static")
    if entry:
        stem = group == 1 and blocks == in_channels and blocks <= block
        depthwise = group == blocks == out_channels and in_channels == 1 and blocks % block == 0
        if not (stem or depthwise) or out_channels % block or ctx.has(3):
            raise ctx.error(f"an entry convolution takes one group and at most {block} input channels, or is "
                            f"depthwise on a multiple of {block} channels (weights {list(w.shape)} on input "
                            f"{list(x.shape)}), and no input scale")
        spatial = list(x.shape[2:])
        window = make_window(ctx.attrs, list(ctx.attrs["kernel_shape"] or w.shape[2:]), ctx.error)
        outs = [window.out_dim(i, d, ctx.fresh) for i, d in enumerate(spatial)]
        y = (x.shape[0], out_channels // block, *outs, block)
        return [TensorType(x.dtype, y), TensorType(x.dtype, (*y[:2], *(1 for _ in outs), block))]
    if ctx.has(4):
        blocks = _expanded_blocks(ctx, blocks, block, group, out_channels, in_channels)
    if out_channels % block or blocks * block != in_channels * group or out_channels % group:
        raise ctx.error(f"weights {list(w.shape)} with group {group} do not fit {blocks} blocks of {block} "
                        f"channels (output channels must be a multiple of {block})")
    if ctx.has(2) and ctx.input(2).shape != (out_channels,):
        raise ctx.error(f"bias shape {list(ctx.input(2).shape)} must be [{out_channels}]")
    scale = (x.shape[0], blocks, *(1 for _ in x.shape[2:-1]), block)
    if ctx.has(3) and (ctx.input(3).shape != scale or ctx.input(3).dtype != x.dtype):
        raise ctx.error(f"scale {ctx.input(3)} must be {TensorType(x.dtype, scale)}: one factor per image and "
                        "input channel")
    kernel = list(ctx.attrs["kernel_shape"] or w.shape[2:])
    window = make_window(ctx.attrs, kernel, ctx.error)
    outs: list[Dim] = [window.out_dim(i, d, ctx.fresh) for i, d in enumerate(x.shape[2:-1])]
    if any(isinstance(d, int) and d < 1 for d in outs):
        raise ctx.error(f"window {list(window.spans)} does not fit the padded input; output would be {outs}")
    y = (x.shape[0], out_channels // block, *outs, block)
    return [TensorType(x.dtype, y), TensorType(x.dtype, (*y[:2], *(1 for _ in outs), block))]


def _expanded_blocks(ctx: InferContext, blocks: int, block: int, group: int, out_channels: int,
                     in_channels: int) -> int:
    """Blocks of the expansion's output (the depthwise convolution's input), checked."""
    e = ctx.input(4)
    mid = e.shape[0]
    if e.dtype != ctx.input(0).dtype or list(e.shape[1:]) != [blocks * block, 1, 1] or not isinstance(mid, int):
        raise ctx.error(f"expansion weights {list(e.shape)} must be [M, {blocks * block}, 1, 1]")
    if not (group == mid == out_channels and in_channels == 1 and mid % block == 0) or ctx.has(3):
        raise ctx.error(f"an input expansion feeds a depthwise convolution on whole blocks of {block} channels "
                        f"(group {group}, weights [{out_channels}, {in_channels}, ...] after {mid} expanded "
                        "channels) and takes no input scale")
    if ctx.has(5) and ctx.input(5).shape != (mid,):
        raise ctx.error(f"expansion bias shape {list(ctx.input(5).shape)} must be [{mid}]")
    return mid // block


def _activated(y: np.ndarray, activation: str) -> np.ndarray:
    if not activation:
        return y
    act = get_op(activation)
    return act.reference([y], act.check_attrs({}))[0]


def _conv_blocked_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    x = inputs[0]
    assert x is not None
    block = attrs.get("block") or x.shape[-1]
    if len(inputs) > 3 and inputs[3] is not None:
        x = x * inputs[3]
    if len(inputs) > 4 and inputs[4] is not None:
        expand = _conv_reference([unblock_array(x, x.shape[1] * block), *inputs[4:6]], {})[0]
        expand = _activated(expand, attrs.get("expand_activation", ""))
        if attrs.get("expand_clip"):
            expand = np.clip(expand, *attrs["expand_clip"])
        x = block_array(expand, block)
    plain = x if attrs.get("block") else unblock_array(x, x.shape[1] * block)
    conv = {k: v for k, v in attrs.items() if k not in ("activation", "expand_activation", "expand_clip", "block")}
    y = _activated(block_array(_conv_reference([plain, *inputs[1:3]], conv)[0], block), attrs.get("activation", ""))
    return [y, y.mean(axis=tuple(range(2, y.ndim - 1)), keepdims=True)]


def _conv_blocked_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    """The convolution's, and its input expansion's over every input position."""
    flops = conv_flops(ins, outs, attrs)
    x, expand = ins[0], ins[4] if len(ins) > 4 else None
    if x is None or expand is None:
        return flops
    return flops + dim_prod([2, x.shape[0], *x.shape[2:-1], *expand.shape[:2]])


ConvBlocked = register(
    OpDef(
        "ConvBlocked",
        _conv_blocked_infer,
        _conv_blocked_reference,
        attrs={**CONV_ATTRS, "activation": Attr("string", "", ACTIVATIONS), "block": Attr("int", 0),
               "expand_activation": Attr("string", "", ACTIVATIONS), "expand_clip": Attr("floats", [])},
        inputs=(2, 6),
        outputs=(1, 2),
        dtypes=CONV_TYPES,
        kind="contraction",
        flops=_conv_blocked_flops,
        doc="Conv on the blocked channel layout [N, C/B, spatial..., B]; weights [M, C/group, kernel...]; "
            "optional bias [M] and input scale [N, C/B, 1..., B]; with `block`, a plain input [N, C, spatial...]; "
            "depthwise: an optional input expansion (1x1 weights [M, C, 1, 1], bias [M], `expand_activation`, "
            "`expand_clip`).",
    )
)
