"""Expansion into the depthwise convolution: ConvBlocked_dw(act(ConvBlocked_1x1(x))) -> one ConvBlocked.

An MBConv block's expand 1x1 convolution multiplies the channels (16 -> 48, 96) on the largest maps of a
depthwise net; its output (2.4-4.8 MB at 112x112) is written to memory only for the depthwise convolution to read
it back. Fused, the depthwise kernel computes the expansion of each band of input rows it reads straight into the
zero-padded band copy it already makes (compiler/lower/conv_blocked_depthwise.py), so the expanded tensor never
leaves the core's caches. This pays where the expanded tensor takes much of L2 (MIN_BYTES), the expansion is
shallow (at most MAX_CHANNELS input channels: the kernel's tile is 16 positions by one channel block, one broadcast
per multiply-add, where the blocked products' tiles take four blocks) and few rows are expanded twice (those shared
by two bands): none where each block's padded plane is a stack buffer of its own (up to LOCAL_PLANE floats: 56x56
maps), 1 in 17 for a stride-2 3x3 kernel on larger planes. Stride 1 on those (2 in 18) is left apart.

Matched: a depthwise ConvBlocked on a blocked input, not yet expanded, whose input is produced (for it alone) by
a 1x1 stride-1 unpadded one-group ConvBlocked on a blocked input with no input scale, directly (its activation
attribute, if any, becomes `expand_activation`) or through one activation of ConvBlocked's list with default
attributes, or a Clip with constant bounds (ReLU6: `expand_clip`). Measured and decided in docs/decisions.md
("Expansion in the depthwise convolution").
"""

from __future__ import annotations

from aic.ir import Graph, Node
from aic.ir.ops.blocked import ACTIVATIONS
from aic.ir.ops.registry import get_op

from ..lower.depthwise import LOCAL_PLANE
from .rewrite import Rewriter, apply_rules, const_array, each_scope

MIN_BYTES = 1 << 19  # expanded tensors this large (the batch's) are fused: half a core's L2
MAX_CHANNELS = 32  # expansions of at most this many input channels (deeper ones run faster as blocked products)
MIN_STRIDE = 2  # depthwise strides at least this where the plane is expanded in bands


def _pointwise(node: Node) -> bool:
    w = node.inputs[1]
    return w is not None and list(w.type.shape[2:]) == [1, 1] and node.attrs.get("group", 1) == 1 and \
        not any(node.attrs.get("pads") or []) and all(s == 1 for s in node.attrs.get("strides") or []) and \
        node.attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID") and not node.attrs.get("block")


def _bounds(clip: Node) -> tuple[float, float] | None:
    """A Clip's constant scalar bounds (both given)."""
    if len(clip.inputs) != 3:
        return None
    lo, hi = (const_array(v) if v is not None else None for v in clip.inputs[1:])
    if lo is None or hi is None or lo.size != 1 or hi.size != 1:
        return None
    return float(lo.reshape(())), float(hi.reshape(()))


def _expand(rw: Rewriter, dw: Node) -> bool:
    x, w = dw.inputs[0], dw.inputs[1]
    if x is None or w is None or len(dw.inputs) > 3 or dw.attrs.get("block") or x.type.rank != 5 or \
            not x.type.is_static or w.type.shape[1] != 1 or dw.attrs.get("group", 1) != w.type.shape[0]:
        return False
    _, _, height, width, block = x.type.shape
    kh, kw = w.type.shape[2:]
    whole = (height + kh - 1) * (width + kw - 1) * block <= LOCAL_PLANE  # type: ignore[operator]
    if not whole and min(dw.attrs.get("strides") or [1]) < MIN_STRIDE:
        return False
    act = rw.producer(x, "Clip", *(a for a in ACTIVATIONS if a))
    clip = _bounds(act) if act is not None and act.op == "Clip" else None
    if act is not None and (act.attrs != get_op(act.op).check_attrs({}) or rw.only_reader(x) is not dw or
                            (act.op == "Clip" and clip is None)):
        return False
    expanded = act.inputs[0] if act is not None else x
    conv = rw.producer(expanded, "ConvBlocked")
    reader = act if act is not None else dw
    if conv is None or rw.only_reader(expanded) is not reader or len(conv.outputs) != 1 or \
            len(conv.inputs) > 3 or not _pointwise(conv) or (act is not None and conv.attrs.get("activation")):
        return False
    channels = conv.inputs[1].type.shape[1]  # type: ignore[union-attr]
    if expanded.type.numel * expanded.type.dtype.itemsize < MIN_BYTES or channels > MAX_CHANNELS:  # type: ignore
        return False
    bias = conv.inputs[2] if len(conv.inputs) > 2 else None
    dw_bias = dw.inputs[2] if len(dw.inputs) > 2 else None
    activation = act.op if act is not None and clip is None else conv.attrs.get("activation", "")
    attrs = {**dw.attrs, "expand_activation": activation, "expand_clip": list(clip) if clip else []}
    outs = rw.node("ConvBlocked", [conv.inputs[0], w, dw_bias, None, conv.inputs[1], bias], attrs, name=dw.name,
                   num_outputs=len(dw.outputs))
    for old, new in zip(dw.outputs, outs):
        rw.replace(old, new, "expansion in the depthwise convolution")
    return True


def _run(graph: Graph) -> bool:
    return apply_rules(graph, {"ConvBlocked": [_expand]})


fuse_expand = each_scope(_run)
