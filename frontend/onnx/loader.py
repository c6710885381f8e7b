"""Converting ONNX models into aic graphs.

`load_model` reads the model (a path or a ModelProto, external weights
included), inlines model-local functions, checks the whole model for
unsupported ops (one error listing them all), then converts graph by graph,
node by node, through the converter table. An ONNX op with no converter but
an ONNX function body converts as that body. Every node is first checked
against its ONNX schema (attribute names, kinds, required ones); errors name
the node, its op and opset and its input types.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import onnx
import onnx.inliner
from aic.ir import Graph, GraphBuilder, OpError, TensorType, Value

from . import (  # noqa: F401  (register converters)
    control,
    decompose_attention,
    decompose_misc,
    decompose_rnn,
    decompose_seq,
    decompose_spectral,
    versions,
    versions_nn,
    versions_resize,
)
from .converters import ConvertContext, Names, find_converter
from .errors import DEFAULT_DOMAINS, FrontendError, check_supported, opset_of
from .functions import expandable, function_for, function_opset, instantiate
from .reader import attribute_value, read_proto, tensor_array, value_type

NameFn = Callable[[str], str]

# Attributes of old opsets that carry no semantics (memory hints).
_LEGACY_ATTRS = ("consumed_inputs",)


def load_model(model: str | os.PathLike | onnx.ModelProto) -> Graph:
    """Read an ONNX model (a path or a ModelProto) into an aic Graph."""
    proto = read_proto(model)
    if proto.functions:
        try:
            proto = onnx.inliner.inline_local_functions(proto)
        except Exception as err:  # onnx's C++ inliner reports malformed functions
            raise FrontendError(f"cannot inline the model's local functions: {err}") from None
    opset = opset_of(proto)
    check_supported(proto, supported)
    converter = _ModelConverter(opset, Names(set(_value_names(proto.graph))))
    return converter.graph(proto.graph, {}, None, proto.graph.name or "main", opset)


def supported(domain: str, op_type: str, opset: int) -> bool:
    """Whether the frontend converts an op: by a converter, or through its ONNX function body."""
    if domain:
        return False
    return find_converter(op_type, opset) is not None or expandable(op_type, opset, supported)


def _value_names(graph: onnx.GraphProto) -> Iterator[str]:
    """The main graph's value names: kept exactly, so nothing else may take them."""
    yield from (v.name for v in graph.input)
    yield from (t.name for t in graph.initializer)
    for node in graph.node:
        yield from (o for o in node.output if o)


