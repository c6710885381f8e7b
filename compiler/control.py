"""Control flow (If, Loop, Scan) lowered to program steps around compiled bodies.

Each body is fused and lowered like a graph (the stages of compiler/program.py, passed
in as `lower_body`) in a child scope (compiler/storage.py) that shares the program's
storages, weights, kernels and arena; its kernels run where the entry function branches
or loops (`IfStep`, `LoopStep`). Bodies read enclosing values in place.

- If: an IfStep on the condition's flag. Each branch writes its results straight into
  the If's output buffers (or copies them there), so both branches must give the same
  static shapes.
- Loop: a LoopStep. The node's output buffers hold the loop-carried state: the initial
  values are copied in before the loop, the body reads them as its inputs, and each
  iteration ends by copying the carried results back into the state (in an order that
  reads each state before it is overwritten; a cycle of values swapping places goes
  through a temporary) and the condition result into the flag. The body writes each scan
  slice straight into row i of its stacked output (a `RowView`, addressed from the
  counter at run time). The counter buffer is the body's iteration number. A condition
  that starts true and is passed through unchanged needs no flag.
- Scan: a LoopStep over the scan axis' static length. The body reads slice i (len-1-i
  when reversed) of each scanned input in place, and writes its stacked outputs in place,
  when the slice is contiguous (only dims of size 1 before the axis); a strided slice is
  copied in at the start of each iteration, or out at its end. States work as for Loop.

Shapes must be static: what a body computes, and every loop-carried value, must keep
one shape across iterations, and a Loop's scan outputs need a constant trip count with
a condition that stays true. Anything else is refused with an error naming the node.
Before lowering, compiler/control_static.py replaces an If on a constant condition by
its taken branch, and unrolls a short constant-count Loop whose shapes change per iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Graph, Node, Value
from aic.ir.loop import INDEX, Buffer, IfStep, Kernel, Load, LoopStep, RowView

from .lower.core import LowerCtx, idx, node_error, store
from .schedule import default_schedule
from .storage import ScopeBuilder, Storage, passes_through

BodyLowering = Callable[[ScopeBuilder], None]  # adds the steps of a body scope whose inputs and outputs are bound

CONTROL_OPS = frozenset({"If", "Loop", "Scan"})
_TRUE = np.ones(1, dtype=bool)  # the flag of a condition that is always true


# ---------------------------------------------------------------- static checks


def check_control(node: Node) -> None:
    """Raise a LoweringError naming `node` unless it compiles: static shapes that do not change
    between branches or iterations, in its bodies too (nested control flow included)."""
    if node.op == "If":
        then, other = node.attrs["then_branch"], node.attrs["else_branch"]
        for i, (a, b) in enumerate(zip(then.outputs, other.outputs)):
            if a.type != b.type:
                raise node_error(
                    node,
                    f"output {i} is {a.type} from then_branch but {b.type} from else_branch; a compiled If "
                    "needs one static shape from both branches",
                )
    elif node.op == "Loop":
        body = node.attrs["body"]
        carried = len(body.inputs) - 2
        for j in range(carried):
            _check_carried(node, j, [node.inputs[2 + j], body.inputs[2 + j], body.outputs[1 + j]])
        for k, out in enumerate(node.outputs[carried:]):
            if not out.type.is_static:
                raise node_error(
                    node,
                    f"scan output {k} ({out.name}) is {out.type}: the number of iterations is only known at "
                    "run time; compiled loops stack scan outputs only for a constant trip count and a condition "
                    "that stays true",
                )
    else:
        body = node.attrs["body"]
        states = len(node.inputs) - node.attrs["num_scan_inputs"]
        for j in range(states):
            _check_carried(node, j, [node.inputs[j], body.inputs[j], body.outputs[j]])
        for v in [*node.inputs, *node.outputs]:
            if v is not None and not v.type.is_static:
                raise node_error(node, f"value {v.name} has symbolic shape {v.type}; bind the dims to sizes first")
    for body in node.subgraphs():
        _check_body(node, body)


def _check_body(node: Node, body: Graph) -> None:
    for v in body.inputs:
        if not v.type.is_static:
            raise node_error(node, f"input {v.name} of its body {body.name} has symbolic shape {v.type}")
    for inner in body.nodes:
        if inner.op in CONTROL_OPS:
            check_control(inner)
        for v in inner.outputs:
            if not v.type.is_static:
                raise node_error(
                    node,
                    f"value {v.name} in its body {body.name} has shape {v.type}, not static: its size "
                    "changes between iterations or depends on the data",
                )


def _check_carried(node: Node, j: int, values: list[Value | None]) -> None:
    types = [v.type for v in values if v is not None]
    if any(not t.is_static or t != types[0] for t in types):
        shown = ", ".join(str(t) for t in types)
        name = values[1].name  # type: ignore[union-attr]
        raise node_error(
            node,
            f"loop-carried value {j} ({name}) changes type across iterations ({shown}); compiled loops need "
            "one static shape",
        )


# ---------------------------------------------------------------- lowering


def lower_control(b: ScopeBuilder, node: Node, lower_body: BodyLowering) -> None:
    """Add the steps of a control-flow node to `b`; `lower_body` lowers each body in its scope."""
    {"If": _lower_if, "Loop": _lower_loop, "Scan": _lower_scan}[node.op](b, node, lower_body)


def _lower_if(b: ScopeBuilder, node: Node, lower_body: BodyLowering) -> None:
    outs = [b.storage_of(o) for o in node.outputs]
    flag = b.storage_of(node.inputs[0])  # type: ignore[arg-type]
    flag.touch(b.tick())
    then = _branch(b, node.attrs["then_branch"], outs, lower_body)
    other = _branch(b, node.attrs["else_branch"], outs, lower_body)
    b.calls.append(IfStep(flag.buffer, then, other))  # type: ignore[arg-type]


def _branch(b: ScopeBuilder, graph: Graph, outs: list[Storage], lower_body: BodyLowering) -> list:
    inner = b.child(graph)
    inner.bind_outputs(graph.outputs, outs)
    lower_body(inner)
    return inner.calls


def _lower_loop(b: ScopeBuilder, node: Node, lower_body: BodyLowering) -> None:
    body: Graph = node.attrs["body"]
    carried = len(body.inputs) - 2
    trips_in, cond_in = (node.inputs[i] if i < len(node.inputs) else None for i in (0, 1))
    states = _states(b, node, [node.inputs[2 + j] for j in range(carried)], body.inputs[2:])
    counter = b.new_storage(f"{node.name}_i", DType.int64, (1,))
    flag: Storage | None = None
    starts_true = cond_in is None or (cond_in.const is not None and bool(cond_in.const.reshape(-1)[0]))
    if not (starts_true and passes_through(body.outputs[0], body.inputs[1])):
        flag = b.new_storage(f"{node.name}_cond", DType.bool, (1,))
        b.copy(b.constant("true", _TRUE) if cond_in is None else b.storage_of(cond_in), flag)
    trips: Storage | int | None = None
    if trips_in is not None:
        trips = int(trips_in.const.reshape(-1)[0]) if trips_in.const is not None else b.storage_of(trips_in)

    inner = b.child(body)
    inner.bind(body.inputs, [counter, flag or b.constant("true", _TRUE), *states])
    stacks = [b.storage_of(out) for out in node.outputs[carried:]]  # scan slices go straight to their row
    rows = [_row(st, counter, out.type.static_shape, 0, False) for st, out in zip(stacks, node.outputs[carried:])]
    inner.bind_outputs(body.outputs[1 + carried :], rows)
    head = b.tick()
    lower_body(inner)
    results = [(inner.storage_of(v), st) for v, st in zip(body.outputs[1:], states)]
    if flag is not None:
        results.append((inner.storage_of(body.outputs[0]), flag))
    _assign(inner, results)
    tail = b.tick()
    _finish_loop(b, inner, head, tail, [counter, flag, trips, *stacks])
    buf = trips.buffer if not isinstance(trips, (int, type(None))) else trips
    b.calls.append(LoopStep(counter.buffer, inner.calls, buf, flag.buffer if flag else None))  # type: ignore[arg-type]


def _lower_scan(b: ScopeBuilder, node: Node, lower_body: BodyLowering) -> None:
    body: Graph = node.attrs["body"]
    m = node.attrs["num_scan_inputs"]
    n = len(node.inputs) - m
    k = len(body.outputs) - n
    scanned = node.inputs[n:]
    ranks = [x.type.rank for x in scanned]  # type: ignore[union-attr]
    in_axes = [a % r for a, r in zip(node.attrs["scan_input_axes"] or [0] * m, ranks)]
    in_dirs = node.attrs["scan_input_directions"] or [0] * m
    out_axes = node.attrs["scan_output_axes"] or [0] * k
    out_dirs = node.attrs["scan_output_directions"] or [0] * k
    length = scanned[0].type.static_shape[in_axes[0]]  # type: ignore[union-attr]
    states = _states(b, node, node.inputs[:n], body.inputs[:n])
    counter = b.new_storage(f"{node.name}_i", DType.int64, (1,))

    inner = b.child(body)
    stacks = [b.storage_of(x) for x in [*scanned, *node.outputs[n:]]]  # type: ignore[misc]
    gathers, scatters = [], []  # scan slices that are strided, so copied per iteration
    pieces = []
    for x, st, axis, rev, v in zip(scanned, stacks, in_axes, in_dirs, body.inputs[n:]):
        piece = _row(st, counter, x.type.static_shape, axis, bool(rev))  # type: ignore[union-attr]
        if piece is None:
            piece = inner.new_storage(v.name, v.type.dtype, v.type.static_shape)
            gathers.append((st, piece, x.type.static_shape, axis, bool(rev)))  # type: ignore[union-attr]
        pieces.append(piece)
    inner.bind(body.inputs, [*states, *pieces])
    for j, (out, st) in enumerate(zip(node.outputs[n:], stacks[m:])):
        shape, axis, rev = out.type.static_shape, out_axes[j] % out.type.rank, bool(out_dirs[j])
        row = _row(st, counter, shape, axis, rev)
        if row is not None:
            inner.bind_outputs([body.outputs[n + j]], [row])
        else:
            scatters.append((body.outputs[n + j], st, shape, axis, rev))
    head = b.tick()
    for st, piece, shape, axis, rev in gathers:
        _slice_call(inner, st, counter, piece, shape, axis, rev, into_stack=False)
    lower_body(inner)
    for v, st, shape, axis, rev in scatters:
        _slice_call(inner, inner.storage_of(v), counter, st, shape, axis, rev, into_stack=True)
    _assign(inner, [(inner.storage_of(v), st) for v, st in zip(body.outputs[:n], states)])
    tail = b.tick()
    _finish_loop(b, inner, head, tail, [counter, *stacks])
    b.calls.append(LoopStep(counter.buffer, inner.calls, length))  # type: ignore[arg-type]


def _states(b: ScopeBuilder, node: Node, initial: list[Value | None], body_inputs: list[Value]) -> list[Storage]:
    """The loop-carried state: the node's final-value output buffers, holding the initial values."""
    states = []
    for j, (init, v) in enumerate(zip(initial, body_inputs)):
        if j < len(node.outputs):
            st = b.storage_of(node.outputs[j])
        else:
            st = b.new_storage(v.name, v.type.dtype, v.type.static_shape)
        assert init is not None
        b.copy(b.storage_of(init), st)
        states.append(st)
    return states


