"""The TensorFlow converter table: ``tf_op -> converter``, onto aic's op table.

A converter maps one TensorFlow node onto aic ops (ONNX semantics) through a
`TFContext`. Every aic node whose inputs are all constants is evaluated at once
by the op table's reference semantics (TensorFlow's shape subgraphs and
constant weight arithmetic fold away while the graph is read), and
Identity-like ops add no node. Layout-sensitive ops (convolution, pooling,
resize, fused batch norm) work in NCHW: their converters transpose from the
model's NHWC and back, and the graph passes cancel the transposes that meet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aic.ir import DType, GraphBuilder, Value, get_op

from .errors import TFFrontendError

FOLD_LIMIT = 1 << 24  # elements: larger constant results stay nodes (the passes fold them if they should)
NO_FOLD = frozenset({"If", "Loop", "Scan"})


@dataclass
class TFContext:
    """One TensorFlow node being converted."""

    builder: GraphBuilder
    name: str
    op_type: str
    inputs: list[Value]
    attrs: dict[str, Any]
    function_body: Callable[[GraphBuilder, str, list[Value]], list[Value]]  # a library function, converted
    taken: set[str]  # names used in the model, subgraphs included

    def call(self, function: str, args: list[Value], builder: GraphBuilder | None = None) -> list[Value]:
        """Convert library function `function` on `args` into `builder` (default: this graph's)."""
        return self.function_body(builder or self.builder, function, args)

    def sub_builder(self, hint: str) -> GraphBuilder:
        """A builder for a subgraph (an If branch, a Loop body) whose names avoid this graph's."""
        return GraphBuilder(self.builder.unique(f"{self.name}/{hint}"), self.builder.opset, taken=self.taken)

    def __post_init__(self) -> None:
        types = ", ".join(str(v.type) for v in self.inputs)
        self.where = f"node '{self.name}' ({self.op_type}) with inputs ({types})"

    def error(self, message: str) -> TFFrontendError:
        return TFFrontendError(f"{self.where}: {message}")

    def attr(self, name: str, default: Any = None) -> Any:
        value = self.attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value

    def const_input(self, i: int) -> np.ndarray:
        """Input `i`, which must be known at compile time (a constant or known shape arithmetic)."""
        v = self.inputs[i]
        if v.const is not None:
            return v.const
        if v.sym is not None and all(isinstance(d, int) for d in v.sym):
            return np.asarray(v.sym, dtype=v.type.dtype.numpy).reshape(v.type.shape)
        raise self.error(f"input {i} ('{v.name}') must be known at compile time")

    def ints(self, i: int) -> list[int]:
        return [int(v) for v in self.const_input(i).reshape(-1)]

    def op(self, op: str, *inputs: Value | None, num_outputs: int = 1, **attrs: Any) -> Value:
        return self.node(op, list(inputs), attrs, num_outputs)[0]

    def node(self, op: str, inputs: list[Value | None], attrs: dict[str, Any], num_outputs: int = 1) -> list[Value]:
        """An aic node (folded into constants when its inputs all are)."""
        checked = get_op(op).check_attrs(attrs, self.name)
        present = [v for v in inputs if v is not None]
        if op not in NO_FOLD and present and all(v.const is not None for v in present):
            arrays = [v.const if v is not None else None for v in inputs]
            while arrays and arrays[-1] is None:
                arrays.pop()
            results = get_op(op).reference(arrays, checked)
            if all(np.asarray(r).size <= FOLD_LIMIT for r in results):
                return [self.const(r, f"{op.lower()}") for r in results[:num_outputs]]
        return self.builder.node(op, inputs, attrs, name=self.name, num_outputs=num_outputs)

    def const(self, array: Any, hint: str = "c", dtype: Any = None) -> Value:
        return self.builder.const(np.asarray(array, dtype=dtype), f"{self.name}/{hint}")

    def int64(self, values: Any, hint: str = "c") -> Value:
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), hint)

    def as_int64(self, v: Value) -> Value:
        return v if v.type.dtype == DType.int64 else self.op("Cast", v, to=DType.int64.onnx)

    def axes(self, v: Value) -> Value:
        """An axis or axes input as a 1-D int64 tensor."""
        v = self.as_int64(v)
        return v if v.type.rank == 1 else self.op("Reshape", v, self.int64([-1], "shape"))

    def cast(self, v: Value, dtype: DType) -> Value:
        return v if v.type.dtype == dtype else self.op("Cast", v, to=dtype.onnx)

    def to_channels_first(self, x: Value) -> Value:
        r = x.type.rank
        return self.op("Transpose", x, perm=[0, r - 1, *range(1, r - 1)])

    def to_channels_last(self, x: Value) -> Value:
        r = x.type.rank
        return self.op("Transpose", x, perm=[0, *range(2, r), 1])

    def channels_last(self) -> bool:
        fmt = self.attr("data_format", "NHWC")
        if fmt not in ("NHWC", "NDHWC", "NCHW", "NCDHW", "NWC", "NCW"):
            raise self.error(f"data_format {fmt} is not supported")
        return not fmt.startswith("NC")


Converter = Callable[[TFContext], list[Value]]
CONVERTERS: dict[str, Converter] = {}


def converter(*op_types: str) -> Callable[[Converter], Converter]:
    """Register `fn` as the converter of each TensorFlow op in `op_types`."""

    def register(fn: Converter) -> Converter:
        for op_type in op_types:
            if op_type in CONVERTERS:
                raise ValueError(f"converter {op_type} registered twice")
            CONVERTERS[op_type] = fn
        return fn

    return register


def same(aic_op: str, **attrs: Any) -> Converter:
    """A converter onto one aic op with the same inputs."""

    def convert(ctx: TFContext) -> list[Value]:
        return [ctx.op(aic_op, *ctx.inputs, **attrs)]

    return convert


def register_same(table: dict[str, str]) -> None:
    for tf_op, aic_op in table.items():
        converter(tf_op)(same(aic_op))
