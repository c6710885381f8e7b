"""A Transpose read by a reduction is folded into the reduction's axes.

Reduce(Transpose(x, p), axes) reduces x over p[axes] instead:

- keepdims=0: the kept dims come out in x's order, so no Transpose remains when
  p keeps the surviving dims in order (NHWC global pooling of an NCHW tensor:
  ReduceMean(Transpose(x, [0,2,3,1]), [1,2]) -> ReduceMean(x, [2,3])); else a
  smaller Transpose of the result restores the order;
- keepdims=1: Transpose(Reduce(x, p[axes]), p), which the layout passes sink on.

For reductions with constant axes (ReduceSum, ReduceMean, ...); the Transpose
must have no other reader, so no work is added.
"""

from __future__ import annotations

import numpy as np
from aic.ir import Graph, Node

from .rewrite import Rewriter, apply_rules, const_array, each_scope
from .simplify_chains import perm_of

REDUCTIONS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2")


def _fold_transpose(rw: Rewriter, node: Node) -> bool:
    x, axes_value = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None
    transpose = rw.producer(x, "Transpose")
    axes = const_array(axes_value)
    if transpose is None or axes is None or axes.size == 0 or rw.only_reader(x) is not node:
        return False
    perm = perm_of(transpose)
    rank = len(perm)
    reduced = sorted({perm[int(a) % rank] for a in axes.reshape(-1)})
    inner = rw.op(node.op, transpose.inputs[0], rw.const(np.asarray(reduced, np.int64), f"{node.name}_axes"),
                  name=node.name, **node.attrs)  # fmt: skip
    if node.attrs["keepdims"]:
        out = rw.op("Transpose", inner, name=node.name, perm=perm)
    else:
        kept = [p for p in perm if p not in reduced]  # x's dims in the order the reduction's result wants them
        order = [sorted(kept).index(p) for p in kept]
        out = inner if order == sorted(order) else rw.op("Transpose", inner, name=node.name, perm=order)
    if out.type != node.outputs[0].type:
        return False
    rw.replace(node.outputs[0], out, "folded Transpose into reduction axes")
    return True


@each_scope
def sink_reduce(graph: Graph) -> bool:
    return apply_rules(graph, dict.fromkeys(REDUCTIONS, (_fold_transpose,)))
