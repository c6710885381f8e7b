"""Binding a graph's symbolic input dims to static sizes, or to ranges of sizes.

`shapes` maps a dim symbol to its size (``{"batch": 1}``) or an input name to its
whole shape (``{"x": (1, 3, 224, 224)}``). The bound graph is a copy whose types are
re-inferred from the new input types, so every intermediate shape becomes static.

A symbol may instead get a range, ``{"batch": (1, 64)}`` or ``{"seq": (1, 512, 128)}``
(min, max[, opt]; also the text ``"1..512:128"``): it stays symbolic, and the model is
compiled once for every size in the range (`split_ranges`). When any range is given, the
input symbols given nothing get `DEFAULT_RANGE`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from aic.ir import Graph, TensorType
from aic.ir.graph_edit import clone_graph, refresh_types

from .lower.sizes import SymbolRange

ShapeSpec = Mapping[str, int | Sequence[int] | str]
DEFAULT_RANGE = (1, 64, 1)  # min, max, opt of an input symbol left without a size or range


def parse_range(name: str, value: object) -> SymbolRange | None:
    """The range `value` gives symbol `name` ((min, max), (min, max, opt) or "min..max[:opt]"), or
    None when it is a plain size. opt defaults to min."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*\.\.\s*(\d+)\s*(?::\s*(\d+))?\s*", value)
        if m is None:
            if value.strip().isdigit():
                return None
            raise ValueError(f"shape of '{name}': expected N or MIN..MAX[:OPT], got {value!r}")
        value = tuple(int(g) for g in m.groups() if g is not None)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (2, 3):
        lo, hi, *opt = (int(v) for v in value)  # type: ignore[call-overload]
        if lo < 1:
            raise ValueError(f"the range of '{name}' must start at 1 or more, got {lo}")
        return SymbolRange(name, lo, hi, opt[0] if opt else lo)
    return None


def split_ranges(graph: Graph, shapes: ShapeSpec | None) -> tuple[dict[str, object], dict[str, SymbolRange]]:
    """`shapes` split into the sizes and whole shapes to bind, and the ranges of input symbols
    (with DEFAULT_RANGE for the input symbols given nothing, when any range is given)."""
    symbols = {d for v in graph.inputs for d in v.type.shape if isinstance(d, str)}
    fixed: dict[str, object] = {}
    ranges: dict[str, SymbolRange] = {}
    for key, value in (shapes or {}).items():
        r = parse_range(key, value) if key in symbols and key not in {v.name for v in graph.inputs} else None
        if r is not None:
            ranges[key] = r
        else:
            fixed[key] = int(value) if isinstance(value, str) else value
    if ranges:
        bound = set(fixed)
        for v in graph.inputs:
            bound |= {d for d in v.type.shape if v.name in fixed and isinstance(d, str)}
        for name in sorted(symbols - bound - set(ranges)):
            ranges[name] = SymbolRange(name, *DEFAULT_RANGE)
    return fixed, ranges


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
                    f"shapes={{'{d}': N}} (aic compile --shape {d}=N), or a range compiled once: --shape {d}=MIN..MAX"
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
