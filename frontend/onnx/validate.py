"""Structural checks of an ONNX model, before any conversion.

The checks of `onnx.checker` that decide what a model means, each naming the
offending value, node or graph: every name is text, the IR version and the ONNX
opset are ones onnx knows, the main graph has outputs, each graph lists an input or an initializer
once, defines each value once (static single assignment), declares initializers
that are also inputs with the same type and shape, and each node has as many
inputs and outputs as its schema allows (control-flow bodies as many as the node
needs). Unlike `onnx.checker`, a graph output without a declared shape is
accepted, as onnxruntime accepts it.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from .errors import DEFAULT_DOMAINS, FrontendError

A = onnx.AttributeProto


def validate_model(proto: onnx.ModelProto, where: str) -> None:
    """Raise a FrontendError for the first structural defect of the model."""
    if proto.ir_version > onnx.IR_VERSION:
        raise FrontendError(
            f"{where}: ir_version {proto.ir_version} is newer than the newest this onnx {onnx.__version__} "
            f"knows ({onnx.IR_VERSION})"
        )
    opsets = {}
    for entry in proto.opset_import:
        domain = _text(entry.domain, f"{where}: an opset import's domain")
        key = "" if domain in DEFAULT_DOMAINS else domain
        if key in opsets:
            raise FrontendError(f"{where}: imports domain '{domain}' twice (opsets {opsets[key]} and {entry.version})")
        opsets[key] = entry.version
    newest = onnx.defs.onnx_opset_version()
    if not 1 <= opsets.get("", 1) <= newest:
        raise FrontendError(
            f"{where}: imports ONNX opset {opsets['']}; this onnx {onnx.__version__} knows 1 to {newest}"
        )
    graph = proto.graph
    if not graph.output:
        raise FrontendError(f"{where}: graph '{_text(graph.name, 'the main graph name')}' has no outputs")
    _check_graph(graph, opsets, "")


def _check_graph(graph: onnx.GraphProto, opsets: dict[str, int], context: str) -> None:
    """`context` says where a subgraph is: " (body 'then_branch' of node 'If_0')"."""
    where = f"graph '{_text(graph.name, 'a graph name')}'{context}"
    inputs = _once(
        (_text(v.name, f"{where}: an input name") for v in graph.input), f"{where}: input '{{}}' is listed twice"
    )
    initializers = _once(
        (_text(t.name, f"{where}: an initializer name") for t in graph.initializer),
        f"{where}: two initializers are named '{{}}'",
    )
    declared = {v.name: v for v in graph.input}
    for tensor in graph.initializer:
        if tensor.name in declared:
            _check_initializer_type(tensor, declared[tensor.name], where)
    defined = inputs | initializers
    for v in list(graph.output) + list(graph.value_info):
        _text(v.name, f"{where}: an output or value_info name")
    for kind, items in (("input", graph.input), ("output", graph.output), ("initializer", graph.initializer)):
        if any(not v.name for v in items):
            raise FrontendError(f"{where}: a graph {kind} has an empty name")
    for index, node in enumerate(graph.node):
        name = _text(node.name, f"{where}: the name of node {index}") or f"{node.op_type}_{index}"
        op = _text(node.op_type, f"{where}: the op type of node '{name}'")
        domain = _text(node.domain, f"{where}: the domain of node '{name}'")
        for i in node.input:
            _text(i, f"{where}: an input name of node '{name}'")
        for out in node.output:
            _text(out, f"{where}: an output name of node '{name}'")
            if out and out in defined:
                raise FrontendError(
                    f"{where}: '{out}' is defined twice (an output of node '{name}' ({op}) and an earlier "
                    "input, initializer or node output); each value may be assigned once"
                )
            defined.add(out)
        _check_node(node, name, op, domain, opsets, where)


def _check_node(node: onnx.NodeProto, name: str, op: str, domain: str, opsets: dict[str, int], where: str) -> None:
    for attr in node.attribute:
        _text(attr.name, f"{where}: an attribute name of node '{name}'")
        context = f" (body '{attr.name}' of node '{name}')"
        if attr.type in (A.STRING, A.STRINGS):
            for text in [attr.s] if attr.type == A.STRING else attr.strings:
                _text_bytes(text, f"{where}: node '{name}' attribute '{attr.name}'")
        elif attr.type == A.GRAPH:
            _check_graph(attr.g, opsets, context)
        elif attr.type == A.GRAPHS:
            for g in attr.graphs:
                _check_graph(g, opsets, context)
    domain = "" if domain in DEFAULT_DOMAINS else domain
    opset = opsets.get(domain)
    if opset is None or not onnx.defs.has(op, opset, domain):
        return  # unknown ops and missing opsets are reported by check_supported, all at once
    schema = onnx.defs.get_schema(op, opset, domain)
    here = f"{where}: node '{name}' ({op}, opset {opset})"
    _count(len(node.input), schema.min_input, schema.max_input, "inputs", here)
    _count(len(node.output), schema.min_output, schema.max_output, "outputs", here)
    single = onnx.defs.OpSchema.FormalParameterOption.Single
    for i, input_name in enumerate(node.input):
        formal = schema.inputs[min(i, len(schema.inputs) - 1)]
        if not input_name and formal.option == single:
            raise FrontendError(f"{here}: input {i} ('{formal.name}') is required, but its name is empty")
    _check_body_arity(node, op, schema.since_version, here)


def _count(n: int, lo: int, hi: int, what: str, here: str) -> None:
    if not lo <= n <= hi:
        allowed = f"{lo}" if lo == hi else f"{lo} or more" if hi >= 2**31 - 1 else f"{lo} to {hi}"
        raise FrontendError(f"{here} has {n} {what}; the op takes {allowed}")


def _check_body_arity(node: onnx.NodeProto, op: str, since: int, here: str) -> None:
    """Control-flow bodies must match the node: Loop carries N values and scans K,
    If's branches give each output, Scan's body has one input per state and scan input
    (Scan-8's first input, the sequence lengths, has none)."""
    bodies = {a.name: a.g for a in node.attribute if a.type == A.GRAPH}
    if op == "Loop" and "body" in bodies:
        carried, body = len(node.input) - 2, bodies["body"]
        if len(node.output) < carried:
            raise FrontendError(f"{here}: has {carried} loop-carried values but only {len(node.output)} outputs")
        if len(body.input) != 2 + carried:
            raise FrontendError(
                f"{here}: its body has {len(body.input)} inputs; with {carried} loop-carried values it needs "
                f"{2 + carried} (iteration number, condition, the carried values)"
            )
        if len(body.output) != 1 + len(node.output):
            raise FrontendError(
                f"{here}: its body has {len(body.output)} outputs; for the node's {len(node.output)} outputs it "
                f"needs {1 + len(node.output)} (the condition, then the carried values and the scan outputs)"
            )
    if op == "If":
        for branch in ("then_branch", "else_branch"):
            if branch in bodies and len(bodies[branch].output) != len(node.output):
                raise FrontendError(
                    f"{here}: its {branch} gives {len(bodies[branch].output)} outputs, the node has {len(node.output)}"
                )
    if op == "Scan" and "body" in bodies:
        body, inputs = bodies["body"], len(node.input) - (since < 9)
        if len(body.input) != inputs or len(body.output) != len(node.output):
            raise FrontendError(
                f"{here}: its body has {len(body.input)} inputs and {len(body.output)} outputs; the node has "
                f"{inputs} state and scan inputs and {len(node.output)} outputs, and the body needs as many of each"
            )


def _check_initializer_type(tensor: onnx.TensorProto, info: onnx.ValueInfoProto, where: str) -> None:
    """An initializer that is also a graph input (a default value) must fit the declared input."""
    if info.type.WhichOneof("value") != "tensor_type":
        raise FrontendError(f"{where}: initializer '{tensor.name}' is a tensor, its graph input is not")
    declared = info.type.tensor_type
    if declared.elem_type and declared.elem_type != tensor.data_type:
        raise FrontendError(
            f"{where}: initializer '{tensor.name}' is {_type_name(tensor.data_type)}, but the graph input of "
            f"that name is declared {_type_name(declared.elem_type)}"
        )
    if not declared.HasField("shape"):
        return
    dims = [d.dim_value if d.HasField("dim_value") else None for d in declared.shape.dim]
    if len(dims) != len(tensor.dims) or any(d is not None and d != t for d, t in zip(dims, tensor.dims)):
        shown = ["?" if d is None else d for d in dims]
        raise FrontendError(
            f"{where}: initializer '{tensor.name}' has shape {list(tensor.dims)}, but the graph input of that "
            f"name is declared with shape {shown}"
        )


def _type_name(code: int) -> str:
    return onnx.TensorProto.DataType.Name(code) if code in onnx.TensorProto.DataType.values() else str(code)


def _once(names: Iterable[str], message: str) -> set[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FrontendError(message.format(name))
        seen.add(name)
    return seen


def _text(value: str | bytes, what: str) -> str:
    """A protobuf string field; one holding invalid UTF-8 reads as bytes."""
    if isinstance(value, bytes):
        _text_bytes(value, what)
        return value.decode()
    return value


def _text_bytes(value: bytes, what: str) -> None:
    try:
        value.decode()
    except UnicodeDecodeError as err:
        raise FrontendError(f"{what} is not valid UTF-8 text ({value[:60]!r}: {err.reason})") from None