def _row(stack: Storage, counter: Storage, shape: tuple[int, ...], axis: int, reverse: bool) -> Storage | None:
    """Slice `counter` along `axis` of a stack of `shape` addressed in place, when it is contiguous
    (no dims before the axis but ones); else None."""
    if any(d != 1 for d in shape[:axis]):
        return None
    base = stack.buffer
    assert base is not None and counter.buffer is not None
    piece = tuple(d for i, d in enumerate(shape) if i != axis)
    name = f"{base.name}_row"
    return Storage(
        RowView(name, base.dtype, piece, "row", base=base, counter=counter.buffer, length=shape[axis], reverse=reverse)
    )


def _assign(b: ScopeBuilder, pairs: list[tuple[Storage, Storage]]) -> None:
    """Copy each source to its destination as if all at once: a destination is overwritten only
    after the copies reading it; in a cycle (values swapping places), one is saved to a temporary."""
    pending = [(src, dst) for src, dst in pairs if src is not dst]
    while pending:
        ready = next((p for p in pending if not any(q[0] is p[1] for q in pending if q is not p)), None)
        if ready is None:
            saved = pending[0][1]
            temp = b.new_storage(f"{saved.buffer.name}_old", saved.buffer.dtype, saved.buffer.shape)  # type: ignore[union-attr]
            b.copy(saved, temp)
            pending = [(temp if src is saved else src, dst) for src, dst in pending]
            continue
        b.copy(*ready)
        pending = [p for p in pending if p is not ready]


