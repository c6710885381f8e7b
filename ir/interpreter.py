"""Reference interpreter: runs a graph through the op table's numpy semantics.

It is the oracle for passes and codegen, and the engine of constant folding.
Every result is checked against the node's inferred type, so a reference
function and its inference rule cannot silently disagree.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .dims import is_static
from .graph import Graph, Node, Value
from .ops.registry import get_op


class InterpreterError(RuntimeError):
    pass


def run_graph(
    graph: Graph,
    feeds: Mapping[str, np.ndarray],
    env: Mapping[int, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Evaluate `graph` on `feeds` (graph input name -> array) and return its
    outputs in order. `env` carries values of enclosing graphs (by id)."""
    values: dict[int, np.ndarray] = dict(env or {})
    for value in graph.inputs:
        if value.name not in feeds:
            raise InterpreterError(f"missing input '{value.name}' of type {value.type}")
        values[id(value)] = _check_input(value, feeds[value.name])
    for node in graph.nodes:
        outputs = run_node(node, [_lookup(values, v) for v in node.inputs], values)
        for value, array in zip(node.outputs, outputs):
            values[id(value)] = array
    return [_lookup(values, v) for v in graph.outputs]


def run_node(
    node: Node, inputs: list[np.ndarray | None], env: Mapping[int, np.ndarray] | None = None
) -> list[np.ndarray]:
    """Evaluate one node. Subgraph ops read `env` through the `__env__` attribute."""
    op = get_op(node.op)
    attrs = dict(node.attrs)
    if any(True for _ in node.subgraphs()):
        attrs["__env__"] = env or {}
    try:
        outputs = op.reference(inputs, attrs)
    except InterpreterError:
        raise
    except Exception as err:  # a numpy failure inside a reference function
        raise InterpreterError(f"{node.describe()}: {type(err).__name__}: {err}") from err
    results = []
    for value, array in zip(node.outputs, outputs):
        array = np.asarray(array)
        if array.dtype != value.type.dtype.numpy:
            raise InterpreterError(
                f"{node.describe()}: output %{value.name} is {array.dtype}, expected {value.type.dtype.name}"
            )
        if is_static(value.type.shape) and array.shape != tuple(value.type.shape):
            raise InterpreterError(
                f"{node.describe()}: output %{value.name} has shape {list(array.shape)}, "
                f"expected {list(value.type.shape)}"
            )
        results.append(array)
    return results


def _lookup(values: Mapping[int, np.ndarray], value: Value | None) -> np.ndarray | None:
    if value is None:
        return None
    if value.const is not None:
        return value.const
    return values[id(value)]


def _check_input(value: Value, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    expected = value.type
    if array.dtype != expected.dtype.numpy:
        raise InterpreterError(f"input '{value.name}': expected {expected.dtype.name}, got {array.dtype}")
    if array.ndim != expected.rank or any(isinstance(d, int) and d != n for d, n in zip(expected.shape, array.shape)):
        raise InterpreterError(f"input '{value.name}': expected shape {list(expected.shape)}, got {list(array.shape)}")
    return array
