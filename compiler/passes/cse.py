"""Common-subexpression elimination: equal nodes are computed once.

A node with the same op, equal attributes and the same inputs as an earlier
node is replaced by that node.

Inputs are compared by identity, except constants of at most SMALL_CONST
elements, which are compared by dtype, shape and value (two copies of a scalar
0.5 match). Two-input commutative ops (Add, Mul, Max, ...) also match with their
inputs swapped. Nodes with subgraphs and random ops are never merged.
Assumes ops are pure functions of their inputs and attributes. Merged values may
differ in fresh symbolic dims (two Reshapes to a computed shape); types are then
re-inferred.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
from aic.ir import Graph, Node, Value

from .rewrite import NONDETERMINISTIC, Rewriter, each_scope

SMALL_CONST = 1024
COMMUTATIVE = frozenset(
    {"Add", "Mul", "Max", "Min", "And", "Or", "Xor", "Equal", "BitwiseAnd", "BitwiseOr", "BitwiseXor"}
)


def _array_key(array: np.ndarray) -> Hashable:
    return ("array", array.dtype.str, array.shape, np.ascontiguousarray(array).tobytes())


def _value_key(v: Value | None) -> Hashable:
    if v is None:
        return ("none",)
    if v.const is not None and v.const.size <= SMALL_CONST:
        return _array_key(v.const)
    return ("value", id(v))


def _attr_key(a: Any) -> Hashable:
    if isinstance(a, np.ndarray):
        return _array_key(a)
    if isinstance(a, (list, tuple)):
        return tuple(_attr_key(x) for x in a)
    return (type(a).__name__, repr(a))


def node_key(node: Node) -> Hashable | None:
    """What makes two nodes compute the same values, or None if never mergeable."""
    if node.op in NONDETERMINISTIC or any(True for _ in node.subgraphs()):
        return None
    inputs = [_value_key(v) for v in node.inputs]
    if node.op in COMMUTATIVE and len(inputs) == 2:
        inputs.sort(key=repr)
    attrs = tuple(sorted((k, _attr_key(a)) for k, a in node.attrs.items()))
    return (node.op, tuple(inputs), attrs, len(node.outputs))


@each_scope
def eliminate_common_subexpressions(graph: Graph) -> bool:
    rw = Rewriter(graph)
    first: dict[Hashable, Node] = {}
    for node in list(graph.nodes):
        key = node_key(node)
        if key is None:
            continue
        earlier = first.setdefault(key, node)
        if earlier is node:
            continue
        for old, new in zip(node.outputs, earlier.outputs):
            rw.replace(old, new, f"merged duplicate {node.op}", refine=True)
    return rw.finish()
