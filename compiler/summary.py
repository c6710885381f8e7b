"""Model summary: inputs and outputs, op histogram, parameters, FLOPs.

FLOPs sum each node's `OpDef.flops` (control flow counts its bodies). A count
that depends on symbolic dims is evaluated with every symbol bound to 1 unless
a binding is given; the symbols so bound are reported, so the figure is read
as "per unit of batch/sequence".
"""

from __future__ import annotations

import ast
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aic.ir import Dim, Graph, Node, TensorType, Value, get_op


@dataclass
class Summary:
    name: str
    opset: int
    inputs: list[tuple[str, TensorType]]
    outputs: list[tuple[str, TensorType]]
    ops: dict[str, int]
    nodes: int
    params: int
    param_bytes: int
    flops: int
    bound_symbols: list[str] = field(default_factory=list)
    unknown_flops: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def values(items: list[tuple[str, TensorType]]) -> list[dict[str, Any]]:
            return [{"name": n, "dtype": t.dtype.name, "shape": list(t.shape)} for n, t in items]

        return {
            "name": self.name,
            "opset": self.opset,
            "inputs": values(self.inputs),
            "outputs": values(self.outputs),
            "ops": self.ops,
            "nodes": self.nodes,
            "params": self.params,
            "param_bytes": self.param_bytes,
            "flops": self.flops,
            "flops_bound_symbols": self.bound_symbols,
            "flops_unknown_nodes": self.unknown_flops,
        }

    def text(self) -> str:
        lines = [f"graph {self.name} (opset {self.opset})", "inputs:"]
        lines += [f"  {n}: {t}" for n, t in self.inputs]
        lines.append("outputs:")
        lines += [f"  {n}: {t}" for n, t in self.outputs]
        lines.append(f"nodes: {self.nodes}")
        lines.append("ops:")
        width = max((len(op) for op in self.ops), default=0)
        lines += [f"  {op:<{width}}  {count}" for op, count in self.ops.items()]
        lines.append(f"params: {self.params:,} ({human_bytes(self.param_bytes)})")
        flops = f"flops: {self.flops:,} ({human_count(self.flops)}FLOP)"
        if self.bound_symbols:
            flops += f"; symbols bound to 1: {', '.join(self.bound_symbols)}"
        if self.unknown_flops:
            flops += f"; not counted (symbolic sizes): {', '.join(self.unknown_flops)}"
        lines.append(flops)
        return "\n".join(lines)


def summarize(graph: Graph, bindings: Mapping[str, int] | None = None) -> Summary:
    """Summarise `graph`; `bindings` gives values to symbolic dims for the FLOP count."""
    bindings = dict(bindings or {})
    nodes = list(graph.walk())
    histogram = Counter(node.op for node in nodes)
    weights = {id(c): c for g in _graphs(graph) for c in g.constants()}
    flops, bound, unknown = 0, set(), []
    for node in graph.nodes:
        op = get_op(node.op)
        if op.flops is None:
            continue
        count = op.flops(node.input_types(), [v.type for v in node.outputs], node.attrs)
        value = evaluate_dim(count, bindings, bound)
        if value is None:
            unknown.append(node.name)
        else:
            flops += value
    return Summary(
        name=graph.name,
        opset=graph.opset,
        inputs=[(v.name, v.type) for v in graph.inputs],
        outputs=[(v.name, v.type) for v in graph.outputs],
        ops=dict(sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0]))),
        nodes=len(nodes),
        params=sum(_numel(c) for c in weights.values()),
        param_bytes=sum(c.const.nbytes for c in weights.values() if c.const is not None),
        flops=flops,
        bound_symbols=sorted(bound),
        unknown_flops=unknown,
    )


def group_flops(nodes: list[Node]) -> int | None:
    """The FLOPs of static-shaped `nodes` (None when an op does not count them)."""
    total = 0
    for node in nodes:
        op = get_op(node.op)
        count = op.flops(node.input_types(), [v.type for v in node.outputs], node.attrs) if op.flops else None
        if not isinstance(count, int):
            return None
        total += count
    return total


def _graphs(graph: Graph) -> Iterator[Graph]:
    yield graph
    for node in graph.nodes:
        for sub in node.subgraphs():
            yield from _graphs(sub)


def _numel(value: Value) -> int:
    return int(value.const.size) if value.const is not None else 0


_FUNCTIONS = {"ceil": math.ceil, "floor": math.floor, "min": min, "max": max}
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}


def evaluate_dim(dim: Dim, bindings: Mapping[str, int], bound: set[str]) -> int | None:
    """The value of a (possibly symbolic) dim expression; symbols without a
    binding count as 1 and are added to `bound`. None if it cannot be read."""
    if isinstance(dim, int):
        return dim
    try:
        tree = ast.parse(dim, mode="eval")
        return max(round(_eval(tree.body, bindings, bound)), 0)
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, KeyError):
        return None


def _eval(node: ast.AST, bindings: Mapping[str, int], bound: set[str]) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in bindings:
            bound.add(node.id)
        return bindings.get(node.id, 1)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_eval(node.left, bindings, bound), _eval(node.right, bindings, bound))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, bindings, bound)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        return _FUNCTIONS[node.func.id](*(_eval(a, bindings, bound) for a in node.args))
    raise ValueError(f"unsupported expression {ast.dump(node)}")


def human_count(n: float) -> str:
    """1234567 -> '1.23 M' (SI prefixes, ready for a unit)."""
    prefixes = ["", "K", "M", "G", "T", "P"]
    k = 0
    while abs(n) >= 1000 and k < len(prefixes) - 1:
        n /= 1000
        k += 1
    return f"{n:.3g} {prefixes[k]}"


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    size, k = float(n), 0
    while size >= 1024 and k < len(units) - 1:
        size /= 1024
        k += 1
    return f"{size:.3g} {units[k]}"
