"""Constant folding through the op table's reference semantics.

A node whose inputs are all constants is evaluated by the reference interpreter
(`run_node`) and its outputs become constants. An output whose symbolic
contents are all known ints is folded too, even when its inputs are computed
at run time: shape arithmetic on static dims (Shape -> Gather -> Unsqueeze ->
Concat of a tensor whose other dims are symbolic) becomes a constant wherever
the dims it reads are static; values that hold symbols stay computed.

Size limit: an output is folded only if it takes at most
max(FOLD_LIMIT_BYTES, the constant inputs and tensor attributes together) bytes.
So weight-only subgraphs fold whatever their size (a Transpose, Cast, Slice,
Gather or Concat of weights: the weights are usually read only there and go
away), while an Expand, Tile or ConstantOfShape that would blow a small
constant up into a large one is left to run time.

Not folded: random ops, nodes with subgraphs (If/Loop/Scan), and nodes whose
reference semantics fail (the error is left for run time to report).
Assumes reference functions are deterministic. Types are re-inferred after
folding, since constants can make shapes downstream static.
"""

from __future__ import annotations

import numpy as np
from aic.ir import Graph, InterpreterError, Node
from aic.ir.interpreter import run_node

from .rewrite import NONDETERMINISTIC, Rewriter, const_array, each_scope

FOLD_LIMIT_BYTES = 1 << 20


def _limit(node: Node) -> int:
    sizes = [v.const.nbytes for v in node.inputs if v is not None and v.const is not None]
    sizes += [a.nbytes for a in node.attrs.values() if isinstance(a, np.ndarray)]
    return max(FOLD_LIMIT_BYTES, sum(sizes))


def evaluate(node: Node) -> list[np.ndarray] | None:
    """The node's outputs if all its inputs are constants and the outputs are
    within the size limit, else None."""
    if node.op in NONDETERMINISTIC or any(True for _ in node.subgraphs()):
        return None
    if any(v is not None and v.const is None for v in node.inputs):
        return None
    limit = _limit(node)
    if any(o.type.is_static and o.type.nbytes > limit for o in node.outputs):
        return None
    try:
        arrays = run_node(node, [v.const if v is not None else None for v in node.inputs])
    except InterpreterError:
        return None
    if any(a.nbytes > limit for a in arrays):
        return None
    return arrays


@each_scope
def fold_constants(graph: Graph) -> bool:
    rw = Rewriter(graph)
    for node in list(graph.nodes):
        if not rw.alive(node):
            continue
        arrays = evaluate(node)
        if arrays is not None:
            for out, array in zip(node.outputs, arrays):
                rw.replace(out, rw.const(array, out.name), f"folded {node.op}", refine=True)
            continue
        for out in node.outputs:
            array = const_array(out)
            if array is not None:
                rw.replace(out, rw.const(array, out.name), f"folded {node.op} of known shape values")
    return rw.finish() or rw.changes > 0
