"""Dead-code elimination: remove nodes whose outputs reach no graph output.

Assumes ops have no side effects (true of aic ops: random ops are merely
nondeterministic, so an unused one may go). Graph inputs are kept even when
unused: they are the model's interface. Subgraph bodies are cleaned too.
"""

from __future__ import annotations

from aic.ir import Graph

from .rewrite import Rewriter, each_scope, note


@each_scope
def eliminate_dead_code(graph: Graph) -> bool:
    rw = Rewriter(graph)
    for node in reversed(graph.nodes):
        rw.kill_if_dead(node)
    for node in graph.nodes:
        if not rw.alive(node):
            note(f"removed unused {node.op}")
    return rw.finish()
