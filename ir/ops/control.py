"""Control flow: If, Loop, Scan (ONNX semantics).

Their bodies are `Graph`s in attributes; a body may read values of enclosing
graphs. The reference semantics run the bodies through the interpreter, which
hands the enclosing values in as ``attrs["__env__"]`` (id(Value) -> array).
Dims that differ between branches or iterations become fresh symbols.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import Dim, dim_add, dim_mul
from ..dtypes import DType
from ..graph import Graph
from ..types import TensorType
from .common import norm_axis
from .registry import Attr, InferContext, OpDef, get_op, register


def graph_flops(graph: Graph) -> Dim:
    """FLOPs of one run of `graph`: the sum over its nodes (ops without a count add 0)."""
    total: Dim = 0
    for node in graph.nodes:
        op = get_op(node.op)
        if op.flops is not None:
            outs = [v.type for v in node.outputs]
            total = dim_add(total, op.flops(node.input_types(), outs, node.attrs))
    return total


def _run(body: Graph, feeds: dict[str, np.ndarray], attrs: dict[str, Any]) -> list[np.ndarray]:
    from ..interpreter import run_graph  # the interpreter imports the op table

    return run_graph(body, feeds, attrs["__env__"])


def _join(ctx: InferContext, what: str, *types: TensorType) -> TensorType:
    """One type for values that may differ per branch or iteration: same dtype
    and rank; dims that differ become fresh symbols."""
    first = types[0]
    for t in types[1:]:
        if t.dtype != first.dtype:
            raise ctx.error(f"{what}: element types differ ({first.dtype.name} vs {t.dtype.name})")
        if t.rank != first.rank:
            raise ctx.error(f"{what}: ranks differ ({first} vs {t})")
    dims = [d if all(t.shape[i] == d for t in types) else ctx.fresh() for i, d in enumerate(first.shape)]
    return first.with_shape(dims)


def _check_flag(ctx: InferContext, i: int, dtype: DType, what: str) -> None:
    t = ctx.input(i)
    if t.dtype != dtype or any(d != 1 for d in t.shape):
        raise ctx.error(f"{what} must be a single {dtype.name} element, got {t}")


# If -----------------------------------------------------------------------


def _if_infer(ctx: InferContext) -> list[TensorType]:
    _check_flag(ctx, 0, DType.bool, "the condition")
    then, other = ctx.attrs["then_branch"], ctx.attrs["else_branch"]
    if len(then.outputs) != len(other.outputs) or len(then.outputs) < ctx.num_outputs:
        raise ctx.error(
            f"branches give {len(then.outputs)} and {len(other.outputs)} outputs; the node has {ctx.num_outputs}"
        )
    return [
        _join(ctx, f"output {i} of the branches", a.type, b.type)
        for i, (a, b) in enumerate(zip(then.outputs, other.outputs))
    ]


def _if_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    branch = attrs["then_branch"] if bool(np.asarray(inputs[0]).reshape(-1)[0]) else attrs["else_branch"]
    return _run(branch, {}, attrs)


def _if_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    a, b = graph_flops(attrs["then_branch"]), graph_flops(attrs["else_branch"])
    return max(a, b) if isinstance(a, int) and isinstance(b, int) else a


register(
    OpDef(
        "If",
        _if_infer,
        _if_reference,
        attrs={"then_branch": Attr("graph"), "else_branch": Attr("graph")},
        inputs=(1, 1),
        outputs=(1, -1),
        kind="control",
        flops=_if_flops,
        doc="Runs then_branch or else_branch; outputs that differ between them get fresh dims.",
    )
)


# Loop ---------------------------------------------------------------------


def _loop_counts(body: Graph) -> tuple[int, int]:
    """(loop-carried values, scan outputs) of a Loop body."""
    return len(body.inputs) - 2, len(body.outputs) - len(body.inputs) + 1


def _loop_length(ctx: InferContext, body: Graph) -> Dim:
    """Iteration count: the trip count when it is a constant and the condition
    stays true (absent or constant, and passed through by the body)."""
    trips = ctx.values(0)
    cond_out = body.outputs[0]
    while cond_out.producer is not None and cond_out.producer.op == "Identity" and cond_out.producer.inputs[0]:
        cond_out = cond_out.producer.inputs[0]  # the usual spelling: cond_out = Identity(cond_in)
    cond_kept = cond_out is body.inputs[1] or (cond_out.const is not None and bool(cond_out.const.reshape(-1)[0]))
    cond_in = ctx.values(1) if ctx.has(1) else [1]
    if trips is not None and cond_kept and cond_in == [1]:
        return max(trips[0], 0) if isinstance(trips[0], int) else trips[0]
    return ctx.fresh("iters")


def _loop_infer(ctx: InferContext) -> list[TensorType]:
    body: Graph = ctx.attrs["body"]
    carried, scans = _loop_counts(body)
    if carried < 0 or scans < 0:
        raise ctx.error(
            f"body takes {len(body.inputs)} inputs and gives {len(body.outputs)} outputs; expected 2+N and 1+N+K"
        )
    if len(ctx.types) > 2 + carried:
        raise ctx.error(f"{len(ctx.types) - 2} loop-carried inputs, but the body carries {carried}")
    if ctx.has(0):
        _check_flag(ctx, 0, DType.int64, "the trip count")
    if ctx.has(1):
        _check_flag(ctx, 1, DType.bool, "the condition")
    if body.outputs[0].type.dtype != DType.bool:
        raise ctx.error(f"the body's condition output is {body.outputs[0].type}, expected bool")
    types = []
    for j in range(carried):
        init = ctx.input(2 + j)
        types.append(_join(ctx, f"loop-carried value {j}", init, body.inputs[2 + j].type, body.outputs[1 + j].type))
    length = _loop_length(ctx, body) if scans else 0
    types += [t.type.with_shape((length, *t.type.shape)) for t in body.outputs[1 + carried :]]
    return types


def _flag(value: bool, type: TensorType) -> np.ndarray:
    return np.full(type.shape, value, dtype=type.dtype.numpy)


def _empty(type: TensorType) -> np.ndarray:
    return np.zeros([d if isinstance(d, int) else 0 for d in type.shape], dtype=type.dtype.numpy)


def _loop_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    body: Graph = attrs["body"]
    carried, scans = _loop_counts(body)
    inputs = inputs + [None] * (2 + carried - len(inputs))
    trips = None if inputs[0] is None else int(np.asarray(inputs[0]).reshape(-1)[0])
    cond = True if inputs[1] is None else bool(np.asarray(inputs[1]).reshape(-1)[0])
    state = inputs[2:]
    collected: list[list[np.ndarray]] = [[] for _ in range(scans)]
    i = 0
    while cond and (trips is None or i < trips):
        feeds = {
            body.inputs[0].name: _flag(i, body.inputs[0].type),
            body.inputs[1].name: _flag(cond, body.inputs[1].type),
        }
        feeds.update((v.name, s) for v, s in zip(body.inputs[2:], state))
        outs = _run(body, feeds, attrs)
        cond = bool(outs[0].reshape(-1)[0])
        state = outs[1 : 1 + carried]
        for acc, out in zip(collected, outs[1 + carried :]):
            acc.append(out)
        i += 1
    stacked = [
        np.stack(acc) if acc else _empty(v.type.with_shape((0, *v.type.shape)))
        for acc, v in zip(collected, body.outputs[1 + carried :])
    ]
    return [*state, *stacked]


def _loop_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    body: Graph = attrs["body"]
    carried, scans = _loop_counts(body)
    length = outs[carried].shape[0] if scans else "loop_iterations"
    return dim_mul(graph_flops(body), length)


register(
    OpDef(
        "Loop",
        _loop_infer,
        _loop_reference,
        attrs={"body": Attr("graph")},
        inputs=(0, -1),
        outputs=(0, -1),
        dtypes=None,
        kind="control",
        flops=_loop_flops,
        doc="Inputs (trip count M, condition, N carried values); body (i, cond, N values) -> (cond, N values, K scan "
        "slices); outputs: N final values, K stacked scans. Runs while i < M and cond.",
    )
)


# Scan ---------------------------------------------------------------------


def _scan_axes(ctx: InferContext, name: str, count: int, ranks: list[int]) -> list[int]:
    axes = list(ctx.attrs[name]) or [0] * count
    if len(axes) != count:
        raise ctx.error(f"{name} has {len(axes)} entries, expected {count}")
    return [norm_axis(ctx, a, r) for a, r in zip(axes, ranks)]


def _scan_directions(ctx: InferContext, name: str, count: int) -> list[int]:
    directions = list(ctx.attrs[name]) or [0] * count
    if len(directions) != count or any(d not in (0, 1) for d in directions):
        raise ctx.error(f"{name} must hold {count} entries of 0 or 1, got {directions}")
    return directions


def _scan_infer(ctx: InferContext) -> list[TensorType]:
    body: Graph = ctx.attrs["body"]
    m = ctx.attrs["num_scan_inputs"]
    n = len(ctx.types) - m
    k = len(body.outputs) - n
    if m < 1 or n < 0 or len(body.inputs) != n + m or k < 0:
        raise ctx.error(
            f"{len(ctx.types)} inputs with num_scan_inputs={m} do not fit a body of "
            f"{len(body.inputs)} inputs and {len(body.outputs)} outputs"
        )
    scanned = [ctx.input(n + i) for i in range(m)]
    in_axes = _scan_axes(ctx, "scan_input_axes", m, [t.rank for t in scanned])
    _scan_directions(ctx, "scan_input_directions", m)
    _scan_directions(ctx, "scan_output_directions", k)
    lengths = [t.shape[a] for t, a in zip(scanned, in_axes)]
    length = next((d for d in lengths if isinstance(d, int)), lengths[0])
    if any(isinstance(d, int) and d != length for d in lengths):
        raise ctx.error(f"scan inputs have different lengths {lengths}")
    types = [_join(ctx, f"state {j}", ctx.input(j), body.inputs[j].type, body.outputs[j].type) for j in range(n)]
    slices = [body.outputs[n + i].type for i in range(k)]
    out_axes = _scan_axes(ctx, "scan_output_axes", k, [t.rank + 1 for t in slices])
    for t, axis in zip(slices, out_axes):
        types.append(t.with_shape((*t.shape[:axis], length, *t.shape[axis:])))
    return types


def _scan_reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    body: Graph = attrs["body"]
    m = attrs["num_scan_inputs"]
    n = len(inputs) - m
    k = len(body.outputs) - n
    scanned = inputs[n:]
    in_axes = [a % x.ndim for a, x in zip(attrs["scan_input_axes"] or [0] * m, scanned)]
    in_dirs = attrs["scan_input_directions"] or [0] * m
    out_dirs = attrs["scan_output_directions"] or [0] * k
    length = scanned[0].shape[in_axes[0]]
    state = inputs[:n]
    collected: list[list[np.ndarray]] = [[] for _ in range(k)]
    for t in range(length):
        feeds = {v.name: s for v, s in zip(body.inputs, state)}
        for v, x, axis, rev in zip(body.inputs[n:], scanned, in_axes, in_dirs):
            feeds[v.name] = np.take(x, length - 1 - t if rev else t, axis=axis)
        outs = _run(body, feeds, attrs)
        state = outs[:n]
        for acc, out in zip(collected, outs[n:]):
            acc.append(out)
    results = list(state)
    for acc, v, rev, axis in zip(collected, body.outputs[n:], out_dirs, attrs["scan_output_axes"] or [0] * k):
        if not acc:
            results.append(_empty(v.type.with_shape((0, *v.type.shape))))
            continue
        stacked = np.stack(acc[::-1] if rev else acc, axis=axis % (acc[0].ndim + 1))
        results.append(stacked)
    return results


def _scan_flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    m = attrs["num_scan_inputs"]
    first = ins[len(ins) - m]
    assert first is not None
    axis = (list(attrs["scan_input_axes"]) or [0])[0] % first.rank
    return dim_mul(graph_flops(attrs["body"]), first.shape[axis])


register(
    OpDef(
        "Scan",
        _scan_infer,
        _scan_reference,
        attrs={
            "body": Attr("graph"),
            "num_scan_inputs": Attr("int"),
            "scan_input_axes": Attr("ints", []),
            "scan_input_directions": Attr("ints", []),
            "scan_output_axes": Attr("ints", []),
            "scan_output_directions": Attr("ints", []),
        },
        inputs=(1, -1),
        outputs=(1, -1),
        kind="control",
        flops=_scan_flops,
        doc="Inputs (N initial states, M scanned tensors); body (N states, M slices) -> (N states, K slices); "
        "outputs: N final states, K stacked slices. Opset 9+ form (no batch axis).",
    )
)
