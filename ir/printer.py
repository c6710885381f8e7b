"""Stable text form of graphs.

graph main(%x: f32[batch,3]) {
  %w = const f32[3,4]
  %y = MatMul(%x, %w)  # f32[batch,4]
  return %y
}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .graph import Graph, Value

_MAX_INLINE = 8


def print_graph(graph: Graph, indent: str = "") -> str:
    lines = [f"{indent}graph {graph.name}({', '.join(map(repr, graph.inputs))}) {{"]
    inner = indent + "  "
    for c in graph.constants():
        lines.append(f"{inner}%{c.name} = const {c.type}{_const_preview(c)}")
    for node in graph.nodes:
        outs = ", ".join(f"%{o.name}" for o in node.outputs)
        args = ", ".join(f"%{v.name}" if v is not None else "_" for v in node.inputs)
        plain = {k: v for k, v in node.attrs.items() if not _is_graph_attr(v)}
        attrs = f" {{{', '.join(f'{k}={_attr_text(v)}' for k, v in sorted(plain.items()))}}}" if plain else ""
        types = ", ".join(str(o.type) for o in node.outputs)
        lines.append(f"{inner}{outs} = {node.op}({args}){attrs}  # {types}")
        for key, value in sorted(node.attrs.items()):
            for sub in value if isinstance(value, list) else [value]:
                if isinstance(sub, Graph):
                    lines.append(f"{inner}  {key}:")
                    lines.append(print_graph(sub, inner + "  "))
    lines.append(f"{inner}return {', '.join(f'%{o.name}' for o in graph.outputs)}")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def _is_graph_attr(value: Any) -> bool:
    return isinstance(value, Graph) or (isinstance(value, list) and bool(value) and isinstance(value[0], Graph))


def _const_preview(value: Value) -> str:
    array = value.const
    assert array is not None
    if array.size <= _MAX_INLINE:
        return f" = {np.array2string(array.reshape(-1), separator=',')}"
    return ""


def _attr_text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= _MAX_INLINE:
            return f"tensor({np.array2string(value.reshape(-1), separator=',')}:{value.dtype})"
        return f"tensor({value.dtype}{list(value.shape)})"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_attr_text(v) for v in value) + "]"
    return str(value)