def _finish_loop(b: ScopeBuilder, inner: ScopeBuilder, head: int, tail: int, read: list) -> None:
    """Liveness of a loop over steps head..tail: the buffers its header reads, and everything the
    body touches that it does not own, stay alive for the whole loop."""
    for st in read:
        if st is not None and not isinstance(st, int):
            st.touch(head)
            st.touch(tail)
    b.hold(inner, head, tail)


def _slice_call(
    b: ScopeBuilder,
    src: Storage,
    counter: Storage,
    dst: Storage,
    shape: tuple[int, ...],
    axis: int,
    reverse: bool,
    into_stack: bool,
) -> None:
    """Copy slice i (the counter's value; length-1-i when `reverse`) along `axis` of a stacked
    tensor of `shape` out of it (`into_stack` False: src is the stack) or into it (dst is)."""
    dtype = src.buffer.dtype  # type: ignore[union-attr]
    outer, length = int(np.prod(shape[:axis], dtype=np.int64)), shape[axis]
    inner = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    ctx = LowerCtx(b.lanes)
    names = ("piece", "i", "stack") if into_stack else ("stack", "i", "piece")
    params: dict[str, Buffer] = {}
    for name in names:
        size = 1 if name == "i" else outer * inner * (length if name == "stack" else 1)
        params[name] = ctx.param("value", INDEX if name == "i" else dtype, size, None, name)
    with ctx.scope() as top:
        t = Load(params["i"], idx(0))
        pos = ctx.let(idx(length - 1) - t if reverse else t, "pos")

        def move(index: list) -> object:
            o, e = index
            at_stack = (o * idx(length) + pos) * idx(inner) + e
            at_piece = o * idx(inner) + e
            if into_stack:
                return store(params["stack"], at_stack, Load(params["piece"], at_piece))
            return store(params["piece"], at_piece, Load(params["stack"], at_stack))

        body = top.wrap(ctx.loops((outer, inner), move))  # type: ignore[arg-type]
    kernel = Kernel(b.table.name("stack" if into_stack else "slice"), [params[n] for n in names], body)
    b.call(default_schedule(kernel, b.target), [src, counter, dst], f"{'stack' if into_stack else 'slice'} {axis}")
