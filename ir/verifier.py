"""Graph verifier: SSA form, definition before use, and types that agree with inference."""

from __future__ import annotations

from .graph import Graph, Value
from .ops import OpError, get_op, infer_node


class VerifyError(ValueError):
    pass


def verify(graph: Graph, outer: frozenset[int] = frozenset()) -> None:
    """Raise VerifyError naming the first problem found. `outer` holds ids of
    values visible from enclosing graphs."""
    defined: set[int] = set(outer)
    names: set[str] = set()

    def define(value: Value, where: str) -> None:
        if id(value) in defined:
            raise VerifyError(f"{where}: value %{value.name} is defined twice")
        if value.name in names:
            raise VerifyError(f"{where}: name %{value.name} is used by two values")
        defined.add(id(value))
        names.add(value.name)

    for value in graph.inputs:
        define(value, f"graph {graph.name} input")
    for node in graph.nodes:
        where = node.describe()
        for value in node.inputs:
            if value is not None and not value.is_const and id(value) not in defined:
                raise VerifyError(f"{where}: reads %{value.name} before it is defined")
        try:
            get_op(node.op).check_attrs(node.attrs, node.name)
            types, _ = infer_node(node.op, node.inputs, node.attrs, len(node.outputs), node.name)
        except OpError as err:
            raise VerifyError(str(err)) from None
        for sub in node.subgraphs():
            verify(sub, frozenset(defined))
        for out, expected in zip(node.outputs, types):
            if out.producer is not node:
                raise VerifyError(f"{where}: output %{out.name} does not point back to its node")
            if out.type != expected:
                raise VerifyError(f"{where}: output %{out.name} has type {out.type}, inference gives {expected}")
            define(out, where)
    for value in graph.outputs:
        if not value.is_const and id(value) not in defined:
            raise VerifyError(f"graph {graph.name}: output %{value.name} is never defined")
