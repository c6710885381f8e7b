"""Batch-norm folding into the weights and bias of a preceding Conv, Gemm or MatMul.

An inference BatchNormalization after a Conv, Gemm or MatMul with constant
weights is folded into the weights and bias:
W' = W * s per output channel, b' = b * s + t, with s = gamma / sqrt(var + eps)
and t = beta - mean * s (computed in float64, rounded once).

Assumes the linear op's output is read only by the batch norm, and the
batch-norm parameters are constants; a Gemm or MatMul output must be 2-D
(channels on axis 1, as BatchNormalization reads them). A MatMul gains an Add
for the bias. Any other batch norm with constant parameters becomes
x * s + t (Mul and Add by per-channel constants), which fusion handles like
any elementwise chain.
"""

from __future__ import annotations

import numpy as np
from aic.ir import Graph, Node

from .linear import fold_affine, match_linear
from .rewrite import Rewriter, apply_rules, const_array, each_scope


def _fold(rw: Rewriter, node: Node) -> bool:
    x = node.inputs[0]
    params = [const_array(v) for v in node.inputs[1:]]
    out = node.outputs[0]
    if x is None or any(p is None for p in params) or not out.type.dtype.is_float:
        return False
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)  # type: ignore[union-attr]
    scale = gamma / np.sqrt(var + node.attrs["epsilon"])
    shift = beta - mean * scale
    unit = match_linear(rw, x)
    if unit is not None and unit.axis == 1 and rw.only_reader(x) is node:
        new = fold_affine(rw, unit, scale, shift)
        rule = f"folded BatchNormalization into {unit.node.op}"
    else:
        dtype = out.type.dtype.numpy
        shape = (-1,) + (1,) * (out.type.rank - 2)
        scaled = rw.op("Mul", x, rw.const(scale.reshape(shape).astype(dtype), "bn_scale"), name=node.name)
        new = rw.op("Add", scaled, rw.const(shift.reshape(shape).astype(dtype), "bn_shift"), name=node.name)
        rule = "decomposed BatchNormalization into Mul and Add"
    if new.type != out.type or not rw.can_replace(out, new):
        return False
    rw.replace(out, new, rule)
    return True


@each_scope
def fold_batchnorm(graph: Graph) -> bool:
    return apply_rules(graph, {"BatchNormalization": (_fold,)})
