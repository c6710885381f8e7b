"""Blocked channel layout: small-map convolution chains run on [N, C/B, H, W, B] tensors (NCHWc).

B is one target vector of float32: 16 with AVX-512, else 8 (`block`, from compiler/pipeline.py's `pass_options`).

A region is a set of Convs (float32, 2-D, constant weights, unit dilations; 1x1 with one group,
depthwise, or grouped by whole blocks of channels (RegNet's group width 8, 16, ...; groups of half a block merged
in pairs); output maps of at most MAX_POSITIONS positions) joined by the elementwise work between them (Relu,
Clip, Sigmoid, HardSwish, Swish, ..., Add/Mul/Sub with blocked, per-channel or scalar operands: residual adds and
squeeze-excite scales stay blocked).
A region with a depthwise or grouped convolution and at least MIN_CONVS convolutions on maps larger than 1x1 is
rewritten, and so is a padded depthwise convolution alone whose readers are LayerNorms over its channels through a
Transpose (ConvNeXt): each Conv becomes a ConvBlocked (weights and bias
zero padded to whole blocks of channels), each elementwise node the same op on blocked operands (a
per-channel constant blocked at compile time, an [N, C, 1, 1] scale or a plain tensor through
BlockChannels), and a mean over the spatial axes of a blocked tensor (GlobalAveragePool, ReduceMean)
a ReduceMean of the blocked tensor. Plain readers (Flatten, Gemm, Concat, graph outputs, ...) read
an UnblockChannels of the blocked value, so the layout changes only at the region's edges;
BlockChannels(UnblockChannels(b)) of one block size folds to b. Padding lanes stay finite (the ops
kept blocked map finite values to finite values) and the weights reading them are zero. A squeeze-excite
scale read only by a project convolution (1x1, more input than output blocks) becomes that convolution's
input scale: ConvBlocked(x * s) -> ConvBlocked(x, w, b, s), no pass of its own over the tensor; a squeeze-excite
pool of an activated depthwise convolution, ReduceMean(act(ConvBlocked(x))), becomes that convolution's second
output (the activation its own), summed as the output is written. A stem (one group, fewer input channels than a
block, any window) or a padded depthwise convolution on whole blocks whose input is not blocked reads it plain
(ConvBlocked's `block` attribute): no BlockChannels of its input, none of its output. Measured
and decided in docs/decisions.md ("Blocked channel layout", "Squeeze-excite scale in the project convolution",
"AVX-512 register tiles, ...", "Blocks of one target vector").
"""

from __future__ import annotations

import numpy as np
from aic.ir import Graph, Node, Value
from aic.ir.dtypes import DType
from aic.ir.ops.blocked import ACTIVATIONS, block_array
from aic.ir.ops.registry import get_op

from .rewrite import Rewriter, apply_rules, const_array, each_scope

BLOCK = 8  # channels per block: one AVX2 vector of float32 (the narrowest block; AVX-512 targets ask for 16)
MAX_POSITIONS = 112 * 112  # output maps this small or smaller are blocked (measured: docs/decisions.md)
MIN_CONVS = 2  # a region must hold this many convolutions to pay for its reorders
MAX_MERGE = 2  # groups narrower than a block are merged in pairs at most (their products: twice the work)
UNARY = frozenset({"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Swish", "LeakyRelu", "Tanh",
                   "Identity", "Neg", "Abs"})
BINARY = frozenset({"Add", "Mul", "Sub"})


def _static4(v: Value | None) -> bool:
    return v is not None and v.type.dtype == DType.float32 and v.type.rank == 4 and v.type.is_static


def _convertible(node: Node, block: int) -> bool:
    """A Conv the blocked kernels take with blocks of `block` channels, on a map small enough to gain."""
    if node.op != "Conv" or len(node.inputs) < 2 or not _static4(node.inputs[0]) or not _static4(node.outputs[0]):
        return False
    w, bias = node.inputs[1], node.inputs[2] if len(node.inputs) > 2 else None
    if w is None or w.const is None or (bias is not None and bias.const is None):
        return False
    if any(d != 1 for d in node.attrs.get("dilations") or []):
        return False
    channels, out_channels = node.inputs[0].type.shape[1], node.outputs[0].type.shape[1]
    group = node.attrs.get("group", 1)
    kernel = list(w.const.shape[2:])
    depthwise = group == channels == out_channels and group > 1
    grouped = _merged_groups(node, block) > 0
    pointwise = group == 1 and kernel == [1, 1] and not any(node.attrs.get("pads") or []) and \
        node.attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID")
    entry = group == 1 and channels < block  # a stem on an image: its plain input read as it is (_Region.conv)
    return (depthwise or grouped or pointwise or entry) and _positions(node) <= MAX_POSITIONS


