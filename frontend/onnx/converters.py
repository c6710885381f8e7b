"""The ONNX converter table: ``op_type -> {since_version: converter}``.

A converter maps one ONNX node onto aic ops through a `ConvertContext`. For
each node the frontend picks the converter with the highest since_version not
above the model's opset. aic ops follow the newest ONNX semantics, so an ONNX
op named like an aic op needs no entry (`direct`), unless an older version
differs: then the table holds a converter for the old form and `direct` from
the version on which the newest semantics hold. An op whose table has no entry
at or below the model's opset is unsupported at that opset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from aic.ir import Graph, GraphBuilder, TensorType, Value
from aic.ir.ops import OPS

from .errors import FrontendError


class Names:
    """Names of one model's values and nodes. ONNX value names are kept as
    they are; names the frontend invents avoid them."""

    def __init__(self, reserved: set[str]) -> None:
        self.reserved = reserved
        self.taken: set[str] = set()  # shared with every GraphBuilder of the model

    def invent(self, hint: str) -> str:
        name, k = hint, 0
        while name in self.reserved or name in self.taken:
            k += 1
            name = f"{hint}_{k}"
        return name


SubgraphFn = Callable[[onnx.GraphProto, list[TensorType], str], Graph]


@dataclass
class ConvertContext:
    """One ONNX node being converted."""

    builder: GraphBuilder
    names: Names
    op_type: str
    name: str
    where: str  # the node, its op, opset and input types, for errors
    inputs: list[Value | None]
    attrs: dict[str, Any]
    output_names: list[str]
    opset: int
    convert_subgraph: SubgraphFn
    inline_subgraph: Callable[[onnx.GraphProto], list[Value]]

    def input(self, i: int) -> Value | None:
        """Input `i`, or None when omitted."""
        return self.inputs[i] if i < len(self.inputs) else None

    def error(self, message: str) -> FrontendError:
        """An error naming this node, its op, opset and input types."""
        return FrontendError(f"{self.where}: {message}")

    def emit(
        self,
        op: str,
        inputs: list[Value | None],
        attrs: dict[str, Any] | None = None,
        num_outputs: int = 1,
        final: bool = True,
        first: int = 0,
    ) -> list[Value]:
        """Add an aic node. With `final`, its outputs take the ONNX output names
        (from the `first`-th on)."""
        if final:
            names = [n or self.names.invent(f"{self.name}_unused{i}") for i, n in enumerate(self.output_names)]
            names = names[first : first + num_outputs]
        else:
            names = [
                self.names.invent(f"{self.name}_{op.lower()}{'_' + str(i) if i else ''}") for i in range(num_outputs)
            ]
        node_name = self.names.invent(self.name)
        return self.builder.node(op, inputs, attrs, name=node_name, num_outputs=num_outputs, output_names=names)

    def op(self, op: str, *inputs: Value | None, **attrs: Any) -> Value:
        """An intermediate single-output node."""
        return self.emit(op, list(inputs), attrs, final=False)[0]

    def final(self, op: str, *inputs: Value | None, **attrs: Any) -> list[Value]:
        """The node giving this ONNX node's (single) output."""
        return self.emit(op, list(inputs), attrs)

    def const(self, array: Any, hint: str = "c", dtype: Any = None) -> Value:
        """A constant value (a weight, axes, a shape)."""
        array = np.asarray(array, dtype=dtype)
        return self.builder.const(array, self.names.invent(f"{self.name}_{hint}"))

    def final_const(self, array: np.ndarray) -> list[Value]:
        """This node's output as a constant value named like the ONNX output."""
        return [self.builder.const(array, self.output_names[0])]

    def ints(self, values: list[int], hint: str = "c") -> Value:
        """An int64 1-D constant such as axes or a shape."""
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), hint)

    def subgraph(self, attr: str, input_types: list[TensorType]) -> Graph:
        """Convert the ONNX graph attribute `attr` with the given input types; it
        may read values of the enclosing graphs by name."""
        return self.convert_subgraph(self.attrs[attr], input_types, f"{self.name}_{attr}")

    def inline(self, attr: str) -> list[Value]:
        """Convert the nodes of the input-less graph attribute `attr` into the
        enclosing graph (a branch known at compile time); return its outputs."""
        return self.inline_subgraph(self.attrs[attr])


Converter = Callable[[ConvertContext], list[Value]]
CONVERTERS: dict[str, dict[int, Converter]] = {}


def converter(op_type: str, *since: int) -> Callable[[Converter], Converter]:
    """Register `fn` as the converter of `op_type` from each opset in `since`
    (until the next registered version)."""

    def register(fn: Converter) -> Converter:
        versions = CONVERTERS.setdefault(op_type, {})
        for version in since or (1,):
            if version in versions:
                raise ValueError(f"converter {op_type} v{version} registered twice")
            versions[version] = fn
        return fn

    return register


def direct(ctx: ConvertContext) -> list[Value]:
    """The ONNX op is the aic op of the same name."""
    return ctx.emit(ctx.op_type, ctx.inputs, ctx.attrs, num_outputs=len(ctx.output_names))


def direct_from(op_type: str, *since: int) -> None:
    """From opset `since` on, `op_type` converts directly."""
    converter(op_type, *since)(direct)


def find_converter(op_type: str, opset: int) -> Converter | None:
    versions = CONVERTERS.get(op_type)
    if versions:
        usable = [v for v in versions if v <= opset]
        chosen = versions[max(usable)] if usable else None
    else:
        chosen = direct
    if chosen is direct and not (op_type in OPS and onnx.defs.has(op_type, opset)):
        return None  # not an aic op, or not yet an ONNX op at this opset
    return chosen
