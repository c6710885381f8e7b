"""Zero padding folded into the convolution that reads it.

Conv(Pad(x, pads, 0)) -> Conv(x) with the spatial pads added to the conv's own,
when the Pad is constant mode with value 0 (or none), pads only the spatial dims
by non-negative constant amounts, and has no other reader. A conv with
auto_pad SAME_* gets its padding made explicit first (static shapes needed).
A Transpose between the Pad and the Conv (a channels-last model's input) is
kept, the pads permuted: Conv(Transpose(Pad(x))) -> Conv(Transpose(x)). This is
the ZeroPadding2D that Keras puts before strided convolutions.
"""

from __future__ import annotations

import numpy as np
from aic.ir import Graph, Node

from .rewrite import Rewriter, apply_rules, const_array, each_scope
from .simplify_chains import perm_of


def _conv_pads(node: Node, spatial: tuple, kernel: tuple) -> list[int] | None:
    """The conv's explicit pads [begins..., ends...], or None when they depend on unknown sizes."""
    auto = node.attrs.get("auto_pad", "NOTSET")
    n = len(spatial)
    if auto == "VALID":
        return [0] * (2 * n)
    if auto == "NOTSET":
        return list(node.attrs.get("pads") or [0] * (2 * n))
    if not all(isinstance(d, int) for d in spatial):
        return None
    strides = node.attrs.get("strides") or [1] * n
    dilations = node.attrs.get("dilations") or [1] * n
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        begin = small if auto == "SAME_UPPER" else total - small
        begins.append(begin)
        ends.append(total - begin)
    return begins + ends


def _fold(rw: Rewriter, node: Node) -> bool:
    transpose = rw.producer(node.inputs[0], "Transpose")
    if transpose is not None and rw.only_reader(node.inputs[0]) is not node:
        return False
    source = transpose.inputs[0] if transpose is not None else node.inputs[0]
    pad = rw.producer(source, "Pad")
    reader = transpose if transpose is not None else node
    if pad is None or rw.only_reader(source) is not reader or pad.attrs.get("mode", "constant") != "constant":
        return False
    pads = const_array(pad.inputs[1]) if len(pad.inputs) > 1 else None
    value = const_array(pad.inputs[2]) if len(pad.inputs) > 2 and pad.inputs[2] is not None else np.zeros(1)
    if pads is None or value is None or np.any(value != 0) or len(pad.inputs) > 3:
        return False
    x, w = pad.inputs[0], node.inputs[1]
    rank = x.type.rank  # type: ignore[union-attr]
    pads = pads.reshape(-1).astype(np.int64)
    if transpose is not None and pads.size == 2 * rank:  # the conv sees dim i of the Pad's output as perm[i]
        perm = perm_of(transpose)
        pads = np.concatenate([pads[:rank][perm], pads[rank:][perm]])
    if pads.size != 2 * rank or np.any(pads < 0) or np.any(pads[[0, 1, rank, rank + 1]] != 0):
        return False
    own = _conv_pads(node, node.inputs[0].type.shape[2:], w.type.shape[2:])  # type: ignore[union-attr]
    if own is None:
        return False
    n = rank - 2
    merged = [own[i] + int(pads[2 + i]) for i in range(n)] + [own[n + i] + int(pads[rank + 2 + i]) for i in range(n)]
    attrs = {**node.attrs, "auto_pad": "NOTSET", "pads": merged}
    if transpose is not None:
        x = rw.op("Transpose", x, name=transpose.name, perm=perm_of(transpose))
    out = rw.node(node.op, [x, *node.inputs[1:]], attrs, name=node.name)[0]
    if out.type != node.outputs[0].type:
        return False
    rw.replace(node.outputs[0], out, "folded zero Pad into Conv")
    return True


@each_scope
def fold_pad(graph: Graph) -> bool:
    return apply_rules(graph, {"Conv": (_fold,)})
