"""Attention recognition: MatMul(Softmax(MatMul(q, kt) * scale + mask), v) becomes one SoftmaxAttention op.

The scale is a scalar constant (Mul on either side, or Div), optional; the mask is an additive
tensor, optional, that must not broadcast the scores to a larger shape. Only static float32
shapes are fused, and only up to MAX_KEYS keys: the lowering keeps a block of score rows on the
stack (compiler/lower/attention.py). The intermediates must have no reader outside the pattern.
"""

from __future__ import annotations

from aic.ir import Graph, Node, Value
from aic.ir.dtypes import DType

from .match import Pattern
from .rewrite import Rewriter, apply_rules, each_scope, splat

MAX_KEYS = 2048  # longest key sequence the fused kernel takes (its score rows live on the stack)


def _static(*values: Value) -> bool:
    return all(v.type.is_static and v.type.rank >= 2 and v.type.dtype == DType.float32 for v in values)


def _scaled(p: Pattern, s: Value) -> tuple[Node, float] | None:
    """The MatMul producing `s`, possibly through a scalar Mul or Div, and the scale."""
    rw = p.rw
    prod = rw.producer(s, "MatMul")
    if prod is not None:
        p.add(prod)
        return prod, 1.0
    op = rw.producer(s, "Mul", "Div")
    if op is None:
        return None
    pairs = [op.inputs] if op.op == "Div" else [op.inputs, op.inputs[::-1]]
    for x, c in pairs:
        value, prod = splat(c), rw.producer(x, "MatMul")
        if value is None or prod is None or c.type.rank > x.type.rank or value == 0:
            continue
        p.add(op)
        p.add(prod)
        return prod, (1.0 / value if op.op == "Div" else value)
    return None


def _attention(rw: Rewriter, node: Node) -> bool:
    soft = rw.producer(node.inputs[0], "Softmax")
    if soft is None or soft.attrs["axis"] % soft.outputs[0].type.rank != soft.outputs[0].type.rank - 1:
        return False
    add = rw.producer(soft.inputs[0], "Add")
    splits = [tuple(add.inputs), tuple(add.inputs[::-1])] if add is not None else [(soft.inputs[0], None)]
    for s, mask in splits:
        p = Pattern(rw)
        for n in (node, soft, add):
            if n is not None:
                p.add(n)
        found = _scaled(p, s)
        if found is not None and _fusable(p, node, found[0], mask):
            prod, scale = found
            fused = rw.op("SoftmaxAttention", *prod.inputs, node.inputs[1], mask, name=node.name, scale=scale)
            rw.replace(node.outputs[0], fused, "recognised attention")
            return True
    return False


def _fusable(p: Pattern, node: Node, prod: Node, mask: Value | None) -> bool:
    """Static float32 operands, scores not broadcast by the scale or mask, few enough keys, no outside reader."""
    q, kt, v, scores = prod.inputs[0], prod.inputs[1], node.inputs[1], prod.outputs[0]
    if not _static(q, kt, v, scores, node.outputs[0]):
        return False
    if mask is not None and not (mask.type.is_static and mask.type.dtype == DType.float32):
        return False
    if node.inputs[0].type.shape != scores.type.shape or scores.type.shape[-1] > MAX_KEYS:
        return False
    return p.closed(node)


@each_scope
def fuse_attention(graph: Graph) -> bool:
    return apply_rules(graph, {"MatMul": (_attention,)})
