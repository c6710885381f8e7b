"""Reading ONNX models into aic graphs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import onnx
from aic.ir import DType, Graph, GraphBuilder, OpError, TensorType, Value
from onnx import numpy_helper

from .converters import ConvertContext, find_converter


class FrontendError(ValueError):
    """The model cannot be read or converted."""


def load_model(model: str | os.PathLike | onnx.ModelProto) -> Graph:
    """Read an ONNX model (a path or a ModelProto) into an aic Graph."""
    proto = read_proto(model)
    opset = default_opset(proto)
    return convert_graph(proto.graph, opset, {})


def read_proto(model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise FrontendError(f"{path}: no such model file")
    try:
        return onnx.load(str(path), load_external_data=True)
    except Exception as err:
        raise FrontendError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from None


def default_opset(proto: onnx.ModelProto) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def value_type(info: onnx.ValueInfoProto) -> TensorType:
    tensor = info.type.tensor_type
    if not info.type.HasField("tensor_type"):
        raise FrontendError(f"value '{info.name}': only tensor types are supported")
    dtype = DType.from_onnx(tensor.elem_type)
    dims: list[int | str] = []
    for i, d in enumerate(tensor.shape.dim):
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        else:
            dims.append(d.dim_param or f"{info.name}_dim{i}")
    return TensorType(dtype, tuple(dims))


def attribute_value(attr: onnx.AttributeProto, opset: int, scope: dict[str, Value]) -> Any:
    kind = attr.type
    A = onnx.AttributeProto
    if kind == A.GRAPH:
        return convert_graph(attr.g, opset, scope)
    if kind == A.GRAPHS:
        return [convert_graph(g, opset, scope) for g in attr.graphs]
    if kind == A.TENSOR:
        return numpy_helper.to_array(attr.t)
    value = onnx.helper.get_attribute_value(attr)
    if kind == A.STRING:
        return value.decode()
    if kind == A.STRINGS:
        return [v.decode() for v in value]
    if kind in (A.INTS, A.FLOATS):
        return list(value)
    return value


def convert_graph(graph: onnx.GraphProto, opset: int, outer: dict[str, Value]) -> Graph:
    """Convert one ONNX graph; `outer` maps names visible from enclosing graphs."""
    builder = GraphBuilder(graph.name or "main", opset)
    scope: dict[str, Value] = dict(outer)
    initializers = {t.name: t for t in graph.initializer}
    for t in initializers.values():
        array = numpy_helper.to_array(t)
        scope[t.name] = Value.constant(builder.unique(t.name), array)
    for info in graph.input:
        if info.name in initializers:
            continue  # an initializer listed as input: a constant with a default
        scope[info.name] = builder.input(info.name, value_type(info))
    for index, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}_{index}"
        if node.domain not in ("", "ai.onnx"):
            raise FrontendError(f"node '{name}': domain '{node.domain}' is not supported")
        convert = find_converter(node.op_type, opset)
        if convert is None:
            raise FrontendError(f"node '{name}': op {node.op_type} (opset {opset}) is not supported")
        inputs = [scope[i] if i else None for i in node.input]
        attrs = {a.name: attribute_value(a, opset, scope) for a in node.attribute}
        ctx = ConvertContext(builder, node.op_type, name, inputs, attrs, list(node.output), opset)
        try:
            outputs = convert(ctx)
        except OpError as err:
            raise FrontendError(str(err)) from None
        for onnx_name, value in zip(node.output, outputs):
            if onnx_name:
                scope[onnx_name] = value
    return builder.build([scope[o.name] for o in graph.output])
