"""Binding a graph's symbolic input dims to static sizes.

`shapes` maps a dim symbol to its size (``{"batch": 1}``) or an input name to its
whole shape (``{"x": (1, 3, 224, 224)}``). The bound graph is a copy whose types are
re-inferred from the new input types, so every intermediate shape becomes static.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aic.ir import Graph, TensorType
from aic.ir.graph_edit import clone_graph, refresh_types

ShapeSpec = Mapping[str, int | Sequence[int]]


def bind_shapes(graph: Graph, shapes: ShapeSpec | None, allow_unbound: bool = False) -> Graph:
    """A copy of `graph` with static input shapes; ValueError naming the input and
    symbol when a dim is left unbound (unless `allow_unbound`: it stays symbolic), or when
    `shapes` names nothing in the graph or gives a bad size."""
    shapes = dict(shapes or {})
    symbols = {d for v in graph.inputs for d in v.type.shape if isinstance(d, str)}
    inputs = {v.name: v for v in graph.inputs}
    unknown = sorted(k for k in shapes if k not in inputs and k not in symbols)
    if unknown:
        raise ValueError(
            f"shapes names {unknown}, which are neither inputs ({sorted(inputs)}) nor input dim symbols "
            f"({sorted(symbols)})"
        )
    if not shapes and (allow_unbound or all(v.type.is_static for v in graph.inputs)):
        return graph
    sizes = {k: _size(k, v) for k, v in shapes.items() if k in symbols and k not in inputs}
    whole = {name: _whole_shape(name, inputs[name].type, value) for name, value in shapes.items() if name in inputs}
    for name, t in whole.items():  # a whole shape also binds the symbols it covers
        for d, n in zip(inputs[name].type.shape, t.shape):
            if isinstance(d, str) and sizes.setdefault(d, n) != n:
                raise ValueError(f"dim '{d}' is bound to both {sizes[d]} and {n} (by the shape of input '{name}')")
    bound = clone_graph(graph)
    for v in bound.inputs:
        if v.name in whole:
            v.type = whole[v.name]
            continue
        dims = tuple(sizes.get(d, d) if isinstance(d, str) else d for d in v.type.shape)
        for d in dims:
            if isinstance(d, str) and not allow_unbound:
                raise ValueError(
                    f"input '{v.name}' has symbolic dim '{d}' (shape {list(v.type.shape)}); bind it to a size with "
                    f"shapes={{'{d}': N}} (aic compile --shape {d}=N)"
                )
        v.type = v.type.with_shape(dims)
    refresh_types(bound)
    return bound


def _size(name: str, value: int | Sequence[int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"shapes['{name}'] must be a size (an int >= 0), got {value!r}")
    return value


def _whole_shape(name: str, t: TensorType, value: int | Sequence[int]) -> TensorType:
    dims = [value] if isinstance(value, int) else list(value)
    if len(dims) != t.rank:
        raise ValueError(f"shapes['{name}'] = {list(dims)} has rank {len(dims)}; input '{name}' is {t}")
    for d, want in zip(t.shape, dims):
        _size(name, want)
        if isinstance(d, int) and d != want:
            raise ValueError(f"shapes['{name}'] = {list(dims)} does not match the static dims of input '{name}': {t}")
    return t.with_shape(tuple(int(d) for d in dims))
