"""Attention recognition: MatMul(Softmax(MatMul(q, kt) * scale + mask), v) becomes one SoftmaxAttention op.

The scale is a scalar constant (Mul on either side, or Div), optional; the mask is an additive
tensor, optional, or two of them added in turn (a position bias, then a padding mask: their sum,
computed once by a node of its own, is the mask), that must not broadcast the scores to a larger
shape. Only static float32 shapes are fused, and only up to MAX_KEYS keys: the lowering keeps a block
of score rows on the stack (compiler/lower/attention.py). The intermediates must have no reader outside the pattern.

An operand that is a Squeeze or Reshape dropping a leading unit dim (q, k, v taken from one fused
projection: Transpose, Slice, then Squeeze) is read with that dim instead, and the output reshaped
back: aliases are never fused, so the Squeeze kept the Slice and Transpose before it as kernels of
their own, where the attention kernel can read them in place (its `views` inputs, compiler/fusion.py).
"""

from __future__ import annotations

import numpy as np
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


def _masks(rw: Rewriter, x: Value) -> list[tuple[Value, list[Node], list[Value]]]:
    """Ways to read `x` as scores + masks: (scores, the Adds read, the additive terms), up to two terms
    (T5's relative position bias, then the padding mask: (s + bias) + mask is fused as s + (bias + mask))."""
    ways: list[tuple[Value, list[Node], list[Value]]] = [(x, [], [])]
    outer = rw.producer(x, "Add")
    if outer is None:
        return ways
    for s, mask in (tuple(outer.inputs), tuple(outer.inputs[::-1])):
        ways.append((s, [outer], [mask]))
        inner = rw.producer(s, "Add")
        if inner is not None:
            ways += [(t, [outer, inner], [m, mask]) for t, m in (tuple(inner.inputs), tuple(inner.inputs[::-1]))]
    return ways[1:] if len(ways) > 1 else ways


def _attention(rw: Rewriter, node: Node) -> bool:
    soft = rw.producer(node.inputs[0], "Softmax")
    if soft is None or soft.attrs["axis"] % soft.outputs[0].type.rank != soft.outputs[0].type.rank - 1:
        return False
    for s, adds, terms in _masks(rw, soft.inputs[0]):
        p = Pattern(rw)
        for n in (node, soft, *adds):
            p.add(n)
        found = _scaled(p, s)
        if found is not None and all(_fusable(p, node, found[0], t) for t in terms or [None]):
            prod, scale = found
            mask = rw.op("Add", *terms) if len(terms) == 2 else (terms[0] if terms else None)
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


def _with_unit_dim(rw: Rewriter, v: Value | None) -> Value | None:
    """x when `v` is x without its leading unit dim (a Squeeze or Reshape of a static x), else None."""
    drop = rw.producer(v, "Squeeze", "Reshape")
    if v is None or drop is None:
        return None
    x = drop.inputs[0]
    shape = x.type.shape
    if not x.type.is_static or len(shape) != v.type.rank + 1 or shape[0] != 1 or tuple(shape[1:]) != v.type.shape:
        return None
    return x


def _unit_dims(rw: Rewriter, node: Node) -> bool:
    q, kt, v = node.inputs[:3]
    mask = node.inputs[3] if len(node.inputs) > 3 else None
    new_q, new_v, new_kt = _with_unit_dim(rw, q), _with_unit_dim(rw, v), None
    transpose = rw.producer(kt, "Transpose")
    k = _with_unit_dim(rw, transpose.inputs[0]) if transpose is not None else None
    if transpose is not None and k is not None and transpose.attrs.get("perm") is not None:
        new_kt = rw.op("Transpose", k, perm=[0, *(p + 1 for p in transpose.attrs["perm"])])
    if new_q is None and new_kt is None and new_v is None:
        return False
    fused = rw.op("SoftmaxAttention", new_q or q, new_kt or kt, new_v or v, mask, name=node.name,
                  scale=node.attrs["scale"])
    out = node.outputs[0]
    if fused.type.shape != out.type.shape:
        fused = rw.op("Reshape", fused, rw.const(np.array(out.type.shape, np.int64)))
    rw.replace(out, fused, "attention operands with their leading unit dim")
    return True


@each_scope
def fuse_attention(graph: Graph) -> bool:
    return apply_rules(graph, {"MatMul": (_attention,), "SoftmaxAttention": (_unit_dims,)})
