"""Softmax recognition: Exp divided by its ReduceSum becomes one Softmax op.

Exp(x - ReduceMax(x)) / ReduceSum(Exp(...)) along one axis (keepdims=1), with
or without the max subtraction, dividing or multiplying by a Reciprocal,
becomes Softmax(x, axis).

Without the max subtraction the formula overflows for large x where Softmax
does not; the rewrite only makes it more robust. Assumes the intermediates have
no reader outside the pattern.
"""

from __future__ import annotations

from aic.ir import Graph, Node

from .match import Pattern
from .rewrite import Rewriter, apply_rules, const_array, each_scope


def _axis(node: Node) -> int | None:
    """The single reduced axis of a keepdims reduction."""
    axes = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
    if axes is None or axes.size != 1 or not node.attrs["keepdims"]:
        return None
    return int(axes.reshape(-1)[0]) % node.outputs[0].type.rank


def _softmax(rw: Rewriter, node: Node) -> bool:
    pairs = [node.inputs]
    if node.op == "Mul":
        pairs.append(node.inputs[::-1])
    for e, denom in pairs:
        p = Pattern(rw)
        p.add(node)
        if node.op == "Mul":
            recip = p.producer(denom, "Reciprocal")
            denom = recip.inputs[0] if recip is not None else None
        exp, total = p.producer(e, "Exp"), p.producer(denom, "ReduceSum")
        if exp is None or total is None or total.inputs[0] is not e:
            continue
        axis = _axis(total)
        x = exp.inputs[0]
        sub = rw.producer(x, "Sub")
        peak = rw.producer(sub.inputs[1], "ReduceMax") if sub is not None else None
        if peak is not None and peak.inputs[0] is sub.inputs[0] and _axis(peak) == axis:  # type: ignore[union-attr]
            p.add(sub)  # type: ignore[arg-type]
            p.add(peak)
            x = sub.inputs[0]  # type: ignore[union-attr]
        out = node.outputs[0]
        if axis is None or x is None or x.type != out.type or not p.closed(node):
            continue
        rw.replace(out, rw.op("Softmax", x, name=node.name, axis=axis), "recognised Softmax")
        return True
    return False


@each_scope
def fuse_softmax(graph: Graph) -> bool:
    return apply_rules(graph, {"Div": (_softmax,), "Mul": (_softmax,)})
