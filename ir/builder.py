"""Building graphs node by node, with attribute checks and type inference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .graph import Graph, Node, Value
from .ops import get_op, infer_node
from .types import TensorType


class GraphBuilder:
    """Appends nodes in order, validating attributes and inferring output types.

    Names are kept unique: a requested name that is taken gets a numeric suffix.
    """

    def __init__(self, name: str = "main", opset: int = 0, taken: set[str] | None = None) -> None:
        self.name = name
        self.opset = opset
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self._names: set[str] = taken if taken is not None else set()
        self._counter = 0

    def unique(self, hint: str) -> str:
        hint = hint or "v"
        name = hint
        while name in self._names:
            self._counter += 1
            name = f"{hint}_{self._counter}"
        self._names.add(name)
        return name

    def input(self, name: str, type: TensorType) -> Value:
        value = Value(self.unique(name), type)
        self.inputs.append(value)
        return value

    def const(self, array: np.ndarray | float | int, name: str = "const") -> Value:
        return Value.constant(self.unique(name), np.asarray(array))

    def node(
        self,
        op: str,
        inputs: Sequence[Value | None],
        attrs: dict[str, Any] | None = None,
        *,
        name: str = "",
        num_outputs: int = 1,
        output_names: Sequence[str] | None = None,
    ) -> list[Value]:
        """Append one node and return its outputs."""
        name = self.unique(name or op.lower())
        inputs = list(inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        checked = get_op(op).check_attrs(attrs or {}, name)
        types, syms = infer_node(op, inputs, checked, num_outputs, name)
        names = list(output_names or [])
        names += [f"{name}_out{i}" if i else name for i in range(len(names), len(types))]
        outputs = [Value(self.unique(n), t, sym=s) for n, t, s in zip(names, types, syms)]
        self.nodes.append(Node(op, inputs, outputs, checked, name))
        return outputs

    def op(self, op: str, *inputs: Value | None, name: str = "", **attrs: Any) -> Value:
        """Shorthand for a single-output node: ``b.op("Add", x, y)``."""
        return self.node(op, list(inputs), attrs, name=name)[0]

    def build(self, outputs: Sequence[Value]) -> Graph:
        return Graph(self.name, self.inputs, outputs, self.nodes, self.opset)
