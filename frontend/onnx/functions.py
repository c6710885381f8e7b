"""Expanding ONNX function ops into their function bodies.

Many ONNX ops (RMSNormalization, Attention, the losses, the window functions...)
are defined by a function of simpler ops. When aic has no converter for such
an op, the frontend converts its body instead: the schema's function for the
highest version not above the model's opset, built for the node's attributes
and input types where the body depends on them. The body's nodes are renamed
into the caller's scope and its attribute references are resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import onnx
from aic.ir import TensorType, Value

from .errors import DEFAULT_DOMAINS


def _schema(op_type: str, opset: int) -> onnx.defs.OpSchema | None:
    return onnx.defs.get_schema(op_type, opset) if onnx.defs.has(op_type, opset) else None


def _version(versions: list[int], opset: int) -> int | None:
    usable = [v for v in versions if v <= opset]
    return max(usable) if usable else None


def plain_function(op_type: str, opset: int) -> onnx.FunctionProto | None:
    """The op's function body at `opset` when it does not depend on the node."""
    schema = _schema(op_type, opset)
    version = _version(list(schema.function_opset_versions), opset) if schema else None
    if version is None:
        return None
    return onnx.FunctionProto.FromString(schema.get_function_with_opset_version(version))


def has_context_function(op_type: str, opset: int) -> bool:
    schema = _schema(op_type, opset)
    return schema is not None and _version(list(schema.context_dependent_function_opset_versions), opset) is not None


def function_opset(function: onnx.FunctionProto, default: int) -> int:
    """The default-domain opset a function body is written in."""
    return next((o.version for o in function.opset_import if o.domain in DEFAULT_DOMAINS), default)


def expandable(op_type: str, opset: int, supported: Callable[[str, str, int], bool]) -> bool:
    """Whether `op_type` has a function body whose ops are all `supported`.
    A body built per node (a context-dependent function) counts as expandable."""
    if has_context_function(op_type, opset):
        return True
    function = plain_function(op_type, opset)
    if function is None:
        return False
    inner = function_opset(function, opset)
    return all(n.domain not in DEFAULT_DOMAINS or supported("", n.op_type, inner) for n in _nodes(function.node))


def _nodes(nodes) -> list[onnx.NodeProto]:
    out = []
    for node in nodes:
        out.append(node)
        for attr in node.attribute:
            for graph in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                out += _nodes(graph.node)
    return out


def function_for(node: onnx.NodeProto, opset: int, inputs: list[Value | None]) -> onnx.FunctionProto:
    """The body of `node` at `opset`, built for its attributes and input types when needed."""
    schema = onnx.defs.get_schema(node.op_type, opset)
    version = _version(list(schema.context_dependent_function_opset_versions), opset)
    if version is None:
        function = plain_function(node.op_type, opset)
        assert function is not None
        return function
    types = [_type_proto(v.type) if v is not None else onnx.TypeProto() for v in inputs]
    full = with_defaults(node, schema)
    body = schema.get_context_dependent_function_with_opset_version(
        version, full.SerializeToString(), [t.SerializeToString() for t in types]
    )
    return onnx.FunctionProto.FromString(body)


def _type_proto(t: TensorType) -> onnx.TypeProto:
    return onnx.helper.make_tensor_type_proto(t.dtype.onnx, [d if isinstance(d, int) else str(d) for d in t.shape])


def with_defaults(node: onnx.NodeProto, schema: onnx.defs.OpSchema) -> onnx.NodeProto:
    """A copy of `node` with the schema's default attribute values filled in."""
    full = onnx.NodeProto()
    full.CopyFrom(node)
    given = {a.name for a in node.attribute}
    for name, spec in schema.attributes.items():
        if name not in given and spec.default_value.type:
            full.attribute.append(spec.default_value)
    return full


def instantiate(
    node: onnx.NodeProto, function: onnx.FunctionProto, opset: int, rename: Callable[[str], str]
) -> list[onnx.NodeProto]:
    """The body's nodes in the caller's scope: formal inputs and outputs become
    the node's, every other name goes through `rename`, attribute references
    take the node's values (or the defaults)."""
    full = with_defaults(node, onnx.defs.get_schema(node.op_type, opset))
    attrs = {a.name: a for a in function.attribute_proto}
    attrs.update((a.name, a) for a in full.attribute)
    names: dict[str, str] = {"": ""}
    names.update(zip(function.input, [*node.input, *[""] * len(function.input)]))
    names.update(zip(function.output, [*node.output, *[""] * len(function.output)]))
    return [_rename_node(n, names, rename, attrs) for n in function.node]


def _rename_node(
    node: onnx.NodeProto,
    names: dict[str, str],
    rename: Callable[[str], str],
    attrs: Mapping[str, onnx.AttributeProto],
) -> onnx.NodeProto:
    def name(n: str) -> str:
        if n not in names:
            names[n] = rename(n)
        return names[n]

    out = onnx.NodeProto()
    out.CopyFrom(node)
    out.name = rename(node.name or node.op_type)
    out.input[:] = [name(n) for n in node.input]
    out.output[:] = [name(n) for n in node.output]
    del out.attribute[:]
    for attr in node.attribute:
        if attr.ref_attr_name:
            if attr.ref_attr_name not in attrs:
                continue  # an unset optional attribute
            resolved = onnx.AttributeProto()
            resolved.CopyFrom(attrs[attr.ref_attr_name])
            resolved.name = attr.name
            out.attribute.append(resolved)
            continue
        copy = out.attribute.add()
        copy.CopyFrom(attr)
        for graph in [copy.g] if attr.type == onnx.AttributeProto.GRAPH else copy.graphs:
            _rename_graph(graph, names, rename, attrs)
    return out


def _rename_graph(
    graph: onnx.GraphProto,
    names: dict[str, str],
    rename: Callable[[str], str],
    attrs: Mapping[str, onnx.AttributeProto],
) -> None:
    for info in [*graph.input, *graph.output]:
        info.name = names.setdefault(info.name, rename(info.name))
    nodes = [_rename_node(n, names, rename, attrs) for n in graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
