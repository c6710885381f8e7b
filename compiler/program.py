"""Building the loop-IR `Program` of a graph: fuse, lower, schedule, plan memory.

`build_program(graph, target)` expects static shapes and a graph already optimised by
the graph passes. Steps:

1. fuse nodes into groups (compiler/fusion.py);
2. give every value a storage: graph inputs, weights, graph outputs, arena slots; a view
   (Reshape, Squeeze, ...) shares the storage of the value it views, and a kernel whose
   result is (a view of) a graph output writes straight into the output buffer;
3. lower each group to a kernel and apply its default schedule; identical kernels are
   kept once and called with different buffers;
4. add copy kernels for graph outputs that are graph inputs, constants, or repeated;
5. plan the arena by liveness, and lay weights out in one blob (64-byte aligned).

Data-dependent output sizes (NonZero, Unique, ...: compiler/lower/dynamic.py) get buffers
of a static upper bound; their kernels store the actual sizes in arena slots that live
until the run ends, and each output records where its sizes are (`ProgramBuffer.dynamic`).
Run-time index checks share one error slot, alive for the whole run
(`attrs["error_slot"]`, its byte offset; `attrs["error_sites"]`, the text of each check).

If, Loop and Scan nodes become program steps (compiler/control.py): their bodies are
built by child builders that share this one's storages, weights, kernels and arena, with
one step clock, so that liveness is measured in one program order. A body's own
intermediates live as usual; anything else a loop body touches is held for the whole loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from aic.codegen.target import Target
from aic.ir.dtypes import DType
from aic.ir.graph import Graph, Value
from aic.ir.loop import Kernel, KernelCall, Load, Program, ProgramBuffer, Step, step_buffers
from aic.ir.loop_printer import kernel_text

from .control import check_control, lower_control
from .control_static import resolve_static_control
from .fusion import Group, fuse
from .lower import LOWERINGS
from .lower.core import LowerCtx, Param, linear, node_error, store
from .lower.dynamic import bounded_shape, check_bounded, dynamic_bounds, lower_dynamic
from .lower.kernel import lower_group
from .lower.table import lowering_of
from .memory import ALIGN, Lifetime, align, plan_arena
from .schedule import default_schedule


@dataclass(eq=False)
class _Storage:
    """The bytes a value lives in; views share their base's storage."""

    buffer: ProgramBuffer | None = None  # arena slots get theirs when first used
    first: int = -1  # first and last step touching it
    last: int = -1
    owner: _Builder | None = None  # the scope whose arena slot it is

    def touch(self, step: int) -> None:
        self.first = step if self.first < 0 else min(self.first, step)
        self.last = max(self.last, step)


def build_program(graph: Graph, target: Target | str | None = None) -> Program:
    """Lower a static-shaped graph to a loop-IR program for `target`."""
    graph = resolve_static_control(graph)  # Ifs on constants, short loops of changing shapes
    bounds = dynamic_bounds(graph)  # data-dependent dims -> the upper bounds their buffers get
    check_bounded(graph, bounds)
    _check_static(graph, bounds)
    builder = _Builder(graph, Target.parse(target), bounds=bounds)
    builder.lower_nodes()
    return builder.finish()


def _check_static(graph: Graph, bounds: dict[str, int]) -> None:
    for node in graph.nodes:
        if LOWERINGS.get(node.op) is not None and LOWERINGS[node.op].kind == "control":
            check_control(node)
        for v in [*node.inputs, *node.outputs]:
            if v is not None and not all(isinstance(d, int) or d in bounds for d in v.type.shape):
                raise node_error(node, f"value {v.name} has symbolic shape {v.type}; bind the dims to sizes first")
    for v in [*graph.inputs, *graph.outputs]:
        if not all(isinstance(d, int) or d in bounds for d in v.type.shape):
            raise ValueError(f"graph {v.name} has symbolic shape {v.type}; bind the dims to sizes first")


def is_view(v: Value) -> bool:
    p = v.producer
    return p is not None and LOWERINGS.get(p.op) is not None and LOWERINGS[p.op].kind == "alias"


def view_base(v: Value) -> Value:
    """The value whose bytes `v` is a view of (itself unless produced by a view op)."""
    while is_view(v) and v.producer.inputs[0] is not None:  # type: ignore[union-attr]
        v = v.producer.inputs[0]  # type: ignore[union-attr]
    return v


@dataclass
class _ErrorSlot:
    """Where kernels record a bad index (compiler/lower/checks.py), and the text of each check."""

    storage: _Storage | None = None
    sites: list[str] = field(default_factory=list)


