"""Converters of ONNX control flow: If, Loop, Scan.

Bodies are converted with input types derived from the node's inputs (the
values actually fed), checked against the element types the ONNX body
declares; they read enclosing values by name. A loop-carried value whose dims
change across iterations is typed with fresh symbols for those dims: the body
is converted once with the initial types, then again with the changing dims
generalised.
"""

from __future__ import annotations

import re

import onnx
from aic.ir import DType, Graph, TensorType, Value

from .converters import ConvertContext, converter
from .reader import element_type


def _declared_check(ctx: ConvertContext, body: onnx.GraphProto, types: list[TensorType]) -> None:
    """The body's declared input element types, where given, must match what is fed."""
    for info, t in zip(body.input, types):
        tensor = info.type.tensor_type
        if info.type.HasField("tensor_type") and tensor.elem_type:
            declared = element_type(tensor.elem_type, f"node '{ctx.name}' body input '{info.name}'")
            if declared != t.dtype:
                raise ctx.error(f"body input '{info.name}' is declared {declared.name} but receives {t}")
        elif info.type.WhichOneof("value") not in (None, "tensor_type"):
            raise ctx.error(f"body input '{info.name}' is not a tensor")


def _flag_type(info: onnx.ValueInfoProto, dtype: DType) -> TensorType:
    """Loop's iteration number and condition: scalars, or [1] where the body declares rank 1."""
    shape = info.type.tensor_type.shape
    rank = 1 if info.type.tensor_type.HasField("shape") and len(shape.dim) == 1 else 0
    return TensorType(dtype, (1,) * rank)


def _carried_body(ctx: ConvertContext, types: list[TensorType], first: int, out_first: int, count: int) -> Graph:
    """Convert the body; where a carried value's dims change across iterations,
    convert it again with those dims as fresh symbols."""
    proto: onnx.GraphProto = ctx.attrs["body"]
    _declared_check(ctx, proto, types)
    taken = set(ctx.names.taken)
    graph = ctx.subgraph("body", types)
    general = list(types)
    base = re.sub(r"\W", "_", ctx.name).strip("_") or "loop"
    for j in range(count):
        t, out = types[first + j], graph.outputs[out_first + j].type
        if out.rank == t.rank and out.shape != t.shape:
            dims = [
                d if d == o else ctx.names.invent(f"{base}_v{j}_d{i}")
                for i, (d, o) in enumerate(zip(t.shape, out.shape))
            ]
            general[first + j] = t.with_shape(dims)
    if general == types:
        return graph
    ctx.names.taken.intersection_update(taken)  # the first conversion is dropped: free its names
    return ctx.subgraph("body", general)


@converter("If", 1)
def convert_if(ctx: ConvertContext) -> list[Value]:
    """An If whose condition is known at compile time becomes its taken branch
    (the other branch may not even type-check for these inputs)."""
    cond = ctx.inputs[0]
    known = cond.const.reshape(-1).tolist() if cond.const is not None else cond.sym
    if known is not None and len(known) == 1 and isinstance(known[0], (int, bool)):
        outputs = ctx.inline("then_branch" if known[0] else "else_branch")
        return [ctx.emit("Identity", [v], first=i)[0] for i, v in enumerate(outputs)]
    then, other = ctx.subgraph("then_branch", []), ctx.subgraph("else_branch", [])
    return ctx.emit("If", ctx.inputs, {"then_branch": then, "else_branch": other}, len(ctx.output_names))


@converter("Loop", 1)
def convert_loop(ctx: ConvertContext) -> list[Value]:
    proto: onnx.GraphProto = ctx.attrs["body"]
    if len(proto.input) < 2:
        raise ctx.error("the body must take the iteration number and the condition")
    carried = ctx.inputs[2:]
    if any(v is None for v in carried):
        raise ctx.error("every loop-carried input must be given")
    types = [_flag_type(proto.input[0], DType.int64), _flag_type(proto.input[1], DType.bool)]
    types += [v.type for v in carried]
    if len(types) != len(proto.input):
        raise ctx.error(f"{len(carried)} loop-carried inputs, but the body takes {len(proto.input) - 2}")
    body = _carried_body(ctx, types, 2, 1, len(carried))
    return ctx.emit("Loop", ctx.inputs, {"body": body}, len(ctx.output_names))


@converter("Scan", 9)
def convert_scan(ctx: ConvertContext) -> list[Value]:
    m = ctx.attrs["num_scan_inputs"]
    if not 0 < m <= len(ctx.inputs):
        raise ctx.error(f"num_scan_inputs={m} must be between 1 and the input count")
    n = len(ctx.inputs) - m
    if any(v is None for v in ctx.inputs):
        raise ctx.error("every input must be given")
    types = [v.type for v in ctx.inputs]
    axes = ctx.attrs.get("scan_input_axes") or [0] * m
    for i, axis in enumerate(axes[:m]):
        t = types[n + i]
        if not -t.rank <= axis < t.rank:
            raise ctx.error(f"scan_input_axes[{i}]={axis} is out of range for {t}")
        dims = list(t.shape)
        del dims[axis % t.rank]
        types[n + i] = t.with_shape(dims)
    body = _carried_body(ctx, types, 0, 0, n)
    return ctx.emit("Scan", ctx.inputs, {**ctx.attrs, "body": body}, len(ctx.output_names))
