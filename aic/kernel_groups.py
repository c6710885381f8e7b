"""The fused groups of a graph, as the tools show them (report, TensorBoard).

One small function over the compiler's fusion, so that the tools do not depend on how
the compiler lists its groups and kernels: a group is the nodes one kernel computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FusedGroup:
    index: int
    label: str  # "MatMul+Add+Relu"
    nodes: tuple[Any, ...]  # ir Nodes, in topological order


def fused_groups(graph: Any) -> list[FusedGroup]:
    """The kernels' groups of an optimised, static-shaped graph (views, control flow and Concats by placement excluded);
    empty when the graph cannot be fused (an op without a lowering)."""
    from aic.compiler.fusion import fuse
    from aic.compiler.placement import plan_placement

    placed = plan_placement(graph).node_ids  # Concats whose inputs write into their buffer: no kernel
    try:
        groups = fuse(graph, placed)
    except (ValueError, NotImplementedError):
        return []
    kept = [g for g in groups if not g.alias and not g.control and id(g.root) not in placed]
    return [FusedGroup(i, g.describe(), tuple(g.nodes)) for i, g in enumerate(kept)]
