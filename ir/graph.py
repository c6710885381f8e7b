"""Graph IR: typed values, nodes and graphs.

A `Graph` is a list of `Node`s in topological order over SSA `Value`s. Weights
and other constants are values with `const` set and no producer. Nodes of a
subgraph (the bodies of If/Loop/Scan) may read values of enclosing graphs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .dims import Dim
from .dtypes import DType
from .types import TensorType


class Value:
    """An SSA value. `sym` holds the known contents of small integer tensors
    (shapes being computed), possibly symbolic, for shape inference."""

    __slots__ = ("const", "name", "producer", "sym", "type")

    def __init__(
        self,
        name: str,
        type: TensorType,
        producer: Node | None = None,
        const: np.ndarray | None = None,
        sym: tuple[Dim, ...] | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.producer = producer
        self.const = const
        self.sym = sym

    @staticmethod
    def constant(name: str, array: np.ndarray) -> Value:
        array = np.asarray(array)
        dtype = DType.from_numpy(array.dtype)
        sym = None
        if dtype.is_int and array.ndim <= 1 and array.size <= 64:
            sym = tuple(int(v) for v in array.reshape(-1))
        return Value(name, TensorType(dtype, array.shape), const=array, sym=sym)

    @property
    def is_const(self) -> bool:
        return self.const is not None

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    __slots__ = ("attrs", "inputs", "name", "op", "outputs")

    def __init__(
        self,
        op: str,
        inputs: Sequence[Value | None],
        outputs: Sequence[Value],
        attrs: dict[str, Any] | None = None,
        name: str = "",
    ) -> None:
        self.op = op
        self.inputs: list[Value | None] = list(inputs)
        self.outputs: list[Value] = list(outputs)
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.name = name
        for out in self.outputs:
            out.producer = self

    def input_types(self) -> list[TensorType | None]:
        return [v.type if v is not None else None for v in self.inputs]

    def describe(self) -> str:
        """One line naming the node, its op and its input shapes, for errors."""
        ins = ", ".join(str(t) if t else "-" for t in self.input_types())
        return f"node '{self.name}' ({self.op}) with inputs ({ins})"

    def subgraphs(self) -> Iterator[Graph]:
        for value in self.attrs.values():
            if isinstance(value, Graph):
                yield value
            elif isinstance(value, list) and value and isinstance(value[0], Graph):
                yield from value

    def __repr__(self) -> str:
        return f"Node({self.op}, {self.name!r})"


class Graph:
    def __init__(
        self,
        name: str,
        inputs: Sequence[Value],
        outputs: Sequence[Value],
        nodes: Sequence[Node],
        opset: int = 0,
    ) -> None:
        self.name = name
        self.inputs: list[Value] = list(inputs)
        self.outputs: list[Value] = list(outputs)
        self.nodes: list[Node] = list(nodes)
        self.opset = opset

    def constants(self) -> list[Value]:
        """Constant values read by this graph's nodes or returned as outputs, in first-use order."""
        seen: dict[int, Value] = {}
        for node in self.nodes:
            for v in node.inputs:
                if v is not None and v.is_const:
                    seen.setdefault(id(v), v)
        for v in self.outputs:
            if v.is_const:
                seen.setdefault(id(v), v)
        return list(seen.values())

    def consumers(self) -> dict[int, list[Node]]:
        """Map id(value) -> nodes reading it (subgraph reads count as the owning node)."""
        users: dict[int, list[Node]] = {}
        for node in self.nodes:
            for v in _all_reads(node):
                users.setdefault(id(v), []).append(node)
        return users

    def replace_uses(self, old: Value, new: Value) -> None:
        """Make every reader of `old` (graph outputs and subgraphs included) read `new`."""
        _replace_in(self, old, new)

    def walk(self) -> Iterator[Node]:
        """All nodes, subgraph nodes included."""
        for node in self.nodes:
            yield node
            for sub in node.subgraphs():
                yield from sub.walk()

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self.nodes)} nodes)"


def _all_reads(node: Node) -> Iterator[Value]:
    for v in node.inputs:
        if v is not None:
            yield v
    for sub in node.subgraphs():
        yield from free_values(sub)


def free_values(graph: Graph) -> list[Value]:
    """Values a (sub)graph reads from enclosing scopes (constants excluded)."""
    defined = {id(v) for v in graph.inputs}
    free: dict[int, Value] = {}
    for node in graph.nodes:
        for v in _all_reads(node):
            if id(v) not in defined and not v.is_const:
                free.setdefault(id(v), v)
        defined.update(id(o) for o in node.outputs)
    for v in graph.outputs:
        if id(v) not in defined and not v.is_const:
            free.setdefault(id(v), v)
    return list(free.values())


def _replace_in(graph: Graph, old: Value, new: Value) -> None:
    for node in graph.nodes:
        node.inputs = [new if v is old else v for v in node.inputs]
        for sub in node.subgraphs():
            _replace_in(sub, old, new)
    graph.outputs = [new if v is old else v for v in graph.outputs]
