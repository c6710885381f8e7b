"""Specialising a graph whose shapes depend on its inputs.

Some models only have static shapes once their inputs are known: symbolic dims
(``batch``) that nobody bound, or shapes computed from the *values* of small
integer inputs (a Reshape target, Slice bounds, TopK's k fed as graph inputs).
`specialize` binds the dims from concrete input shapes and, when that is not
enough, freezes the small integer inputs into constants, so the result compiles
to a static program.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from aic.ir import Graph, Value
from aic.ir.graph_edit import clone_graph, refresh_types

from .lower.dynamic import compilable_bounds
from .shapes import bind_shapes

MAX_FROZEN_ELEMENTS = 64  # an input larger than this is data, not a shape


def is_static(graph: Graph) -> bool:
    """Every value's type in the graph (subgraphs included) is static, but for data-dependent
    sizes that only graph outputs have (NonZero, Unique, ...): their buffers get upper bounds
    when lowered (compiler/lower/dynamic.py), so they need no specialisation."""
    bounded = compilable_bounds(graph)
    return all(v.type.is_static for v in graph.inputs) and all(
        isinstance(d, int) or d in bounded for node in graph.walk() for o in node.outputs for d in o.type.shape
    )


def freezable_inputs(graph: Graph) -> list[Value]:
    """Inputs whose values may determine shapes: small tensors of rank 0 or 1 (sizes,
    axes, Resize scales, Range bounds, OneHot depth, a Loop's trip count)."""
    return [
        v
        for v in graph.inputs
        if v.type.rank <= 1 and all(isinstance(d, str) or d <= MAX_FROZEN_ELEMENTS for d in v.type.shape)
    ]


def specialize(graph: Graph, feeds: Mapping[str, np.ndarray]) -> tuple[Graph, list[str]]:
    """A static copy of `graph` for these feeds, and the names of the inputs that
    were frozen into constants (the specialised graph no longer takes them)."""
    bound = bind_shapes(graph, {v.name: tuple(np.shape(feeds[v.name])) for v in graph.inputs})
    if is_static(bound):
        return bound, []
    frozen = freezable_inputs(bound)
    if not frozen:
        return bound, []
    copy = clone_graph(bound)
    by_name = {v.name: v for v in copy.inputs}
    for value in frozen:
        old = by_name[value.name]
        copy.replace_uses(old, Value.constant(old.name, np.asarray(feeds[old.name], old.type.dtype.numpy)))
        copy.inputs.remove(old)
    refresh_types(copy)
    return copy, [v.name for v in frozen]