def _merged_groups(node: Node, block: int) -> int:
    """For a grouped (not depthwise) Conv: how many of its groups make one group of whole blocks of channels, in
    and out (1: each group already does; 2: pairs of groups of half a block, in and out, do: RegNet's group width 8
    in blocks of 16, each pair one group whose weights are zero across the two, an odd last group paired with the
    padding channels); 0 when no number up to MAX_MERGE does."""
    channels, out_channels = node.inputs[0].type.shape[1], node.outputs[0].type.shape[1]
    group = node.attrs.get("group", 1)
    if group < 2 or channels % group or out_channels % group:
        return 0
    width, out_width = channels // group, out_channels // group
    if width % block == 0 and out_width % block == 0:
        return 1
    merge = block // width
    return merge if 1 < merge <= MAX_MERGE and width * merge == block == out_width * merge else 0


def _merge_groups(weights: np.ndarray, merge: int) -> np.ndarray:
    """[Cout, W, kh, kw] (groups of W channels in and out; Cout may include zero padding) -> [Cout, merge * W, kh,
    kw]: each output channel's weights at its group's place within the merged group, zeros elsewhere."""
    out_channels, width = weights.shape[:2]
    merged = np.zeros((out_channels, merge, *weights.shape[1:]), weights.dtype)
    channel = np.arange(out_channels)
    merged[channel, channel // width % merge] = weights
    return merged.reshape(out_channels, merge * width, *weights.shape[2:])


def _operand_fits(v: Value | None, like: Value, blocked: set[int]) -> bool:
    """Whether `v` can be an operand of a blocked elementwise node whose output is shaped like `like`."""
    if v is None or id(v) in blocked:
        return True
    c = const_array(v)
    shape = like.type.shape
    if c is not None:
        if c.size == 1:
            return True
        full = (1,) * (4 - c.ndim) + c.shape if c.ndim <= 4 else None
        return full is not None and full[0] == 1 and full[1] == shape[1] and full[2:] == (1, 1)
    return _static4(v) and v.type.shape[1] == shape[1] and v.type.shape[0] == shape[0] and \
        all(d in (1, s) for d, s in zip(v.type.shape[2:], shape[2:]))


def _joins(node: Node, blocked: set[int]) -> bool:
    """An elementwise node that stays blocked: a blocked input of the output's shape, the others fit."""
    if node.op not in UNARY | BINARY or len(node.outputs) != 1 or not _static4(node.outputs[0]):
        return False
    out = node.outputs[0]
    if not any(v is not None and id(v) in blocked and v.type == out.type for v in node.inputs):
        return False
    inputs = node.inputs if node.op in BINARY else node.inputs[:1]
    return all(_operand_fits(v, out, blocked) for v in inputs) and all(
        const_array(v) is not None and const_array(v).size == 1 for v in node.inputs[len(inputs):] if v is not None)


def _plan(graph: Graph, convs: set[int]) -> list[Node]:
    """The nodes a region rewrite converts, given the convolutions to block, in graph order."""
    blocked: set[int] = set()
    nodes = []
    for node in graph.nodes:
        if id(node) in convs or _joins(node, blocked):
            nodes.append(node)
            blocked.add(id(node.outputs[0]))
    return nodes


def _regions(graph: Graph, block: int) -> set[int]:
    """The convolutions of depthwise-separable regions with at least MIN_CONVS convolutions (1x1 chains
    alone, as in ResNet bottlenecks, are cut by the 3x3 convolutions between them: their reorders cost
    more than the blocked 1x1 kernels gain)."""
    readers = graph.consumers()
    convs = {id(n) for n in graph.nodes if _convertible(n, block) and not _channel_normalized(n.outputs[0], readers)}
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            i = parent[i]
        return i

    nodes = _plan(graph, convs)
    member = {id(n.outputs[0]): id(n) for n in nodes}
    for node in nodes:
        for v in node.inputs:
            if v is not None and id(v) in member:
                parent[root(id(node))] = root(member[id(v)])
    sizes: dict[int, int] = {}
    separable: set[int] = set()
    for node in nodes:
        if id(node) in convs and _positions(node) > 1:  # (a squeeze-excite pair alone gains nothing)
            sizes[root(id(node))] = sizes.get(root(id(node)), 0) + 1
            if node.attrs.get("group", 1) > 1:
                separable.add(root(id(node)))
    lone = {root(id(n)) for n in nodes if id(n) in convs and sizes.get(root(id(n))) == 1 and _reads_plain(n, block)
            and _normalized_over_channels(n.outputs[0], readers)}
    return {i for i in convs if (sizes.get(root(i), 0) >= MIN_CONVS and root(i) in separable) or root(i) in lone}


def _reads_plain(node: Node, block: int) -> bool:
    """A depthwise convolution with padding on whole blocks of channels: its kernel copies each block's padded
    plane anyway, and the copy can gather a plain input's channels (no BlockChannels pass)."""
    x = node.inputs[0]
    channels = x.type.shape[1] if x is not None else 0
    return node.attrs.get("group", 1) == channels == node.outputs[0].type.shape[1] and channels % block == 0 and \
        any(node.attrs.get("pads") or []) and node.attrs.get("auto_pad", "NOTSET") == "NOTSET"


def _normalized_over_channels(v: Value, readers: dict[int, list[Node]]) -> bool:
    """Whether `v` [N, C, H, W] is read only by Transposes to channels last whose readers are all LayerNorms over
    those channels (ConvNeXt's depthwise 7x7): they read a blocked `v` by vectors of a block (norm_channels.py),
    so a depthwise convolution alone is blocked with no reorder (its input read plain by its copies), where the
    plain kernel's shifted row loads split cache lines (measured: BENCHMARKS.md)."""
    transposes = readers.get(id(v), [])
    return bool(transposes) and all(
        t.op == "Transpose" and list(t.attrs.get("perm") or [])[-1:] == [1] and readers.get(id(t.outputs[0])) and all(
            n.op == "LayerNormalization" and n.attrs.get("axis", -1) in (-1, 3) for n in readers[id(t.outputs[0])])
        for t in transposes)


def _channel_normalized(v: Value, readers: dict[int, list[Node]]) -> bool:
    """Whether `v` is read only by ChannelLayerNorms (ConvNeXt's channel MLPs kept channels-first): their blocked
    input would be read with a block's stride between lanes, and the 1x1 convolutions after them have deep inputs
    the blocked products are not tiled for (BENCHMARKS.md, "ConvNeXt's channel MLPs channels-first")."""
    return bool(readers.get(id(v))) and all(n.op == "ChannelLayerNorm" for n in readers[id(v)])


def _positions(node: Node) -> int:
    return int(np.prod(node.outputs[0].type.shape[2:]))


def _pad_axis(a: np.ndarray, axis: int, size: int) -> np.ndarray:
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, size - a.shape[axis])
    return np.pad(a, widths)


