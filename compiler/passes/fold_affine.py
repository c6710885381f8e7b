"""Folding of per-channel Mul/Div/Add/Sub constants into a preceding Conv, Gemm or MatMul.

This is batch norm as Keras and some converters export it: Mul then Add by
per-channel constants.

Mul(y, c), Div(y, c) scale the weights and bias; Add(y, c), Sub(y, c) and
Sub(c, y) shift the bias (Conv, Gemm, or a MatMul already followed by a bias
Add; a bare MatMul plus an Add is left as it is, that Add being its bias).
`c` must be a constant that varies only along the output channels (axis 1 for
Conv, the last axis for Gemm/MatMul) and does not broadcast `y` to a larger
shape. Assumes `y` has no other reader than the elementwise op. Constants are
combined in float64 and rounded once.
"""

from __future__ import annotations

import numpy as np
from aic.ir import Graph, Node

from .linear import fold_affine, match_linear, per_channel
from .rewrite import Rewriter, apply_rules, const_array, each_scope


def _fold(rw: Rewriter, node: Node) -> bool:
    out = node.outputs[0]
    a, b = node.inputs
    for y, c, y_first in ((a, b, True), (b, a, False)):
        unit = match_linear(rw, y)
        if unit is None or rw.only_reader(y) is not node:
            continue
        k = per_channel(const_array(c), unit)
        if k is None or out.type != y.type:
            continue
        zero, one = np.zeros_like(k), np.ones_like(k)
        if node.op == "Mul":
            scale, shift = k, zero
        elif node.op == "Div" and y_first and np.all(k != 0):
            scale, shift = 1 / k, zero
        elif node.op in ("Add", "Sub") and unit.has_bias_slot:
            scale, shift = (one, k) if node.op == "Add" else (one, -k) if y_first else (-one, k)
        else:
            continue
        new = fold_affine(rw, unit, scale, shift)
        if new.type != out.type or not rw.can_replace(out, new):
            return False
        rw.replace(out, new, f"folded {node.op} by a per-channel constant into {unit.node.op}")
        return True
    return False


@each_scope
def fold_affine_constants(graph: Graph) -> bool:
    return apply_rules(graph, {op: (_fold,) for op in ("Mul", "Div", "Add", "Sub")})