class _Builder:
    """Builds the steps of one graph scope: the model's graph, or (with a `parent`) a body."""

    def __init__(
        self, graph: Graph, target: Target, parent: _Builder | None = None, bounds: dict[str, int] | None = None
    ) -> None:
        self.graph = graph
        self.target = target
        self.parent = parent
        self.lanes = target.lanes(4)
        self.calls: list[Step] = []
        self.readers = {k: len(v) for k, v in graph.consumers().items()}
        self.local = {id(o) for n in graph.nodes for o in n.outputs}  # values this scope computes
        self.copies: list[tuple[Value, _Storage]] = []
        self.sizes: list[tuple[_Storage, tuple[str, ...]]] = parent.sizes if parent else []  # data-dependent dims
        self.errors: _ErrorSlot = parent.errors if parent else _ErrorSlot()  # kernels' run-time checks
        if parent is not None:  # one program: storages, weights, kernels, arena and clock are shared
            self.storage, self.weights, self.kernels = parent.storage, parent.weights, parent.kernels
            self.groups, self.arena, self.clock = parent.groups, parent.arena, parent.clock
            return
        self.storage: dict[int, _Storage] = {}
        self.weights: dict[int, ProgramBuffer] = {}
        self.kernels: dict[str, Kernel] = {}
        self.groups: list[str] = []
        self.arena: list[_Storage] = []
        self.clock = [0]  # the next step's number, in program order across all scopes
        self.inputs = [ProgramBuffer(v.name, v.type.dtype, v.type.static_shape, "input") for v in graph.inputs]
        self.bind(graph.inputs, [_Storage(b) for b in self.inputs])
        self.outputs: list[ProgramBuffer] = []
        for v in graph.outputs:
            name = _unique(v.name, self.outputs)
            self.outputs.append(ProgramBuffer(name, v.type.dtype, bounded_shape(v, bounds or {}), "output"))
        self.bind_outputs(graph.outputs, [_Storage(b) for b in self.outputs])

    # -- storages
    def bind(self, values: list[Value], storages: list[_Storage]) -> None:
        """Place values (graph or body inputs) in given storages."""
        for v, st in zip(values, storages):
            self.storage[id(v)] = st

    def bind_outputs(self, values: list[Value], storages: list[_Storage]) -> None:
        """Make this scope's results land in `storages`: the kernel computing a value writes there
        directly; a value computed elsewhere (an input, a constant, an enclosing scope's value) or
        whose bytes another output took is copied there at the end (`copy_outputs`)."""
        for v, st in zip(values, storages):
            base = view_base(v)
            if id(base) not in self.local or id(base) in self.storage:
                self.copies.append((v, st))
            else:
                self.storage[id(base)] = st

    def storage_of(self, v: Value) -> _Storage:
        base = view_base(v)
        st = self.storage.get(id(base))
        if st is None:
            if base.const is not None:
                st = _Storage(self._weight(base.name, base.const, id(base)))
            else:
                owner = self  # the scope computing the value owns its slot
                while owner.parent is not None and id(base) not in owner.local:
                    owner = owner.parent
                st = owner.new_storage(base.name, base.type.dtype, base.type.static_shape)
            self.storage[id(base)] = st
        return st

    def constant(self, name: str, array: np.ndarray) -> _Storage:
        """A weight holding `array` (kept once per array object)."""
        return _Storage(self._weight(name, array, id(array)))

    def new_storage(self, name: str, dtype: DType, shape: tuple[int, ...]) -> _Storage:
        """A fresh arena slot owned by this scope."""
        st = _Storage(ProgramBuffer(_ident(name), dtype, shape, "arena"), owner=self)
        self.arena.append(st)
        return st

    def child(self, body: Graph) -> _Builder:
        return _Builder(body, self.target, self)

    def owns(self, st: _Storage) -> bool:
        """Whether `st` is an arena slot of this scope or of a scope nested in it."""
        owner = st.owner
        while owner is not None and owner is not self:
            owner = owner.parent
        return owner is self

    def hold(self, body: _Builder, start: int, end: int) -> None:
        """Keep every slot that steps `start`..`end` (a loop) touch and that `body` does not own
        alive over the whole loop: later iterations read or write it again."""
        for st in self.arena:
            if 0 <= st.first <= end and st.last >= start and not body.owns(st):
                st.touch(start)
                st.touch(end)

    def tick(self) -> int:
        """The number of the next step."""
        self.clock[0] += 1
        return self.clock[0] - 1

    def _weight(self, name: str, array: np.ndarray, key: int) -> ProgramBuffer:
        if key not in self.weights:
            array = np.ascontiguousarray(array)
            name = f"w{len(self.weights)}_{_ident(name)}"[:64]
            self.weights[key] = ProgramBuffer(name, DType.from_numpy(array.dtype), array.shape, "weight", data=array)
        return self.weights[key]

    # -- kernels
    def lower_nodes(self) -> None:
        """Fuse this scope's graph and add its steps, then the copies to its outputs."""
        for group in fuse(self.graph):
            self.add_group(group)
        self.copy_outputs()

    def add_group(self, group: Group) -> None:
        if group.alias:
            return
        if group.control:
            lower_control(self, group.root)
            return
        outs = {id(v) for v in self.graph.outputs}
        needed = [o for o in group.root.outputs if self.readers.get(id(o), 0) or id(o) in outs]
        if not needed:
            return
        step = self.clock[0]
        name = f"k{step}_{_ident(group.describe().lower().replace('+', '_'))}"[:56]
        if group.anchor is not None and lowering_of(group.anchor).dynamic is not None:  # serial, unscheduled
            lowered = lower_dynamic(group.anchor, needed, name)
            self.call(lowered.kernel, [self._bind(p, step) for p in lowered.params], group.describe())
            return
        lowered = lower_group(group.nodes, group.anchor, needed, name, self.lanes, len(self.errors.sites))
        self.errors.sites.extend(lowered.sites)
        storages = [self._bind(p, step) for p in lowered.params]
        kernel = default_schedule(lowered.kernel, self.target, lowered.hints)  # type: ignore[arg-type]
        self.call(kernel, storages, group.describe())

    def _bind(self, p: Param, step: int) -> _Storage:
        if p.kind == "weight":
            return _Storage(self._weight(p.buffer.name, p.value, id(p.value)))  # type: ignore[arg-type]
        if p.kind == "scratch":
            return self.new_storage(f"tmp{step}_{p.buffer.name}", p.buffer.dtype, (int(p.buffer.size),))
        if p.kind == "errors":  # one slot for the whole program, read after the run
            if self.errors.storage is None:
                self.errors.storage = self.new_storage("errors", p.buffer.dtype, (int(p.buffer.size),))
            return self.errors.storage
        if p.kind == "sizes":  # where a kernel stores data-dependent sizes, read after the run
            self.sizes.append((self.new_storage(f"sizes{step}", p.buffer.dtype, (int(p.buffer.size),)), p.value))
            return self.sizes[-1][0]
        return self.storage_of(p.value)  # type: ignore[arg-type]

    def call(self, kernel: Kernel, storages: list[_Storage], describe: str) -> None:
        """Add a call of `kernel` (scheduled) over the buffers of `storages`."""
        step = self.tick()
        for st in storages:
            st.touch(step)
        head, _, body = kernel_text(kernel).partition("\n")
        key = re.sub(r"^kernel \S+?\(", "kernel (", head) + "\n" + body
        kernel = self.kernels.setdefault(key, kernel)
        self.calls.append(KernelCall(kernel, [st.buffer for st in storages]))  # type: ignore[misc]
        self.groups.append(describe)

    def copy_outputs(self) -> None:
        for v, out in self.copies:
            self.copy(self.storage_of(v), out)

    def copy(self, src: _Storage, dst: _Storage) -> None:
        """Add a kernel copying the bytes of `src` to `dst` (same element type and count)."""
        assert src.buffer is not None and dst.buffer is not None
        dtype, n = dst.buffer.dtype, int(np.prod(dst.buffer.shape, dtype=np.int64))
        ctx = LowerCtx(self.lanes)
        a = ctx.param("value", dtype, n, None, "in")
        b = ctx.param("value", dtype, n, None, "out")
        body = ctx.loops((n,), lambda i: store(b, linear(i, (n,)), Load(a, i[0])))
        kernel = default_schedule(Kernel(f"k{self.clock[0]}_copy", [a, b], body), self.target)
        self.call(kernel, [src, dst], f"copy to {dst.buffer.name}")

    def finish(self) -> Program:
        for st, _ in self.sizes:
            st.touch(self.clock[0] - 1)  # alive until the run ends
        if self.errors.storage is not None:  # cleared before the run, read after it
            self.errors.storage.touch(0)
            self.errors.storage.touch(self.clock[0] - 1)
        lifetimes = [Lifetime(id(st), _nbytes(st.buffer), st.first, st.last) for st in self.arena]
        plan = plan_arena(lifetimes)
        for st in self.arena:
            st.buffer.offset = plan.offsets[id(st)]  # type: ignore[union-attr]
        where = {s: st.buffer.offset + 8 * i for st, symbols in self.sizes for i, s in enumerate(symbols)}  # type: ignore[union-attr]
        for v, out in zip(self.graph.outputs, self.outputs):
            out.dynamic = {d: (s, where[s]) for d, s in enumerate(v.type.shape) if isinstance(s, str)}
        used = {id(b) for b in step_buffers(self.calls)}
        weights = [w for w in self.weights.values() if id(w) in used]
        offset = 0
        for w in weights:
            w.offset = offset
            offset = align(offset + _nbytes(w), ALIGN)
        attrs = {
            "arena_peak_bytes": plan.peak_bytes,
            "arena_unshared_bytes": plan.total_bytes,
            "memory_report": plan.report(),
            "weight_bytes": offset,
            "groups": self.groups,
            "error_slot": self.errors.storage.buffer.offset if self.errors.storage else -1,  # type: ignore[union-attr]
            "error_sites": self.errors.sites,
        }
        kernels = list(self.kernels.values())
        name = _ident(self.graph.name or "model")
        return Program(name, kernels, self.calls, self.inputs, self.outputs, weights, plan.peak_bytes, attrs)


def _nbytes(b: ProgramBuffer | None) -> int:
    assert b is not None
    return int(np.prod(b.shape, dtype=np.int64)) * b.dtype.itemsize


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name) or "v"


def _unique(name: str, taken: list[ProgramBuffer]) -> str:
    names = {b.name for b in taken}
    out, n = name, 0
    while out in names:
        n += 1
        out = f"{name}_{n}"
    return out