class _Region:
    """Rewrites the planned nodes, keeping the blocked version of each value."""

    def __init__(self, rw: Rewriter, size: int) -> None:
        self.rw = rw
        self.size = size  # channels per block
        self.blocked: dict[int, Value] = {}

    def padded(self, channels: int) -> int:
        return -(-channels // self.size) * self.size

    def block(self, v: Value) -> Value:
        if id(v) not in self.blocked:
            self.blocked[id(v)] = self.rw.op("BlockChannels", v, block=self.size)
        return self.blocked[id(v)]

    def conv(self, node: Node) -> Value:
        x, w = node.inputs[0], node.inputs[1]
        assert x is not None and w is not None and w.const is not None
        channels, out_channels = x.type.shape[1], node.outputs[0].type.shape[1]
        weights, attrs = np.asarray(w.const, np.float32), dict(node.attrs)
        weights = _pad_axis(weights, 0, self.padded(out_channels))
        group = attrs.get("group", 1)
        # x stays plain (attribute `block`): a stem's image, or a depthwise convolution's input read by its copies
        entry = id(x) not in self.blocked and ((group == 1 and channels < self.size) or _reads_plain(node, self.size))
        if entry:
            attrs["block"] = self.size
        elif group == channels > 1:  # depthwise: one group per (padded) channel
            attrs["group"] = self.padded(channels)
        elif group == 1:  # (groups of whole blocks have nothing to pad)
            weights = _pad_axis(weights, 1, self.padded(channels))
        elif (merge := _merged_groups(node, self.size)) > 1:
            weights, attrs["group"] = _merge_groups(weights, merge), -(-group // merge)
        inputs = [x if entry else self.block(x), self.rw.const(weights, f"{w.name}_blocked")]
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            bias = _pad_axis(np.asarray(node.inputs[2].const, np.float32), 0, self.padded(out_channels))
            inputs.append(self.rw.const(bias, f"{node.inputs[2].name}_blocked"))
        return self.rw.node("ConvBlocked", inputs, attrs, name=node.name)[0]

    def elementwise(self, node: Node) -> Value:
        inputs: list[Value | None] = []
        for i, v in enumerate(node.inputs):
            c = const_array(v) if v is not None and id(v) not in self.blocked else None
            if v is None or id(v) in self.blocked or (c is not None and c.size == 1) or (
                    node.op in UNARY and i > 0):
                inputs.append(self.blocked.get(id(v), v) if v is not None else None)
            elif c is not None:  # per channel: [1, C, 1, 1] -> [1, C/B, 1, 1, B]
                full = np.asarray(c).reshape((1,) * (4 - c.ndim) + c.shape)
                inputs.append(self.rw.const(block_array(full, self.size), f"{v.name}_blocked"))
            else:
                inputs.append(self.block(v))
        return self.rw.node(node.op, inputs, node.attrs, name=node.name)[0]

    def mean(self, node: Node) -> None:
        """A mean over the spatial axes of a blocked tensor: a ReduceMean of its blocked form, unblocked."""
        x, old = node.inputs[0], node.outputs[0]
        assert x is not None
        axes = self.rw.const(np.array([2, 3], np.int64), "axes")
        mean = self.rw.op("ReduceMean", self.blocked[id(x)], axes, name=node.name, keepdims=1)
        plain = self.rw.op("UnblockChannels", mean, channels=x.type.shape[1])
        if old.type.rank != 4:  # keepdims=0: [N, C]
            plain = self.rw.op("Reshape", plain, self.rw.const(np.array(old.type.shape, np.int64), "shape"))
        self.rw.replace(old, plain, "blocked mean")

    def unblocked(self, old: Value, new: Value) -> None:
        """Plain readers of `old` read `new` unblocked (dropped when none is left)."""
        plain = self.rw.op("UnblockChannels", new, channels=old.type.shape[1])
        self.blocked[id(old)] = self.blocked[id(plain)] = new
        self.rw.replace(old, plain, "blocked layout")


def _spatial_mean(node: Node) -> bool:
    """GlobalAveragePool, or ReduceMean over the two spatial axes of a 4-D tensor."""
    if node.op == "GlobalAveragePool":
        return True
    if node.op != "ReduceMean" or len(node.inputs) < 2 or node.attrs.get("noop_with_empty_axes", 0):
        return False
    axes = const_array(node.inputs[1])
    return axes is not None and sorted(int(a) % 4 for a in axes.reshape(-1)) == [2, 3] and \
        node.inputs[0] is not None and node.inputs[0].type.rank == 4


def _rewrite(graph: Graph, block: int = BLOCK) -> bool:
    """`block`: channels per block, one target vector of float32 (16 with AVX-512)."""
    convs = _regions(graph, block)
    if not convs:
        return apply_rules(graph, FOLDS)
    planned = {id(n) for n in _plan(graph, convs)}
    rw = Rewriter(graph)
    region = _Region(rw, block)
    for node in list(graph.nodes):
        if id(node) in planned:
            new = region.conv(node) if node.op == "Conv" else region.elementwise(node)
            region.unblocked(node.outputs[0], new)
        elif _spatial_mean(node) and id(node.inputs[0]) in region.blocked:
            region.mean(node)
    refined = rw.finish()
    return apply_rules(graph, FOLDS) or refined


def _cancel(rw: Rewriter, node: Node) -> bool:
    """BlockChannels(UnblockChannels(b)) -> b for one block size (padding lanes are unspecified)."""
    unblock = rw.producer(node.inputs[0], "UnblockChannels")
    if unblock is None or unblock.inputs[0] is None:
        return False
    inner = unblock.inputs[0]
    if inner.type != node.outputs[0].type:
        return False
    rw.replace(node.outputs[0], inner, "cancelled reorders")
    return True


def _scaled_input(rw: Rewriter, node: Node) -> bool:
    """ConvBlocked(x * s) -> ConvBlocked(x, w, b, s) for a per-image channel scale s [N, C/B, 1, 1, B] read
    only here, when the convolution is a project 1x1 (more input than output blocks: its kernel runs strips of
    positions outermost and scales each strip's input as it copies it into L1)."""
    if len(node.inputs) > 3 or node.attrs.get("group", 1) != 1 or node.inputs[1] is None:
        return False
    mul = rw.producer(node.inputs[0], "Mul")
    if mul is None or rw.only_reader(mul.outputs[0]) is not node or len(mul.inputs) != 2:
        return False
    x, s = mul.inputs
    if x is not None and s is not None and x.type != mul.outputs[0].type:
        x, s = s, x
    if x is None or s is None or x.type != mul.outputs[0].type or x.type.rank != 5:
        return False
    n, blocks, *_, block = x.type.shape
    out_blocks = node.outputs[0].type.shape[1]
    pointwise = list(node.inputs[1].type.shape[2:]) == [1, 1] and not any(node.attrs.get("pads") or []) and \
        all(v == 1 for v in node.attrs.get("strides") or []) and \
        node.attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID")
    if not pointwise or s.type != x.type.with_shape((n, blocks, 1, 1, block)) or blocks <= out_blocks:
        return False
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    scaled = rw.node("ConvBlocked", [x, node.inputs[1], bias, s], node.attrs, name=node.name)[0]
    rw.replace(node.outputs[0], scaled, "squeeze-excite scale in the project convolution")
    return True


def _pooled_output(rw: Rewriter, node: Node) -> bool:
    """ReduceMean(act(ConvBlocked(x))) over the spatial axes of a depthwise convolution (keeping them) ->
    output 1 of ConvBlocked(x, activation=act), whose output 0 replaces act's: the pool is summed as the
    kernel writes its output, instead of a pass of its own reading it back."""
    x = node.inputs[0]
    axes = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if x is None or x.type.rank != 5 or axes is None or not node.attrs.get("keepdims", 1) or \
            sorted(int(a) % 5 for a in axes.reshape(-1)) != [2, 3]:
        return False
    act = rw.producer(x, *(a for a in ACTIVATIONS if a))
    if act is None or act.attrs != get_op(act.op).check_attrs({}) or act.inputs[0] is None:
        return False
    conv = rw.producer(act.inputs[0], "ConvBlocked")
    if conv is None or rw.only_reader(act.inputs[0]) is not act or len(conv.outputs) != 1 or \
            conv.attrs.get("activation") or conv.inputs[1] is None or conv.inputs[1].type.shape[1] != 1:
        return False
    y, mean = rw.node("ConvBlocked", conv.inputs, {**conv.attrs, "activation": act.op}, name=conv.name,
                      num_outputs=2)
    rw.replace(x, y, "activation in the depthwise convolution")
    rw.replace(node.outputs[0], mean, "squeeze-excite pool in the depthwise convolution")
    return True


def _wide_activation(rw: Rewriter, node: Node) -> bool:
    """act(ConvBlocked(x)) -> ConvBlocked(x, activation=act) for a one-group convolution read only by a sigmoid
    activation (SiLU, Sigmoid): its kernel computes the activation over a row's two or three output blocks as
    one vector, where a fused epilogue runs block by block (chains one after the other)."""
    conv = rw.producer(node.inputs[0], "ConvBlocked")
    if conv is None or node.attrs != get_op(node.op).check_attrs({}) or rw.only_reader(conv.outputs[0]) is not node \
            or len(conv.outputs) != 1 or conv.attrs.get("activation") or conv.attrs.get("group", 1) != 1:
        return False
    y = rw.node("ConvBlocked", conv.inputs, {**conv.attrs, "activation": node.op}, name=conv.name)[0]
    rw.replace(node.outputs[0], y, "activation in the blocked convolution")
    return True


FOLDS = {"BlockChannels": [_cancel], "ConvBlocked": [_scaled_input], "ReduceMean": [_pooled_output],
         "Swish": [_wide_activation], "Sigmoid": [_wide_activation]}
blocked_layout = each_scope(_rewrite)