class _ModelConverter:
    def __init__(self, opset: int, names: Names) -> None:
        self.opset = opset
        self.names = names

    def graph(
        self,
        proto: onnx.GraphProto,
        outer: dict[str, Value],
        input_types: list[TensorType] | None,
        name: str,
        opset: int,
    ) -> Graph:
        """Convert one ONNX graph. `outer` maps names visible from enclosing
        graphs; `input_types` (subgraphs) overrides the declared input types."""
        builder = GraphBuilder(self.names.invent(name), self.opset, taken=self.names.taken)
        local = self.names.invent if input_types is not None else str  # subgraph names avoid the main graph's
        scope: dict[str, Value] = dict(outer)
        initializers = {t.name for t in proto.initializer}
        inputs = [info for info in proto.input if info.name not in initializers]
        if input_types is not None and len(input_types) != len(inputs):
            raise FrontendError(f"graph '{proto.name}' has {len(inputs)} inputs, expected {len(input_types)}")
        for i, info in enumerate(inputs):
            type = input_types[i] if input_types is not None else value_type(info, "graph input")
            scope[info.name] = builder.input(local(info.name), type)
        return builder.build(self.body(builder, proto, scope, local, opset))

    def body(
        self, builder: GraphBuilder, proto: onnx.GraphProto, scope: dict[str, Value], local: NameFn, opset: int
    ) -> list[Value]:
        """Convert a graph's initializers and nodes into `builder`; return its outputs."""
        if proto.sparse_initializer:
            raise FrontendError(f"graph '{proto.name}': sparse initializers are not supported")
        for t in proto.initializer:
            scope[t.name] = Value.constant(builder.unique(local(t.name)), tensor_array(t, f"graph '{proto.name}'"))
        for index, node in enumerate(proto.node):
            output_names = [local(o) if o else "" for o in node.output]
            self.node(builder, scope, node, node.name or f"{node.op_type}_{index}", output_names, opset)
        outputs = []
        for info in proto.output:
            if info.name not in scope:
                raise FrontendError(f"graph '{proto.name}': output '{info.name}' is never computed")
            _check_declared_type(info, scope[info.name], proto.name)
            outputs.append(scope[info.name])
        return outputs

    def node(
        self,
        builder: GraphBuilder,
        scope: dict[str, Value],
        node: onnx.NodeProto,
        name: str,
        output_names: list[str],
        opset: int,
    ) -> None:
        """Convert one node (`opset`: the model's, or that of the function body it comes from)."""
        inputs: list[Value | None] = []
        for i in node.input:
            if i and i not in scope:
                raise FrontendError(f"node '{name}' ({node.op_type}, opset {opset}): input '{i}' is not defined")
            inputs.append(scope[i] if i else None)
        where = _describe(name, node, opset, inputs)
        if node.domain not in DEFAULT_DOMAINS:
            raise FrontendError(f"{where}: domain '{node.domain}' is not supported")
        _check_attributes(node, opset, where)
        convert = find_converter(node.op_type, opset)
        if convert is None:
            if not supported("", node.op_type, opset):
                raise FrontendError(f"{where}: op {node.op_type} is not supported at opset {opset}")
            self.expand(builder, scope, node, name, output_names, opset, inputs)
            return
        attrs = {a.name: attribute_value(a, where) for a in node.attribute if a.name not in _LEGACY_ATTRS}

        def subgraph(graph: onnx.GraphProto, types: list[TensorType], hint: str) -> Graph:
            return self.graph(graph, scope, types, hint, opset)

        def inline(graph: onnx.GraphProto) -> list[Value]:
            return self.body(builder, graph, dict(scope), self.names.invent, opset)

        ctx = ConvertContext(
            builder, self.names, node.op_type, name, where, inputs, attrs, output_names, opset, subgraph, inline
        )
        try:
            outputs = convert(ctx)
        except FrontendError:
            raise
        except OpError as err:
            raise FrontendError(f"{where}: {err}") from None
        except Exception as err:  # a bug or an inference crash: still name the node
            raise FrontendError(f"{where}: {type(err).__name__}: {err}") from err
        missing = [o for o in node.output[len(outputs) :] if o]
        if missing:
            raise FrontendError(f"{where}: gives {len(outputs)} outputs; the model also reads {missing}")
        for onnx_name, value in zip(node.output, outputs):
            if onnx_name:
                scope[onnx_name] = value

    def expand(
        self,
        builder: GraphBuilder,
        scope: dict[str, Value],
        node: onnx.NodeProto,
        name: str,
        output_names: list[str],
        opset: int,
        inputs: list[Value | None],
    ) -> None:
        """Convert an op through its ONNX function body, node by node."""
        function = function_for(node, opset, inputs)
        claimed: set[str] = set()

        def rename(local_name: str) -> str:
            hint = f"{name}/{local_name}"
            new, k = self.names.invent(hint), 0
            while new in claimed:
                k += 1
                new = self.names.invent(f"{hint}_{k}")
            claimed.add(new)
            return new

        outer_names = dict(zip(node.output, output_names))
        inner = function_opset(function, opset)
        for sub in instantiate(node, function, opset, rename):
            names = [outer_names.get(o, o) for o in sub.output]
            self.node(builder, scope, sub, sub.name, names, inner)


def _check_declared_type(info: onnx.ValueInfoProto, value: Value, graph: str) -> None:
    """A graph output's declared element type must be the computed one (as onnxruntime requires)."""
    declared = info.type.tensor_type.elem_type if info.type.WhichOneof("value") == "tensor_type" else 0
    if declared and declared != value.type.dtype.onnx:
        name = onnx.TensorProto.DataType.Name(declared) if declared in onnx.TensorProto.DataType.values() else declared
        raise FrontendError(
            f"graph '{graph}': output '{info.name}' is declared {name}, but computed as {value.type.dtype.name} "
            f"({value.type})"
        )


def _describe(name: str, node: onnx.NodeProto, opset: int, inputs: list[Value | None]) -> str:
    """How errors name a node: its name, op type, opset and input types."""
    types = ", ".join(f"{n}: {v.type}" if v is not None else "-" for n, v in zip(node.input, inputs))
    return f"node '{name}' ({node.op_type}, opset {opset}) with inputs ({types})"


def _check_attributes(node: onnx.NodeProto, opset: int, where: str) -> None:
    """The node's attributes against its ONNX schema at the model's opset: names,
    kinds and required ones (older forms never reach the aic builder whole)."""
    schema = onnx.defs.get_schema(node.op_type, opset)
    given = {a.name: a for a in node.attribute}
    version = f"{node.op_type}-{schema.since_version}"
    unknown = sorted(set(given) - set(schema.attributes))
    if unknown:
        raise FrontendError(f"{where}: unknown attribute(s) {unknown}; {version} takes {sorted(schema.attributes)}")
    for attr_name, spec in schema.attributes.items():
        attr = given.get(attr_name)
        if attr is None:
            if spec.required:
                raise FrontendError(f"{where}: missing required attribute '{attr_name}' of {version}")
        elif attr.type != spec.type and not attr.ref_attr_name:
            kind = onnx.AttributeProto.AttributeType.Name
            raise FrontendError(
                f"{where}: attribute '{attr_name}' must be {kind(spec.type)}, got {kind(attr.type)} {_value(attr)}"
            )


def _value(attr: onnx.AttributeProto) -> str:
    return repr(onnx.helper.get_attribute_value(attr)) if attr.type not in _GRAPH_KINDS else "(a graph)"


_GRAPH_KINDS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
