"""No-op removal: nodes whose output equals their first input are bypassed.

Removed: Identity; Dropout (aic is inference-only; only when its mask output is
unused); Cast/CastLike to the input's own type; Reshape, Flatten, Squeeze and
Unsqueeze whose output type is the input type (same dims in the same order
means the same tensor); Transpose by the identity permutation; Expand to a
shape that is all 1s or the input's own dims; Pad by all-zero pads; Slice that
keeps every element (same type, positive steps); Tile by all-1 repeats; Concat,
Split, Sum, Max, Min and Mean of a single input.

Assumes types are exact (inferred by the op table). Graph outputs keep their
names: the bypassed value takes the output's name when it is a node output of
the graph; a node whose removal would only trade it for an Identity (its input
is a graph input, or already another output) is kept.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir import Graph, Node

from .rewrite import Rewriter, const_array, each_scope


def _same_type(node: Node) -> bool:
    x = node.inputs[0]
    return x is not None and node.outputs[0].type == x.type


def _transpose(node: Node) -> bool:
    perm = node.attrs["perm"]
    rank = node.outputs[0].type.rank
    return (list(perm) if perm is not None else list(range(rank))[::-1]) == list(range(rank))


def _expand(node: Node) -> bool:
    x, shape = node.inputs
    target = shape.sym if shape is not None and shape.sym is not None else None
    if x is None or target is None or len(target) > x.type.rank:
        return False
    dims = x.type.shape[x.type.rank - len(target) :]
    return all(t == 1 or t == d for t, d in zip(target, dims)) and _same_type(node)


def _pad(node: Node) -> bool:
    pads = const_array(node.inputs[1])
    return pads is not None and not np.any(pads) and _same_type(node)


def _slice(node: Node) -> bool:
    steps = const_array(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else np.ones(1)
    return steps is not None and bool(np.all(steps > 0)) and _same_type(node)


def _tile(node: Node) -> bool:
    repeats = const_array(node.inputs[1])
    return repeats is not None and bool(np.all(repeats == 1))


def _single_input(node: Node) -> bool:
    return len(node.inputs) == 1 and _same_type(node)


NOOPS: dict[str, Callable[[Node], bool]] = {
    "Identity": _same_type,
    "Dropout": _same_type,
    "Cast": _same_type,
    "CastLike": _same_type,
    "Reshape": _same_type,
    "Flatten": _same_type,
    "Squeeze": _same_type,
    "Unsqueeze": _same_type,
    "Transpose": _transpose,
    "Expand": _expand,
    "Pad": _pad,
    "Slice": _slice,
    "Tile": _tile,
    "Concat": _single_input,
    "Split": lambda node: len(node.outputs) == 1 and _same_type(node),
    "Sum": _single_input,
    "Max": _single_input,
    "Min": _single_input,
    "Mean": _single_input,
}


@each_scope
def remove_noops(graph: Graph) -> bool:
    rw = Rewriter(graph)
    for node in list(graph.nodes):
        check = NOOPS.get(node.op)
        x, out = node.inputs[0] if node.inputs else None, node.outputs[0]
        if check is None or x is None or not check(node):
            continue
        if any(rw.uses(extra) for extra in node.outputs[1:]) or not rw.can_replace(out, x):
            continue
        rw.replace(out, x, f"removed no-op {node.op}")
    return rw.finish()
