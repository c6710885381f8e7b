"""The ONNX converter table: ``op_type -> {since_version: converter}``.

A converter maps one ONNX node onto aic ops through a `ConvertContext`. The
frontend picks, for each node, the converter with the highest since_version
not above the model's opset for the node's domain. ONNX ops whose newest
semantics equal an aic op of the same name need no entry: `direct` is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aic.ir import GraphBuilder, Value
from aic.ir.ops import OPS


@dataclass
class ConvertContext:
    """One ONNX node being converted."""

    builder: GraphBuilder
    op_type: str
    name: str
    inputs: list[Value | None]
    attrs: dict[str, Any]
    output_names: list[str]
    opset: int

    def emit(
        self,
        op: str,
        inputs: list[Value | None],
        attrs: dict[str, Any] | None = None,
        num_outputs: int = 1,
        final: bool = True,
    ) -> list[Value]:
        """Add an aic node. With `final`, its outputs take the ONNX output names."""
        return self.builder.node(
            op,
            inputs,
            attrs,
            name=self.name,
            num_outputs=num_outputs,
            output_names=self.output_names if final else None,
        )

    def const(self, array: Any, hint: str = "") -> Value:
        return self.builder.const(array, f"{self.name}_{hint}" if hint else self.name)


Converter = Callable[[ConvertContext], list[Value]]
CONVERTERS: dict[str, dict[int, Converter]] = {}


def converter(op_type: str, since: int = 1) -> Callable[[Converter], Converter]:
    """Register `fn` as the converter of `op_type` from opset `since`."""

    def register(fn: Converter) -> Converter:
        versions = CONVERTERS.setdefault(op_type, {})
        if since in versions:
            raise ValueError(f"converter {op_type} v{since} registered twice")
        versions[since] = fn
        return fn

    return register


def direct(ctx: ConvertContext) -> list[Value]:
    """The ONNX op is the aic op of the same name."""
    return ctx.emit(ctx.op_type, ctx.inputs, ctx.attrs, num_outputs=len(ctx.output_names))


def find_converter(op_type: str, opset: int) -> Converter | None:
    versions = CONVERTERS.get(op_type)
    if versions:
        usable = [v for v in versions if v <= opset]
        return versions[max(usable)] if usable else None
    return direct if op_type in OPS else None
