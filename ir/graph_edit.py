"""Editing whole graphs: copies, and type inference run again after an edit.

`clone_graph` copies a graph (its bodies too) so that a pass or a specialisation can change
the copy; `refresh_types` re-infers every value's type after constants became known.
"""

from __future__ import annotations

from typing import Any

from .graph import Graph, Node, Value
from .ops import infer_node


def refresh_types(graph: Graph) -> None:
    """Re-run type inference over the graph (subgraphs first), so that types
    become as precise as the now-known constants allow."""
    for node in graph.nodes:
        for sub in node.subgraphs():
            refresh_types(sub)
        types, syms = infer_node(node.op, node.inputs, node.attrs, len(node.outputs), node.name)
        for out, t, s in zip(node.outputs, types, syms):
            out.type = t
            out.sym = s


def clone_graph(graph: Graph, mapping: dict[int, Value] | None = None) -> Graph:
    """A copy of `graph` with fresh values and nodes (constant arrays are shared).
    `mapping` maps ids of enclosing values to their copies."""
    seen: dict[int, Value] = mapping if mapping is not None else {}

    def copy(v: Value | None) -> Value | None:
        if v is None:
            return None
        if id(v) not in seen:
            if not v.is_const:
                return v  # a value of an enclosing graph that is not being copied
            seen[id(v)] = Value(v.name, v.type, const=v.const, sym=v.sym)
        return seen[id(v)]

    def copy_attr(a: Any) -> Any:
        if isinstance(a, Graph):
            return clone_graph(a, seen)
        if isinstance(a, list):
            return [copy_attr(x) for x in a]
        return a

    inputs = []
    for v in graph.inputs:
        seen[id(v)] = Value(v.name, v.type, sym=v.sym)
        inputs.append(seen[id(v)])
    nodes = []
    for node in graph.nodes:
        attrs = {k: copy_attr(a) for k, a in node.attrs.items()}
        outs = []
        for o in node.outputs:
            seen[id(o)] = Value(o.name, o.type, sym=o.sym)
            outs.append(seen[id(o)])
        nodes.append(Node(node.op, [copy(v) for v in node.inputs], outs, attrs, node.name))
    outputs = [copy(v) for v in graph.outputs]
    return Graph(graph.name, inputs, outputs, nodes, graph.opset)  # type: ignore[arg-type]
