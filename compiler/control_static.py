"""Control flow that compile-time facts settle, taken out of the graph before lowering.

- An If whose condition is a constant (an input frozen by specialisation, say) becomes
  its taken branch; the other branch may not even have static shapes.
- A Loop that cannot keep one static shape per iteration (Slice(x, i, i + 1) on the
  iteration number i) but runs a constant number of times, at most UNROLL_LIMIT, with a
  condition that stays true, is unrolled: one copy of the body per iteration, with i a
  constant, so that every shape becomes static. Other control flow is lowered as program
  steps (compiler/control.py).
"""

from __future__ import annotations

import numpy as np
from aic.ir.graph import Graph, Node, Value
from aic.ir.graph_edit import clone_graph, refresh_types

from .control import check_control
from .lower.core import LoweringError
from .storage import passes_through

UNROLL_LIMIT = 64


def resolve_static_control(graph: Graph) -> Graph:
    """A copy of `graph` with known Ifs inlined and loops of changing shapes unrolled, types
    re-inferred; `graph` itself when there is none."""
    if not any(_known_if(n) or _to_unroll(n) for n in graph.walk()):
        return graph
    graph = clone_graph(graph)
    _resolve(graph)
    refresh_types(graph)
    return graph


def _known_if(node: Node) -> bool:
    return node.op == "If" and node.inputs[0] is not None and node.inputs[0].const is not None


def _to_unroll(node: Node) -> bool:
    if node.op != "Loop" or not node.inputs or node.inputs[0] is None or node.inputs[0].const is None:
        return False
    body: Graph = node.attrs["body"]
    cond = node.inputs[1] if len(node.inputs) > 1 else None
    if not (cond is None or (cond.const is not None and bool(cond.const.reshape(-1)[0]))):
        return False
    trips = int(node.inputs[0].const.reshape(-1)[0])
    if not (1 <= trips <= UNROLL_LIMIT and passes_through(body.outputs[0], body.inputs[1])):
        return False
    try:
        check_control(node)
    except LoweringError:
        return True
    return False


def _resolve(graph: Graph) -> None:
    nodes: list[Node] = []
    for node in graph.nodes:
        for sub in node.subgraphs():
            _resolve(sub)
        if _known_if(node):
            flag = bool(node.inputs[0].const.reshape(-1)[0])  # type: ignore[union-attr]
            taken: Graph = node.attrs["then_branch" if flag else "else_branch"]
            nodes += taken.nodes
            nodes += _rename(taken.outputs, node.outputs, node.name)
        elif _to_unroll(node):
            nodes += _unroll(node)
        else:
            nodes.append(node)
    graph.nodes = nodes


def _rename(values: list[Value], outputs: list[Value], name: str) -> list[Node]:
    """Identity nodes giving `values` the names (and Value objects) of a replaced node's outputs."""
    return [Node("Identity", [v], [out], name=f"{name}/{out.name}") for v, out in zip(values, outputs)]


def _unroll(node: Node) -> list[Node]:
    body: Graph = node.attrs["body"]
    carried = len(body.inputs) - 2
    state = list(node.inputs[2 : 2 + carried])
    rows: list[list[Value]] = [[] for _ in body.outputs[1 + carried :]]
    nodes: list[Node] = []
    for t in range(int(node.inputs[0].const.reshape(-1)[0])):  # type: ignore[union-attr]
        copy = clone_graph(body)
        for inner in copy.walk():
            inner.name = f"{inner.name}@{t}"
            for o in inner.outputs:
                o.name = f"{o.name}@{t}"
        i = Value.constant(f"{node.name}@{t}/i", np.full(body.inputs[0].type.static_shape, t, np.int64))
        feeds = [i, Value.constant("true", np.ones(body.inputs[1].type.static_shape, bool))]
        for old, new in zip(copy.inputs, [*feeds, *state]):
            copy.replace_uses(old, new)  # type: ignore[arg-type]
        nodes += copy.nodes
        state = copy.outputs[1 : 1 + carried]
        for acc, v in zip(rows, copy.outputs[1 + carried :]):
            acc.append(v)
    nodes += _rename(state, node.outputs[:carried], node.name)  # type: ignore[arg-type]
    axes = Value.constant(f"{node.name}/axes", np.zeros(1, np.int64))
    for acc, out in zip(rows, node.outputs[carried:]):
        stacked = [Value(f"{v.name}/row", v.type) for v in acc]
        nodes += [Node("Unsqueeze", [v, axes], [row], name=row.name) for v, row in zip(acc, stacked)]
        nodes.append(Node("Concat", stacked, [out], {"axis": 0}, name=f"{node.name}/{out.name}"))
    return nodes
