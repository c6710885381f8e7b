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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from aic.codegen.target import Target
from aic.ir.dtypes import DType
from aic.ir.graph import Graph, Value
from aic.ir.loop import Kernel, KernelCall, Load, Program, ProgramBuffer
from aic.ir.loop_printer import kernel_text

from .fusion import Group, fuse
from .lower import LOWERINGS
from .lower.core import LowerCtx, Param, linear, node_error, store
from .lower.kernel import lower_group
from .memory import ALIGN, Lifetime, align, plan_arena
from .schedule import default_schedule


@dataclass(eq=False)
class _Storage:
    """The bytes a value lives in; views share their base's storage."""

    buffer: ProgramBuffer | None = None  # arena slots get theirs when first used
    first: int = -1  # first and last kernel call touching it
    last: int = -1


def build_program(graph: Graph, target: Target | str | None = None) -> Program:
    """Lower a static-shaped graph to a loop-IR program for `target`."""
    _check_static(graph)
    builder = _Builder(graph, Target.parse(target))
    for group in fuse(graph):
        builder.add_group(group)
    builder.copy_outputs()
    return builder.finish()


def _check_static(graph: Graph) -> None:
    for node in graph.nodes:
        for v in [*node.inputs, *node.outputs]:
            if v is not None and not v.type.is_static:
                raise node_error(node, f"value {v.name} has symbolic shape {v.type}; bind the dims to sizes first")
    for v in [*graph.inputs, *graph.outputs]:
        if not v.type.is_static:
            raise ValueError(f"graph {v.name} has symbolic shape {v.type}; bind the dims to sizes first")


def is_view(v: Value) -> bool:
    p = v.producer
    return p is not None and LOWERINGS.get(p.op) is not None and LOWERINGS[p.op].kind == "alias"


def view_base(v: Value) -> Value:
    """The value whose bytes `v` is a view of (itself unless produced by a view op)."""
    while is_view(v) and v.producer.inputs[0] is not None:  # type: ignore[union-attr]
        v = v.producer.inputs[0]  # type: ignore[union-attr]
    return v


class _Builder:
    def __init__(self, graph: Graph, target: Target) -> None:
        self.graph = graph
        self.target = target
        self.lanes = target.lanes(4)
        self.storage: dict[int, _Storage] = {}
        self.weights: dict[int, ProgramBuffer] = {}
        self.kernels: dict[str, Kernel] = {}
        self.calls: list[KernelCall] = []
        self.groups: list[str] = []
        self.arena: list[_Storage] = []
        self.readers = {k: len(v) for k, v in graph.consumers().items()}
        self.inputs = [ProgramBuffer(v.name, v.type.dtype, v.type.static_shape, "input") for v in graph.inputs]
        for v, b in zip(graph.inputs, self.inputs):
            self.storage[id(v)] = _Storage(b)
        self.outputs: list[ProgramBuffer] = []
        self.copies: list[tuple[Value, ProgramBuffer]] = []
        for v in graph.outputs:
            out = ProgramBuffer(_unique(v.name, self.outputs), v.type.dtype, v.type.static_shape, "output")
            self.outputs.append(out)
            base = view_base(v)
            if base.producer is None or id(base) in self.storage:
                self.copies.append((v, out))  # a graph input, a constant, or bytes another output took
            else:
                self.storage[id(base)] = _Storage(out)

    def storage_of(self, v: Value) -> _Storage:
        base = view_base(v)
        st = self.storage.get(id(base))
        if st is None:
            if base.const is not None:
                st = _Storage(self._weight(base.name, base.const, id(base)))
            else:
                st = _Storage(ProgramBuffer(_ident(base.name), base.type.dtype, base.type.static_shape, "arena"))
                self.arena.append(st)
            self.storage[id(base)] = st
        return st

    def _weight(self, name: str, array: np.ndarray, key: int) -> ProgramBuffer:
        if key not in self.weights:
            array = np.ascontiguousarray(array)
            name = f"w{len(self.weights)}_{_ident(name)}"[:64]
            self.weights[key] = ProgramBuffer(name, DType.from_numpy(array.dtype), array.shape, "weight", data=array)
        return self.weights[key]

    # -- kernels
    def add_group(self, group: Group) -> None:
        if group.alias:
            return
        outs = {id(v) for v in self.graph.outputs}
        needed = [o for o in group.root.outputs if self.readers.get(id(o), 0) or id(o) in outs]
        if not needed:
            return
        name = f"k{len(self.calls)}_{_ident(group.describe().lower().replace('+', '_'))}"[:56]
        lowered = lower_group(group.nodes, group.anchor, needed, name, self.lanes)
        step = len(self.calls)
        storages = [self._bind(p, step) for p in lowered.params]
        kernel = default_schedule(lowered.kernel, self.target, lowered.hints)  # type: ignore[arg-type]
        self._call(kernel, storages, group.describe())

    def _bind(self, p: Param, step: int) -> _Storage:
        if p.kind == "weight":
            return _Storage(self._weight(p.buffer.name, p.value, id(p.value)))  # type: ignore[arg-type]
        if p.kind == "scratch":
            st = _Storage(ProgramBuffer(f"tmp{step}_{p.buffer.name}", p.buffer.dtype, (int(p.buffer.size),), "arena"))
            self.arena.append(st)
            return st
        return self.storage_of(p.value)  # type: ignore[arg-type]

    def _call(self, kernel: Kernel, storages: list[_Storage], describe: str) -> None:
        step = len(self.calls)
        for st in storages:
            st.first = step if st.first < 0 else st.first
            st.last = step
        head, _, body = kernel_text(kernel).partition("\n")
        key = re.sub(r"^kernel \S+?\(", "kernel (", head) + "\n" + body
        kernel = self.kernels.setdefault(key, kernel)
        self.calls.append(KernelCall(kernel, [st.buffer for st in storages]))  # type: ignore[misc]
        self.groups.append(describe)

    def copy_outputs(self) -> None:
        for v, out in self.copies:
            ctx = LowerCtx(self.lanes)
            n = int(np.prod(v.type.static_shape))
            src = ctx.param("value", v.type.dtype, n, v, "in")
            dst = ctx.param("value", v.type.dtype, n, None, "out")
            body = ctx.loops((n,), lambda i, s=src, d=dst, n=n: store(d, linear(i, (n,)), Load(s, i[0])))
            kernel = default_schedule(Kernel(f"k{len(self.calls)}_copy", [src, dst], body), self.target)
            self._call(kernel, [self.storage_of(v), _Storage(out)], f"copy to {out.name}")

    def finish(self) -> Program:
        lifetimes = [Lifetime(id(st), _nbytes(st.buffer), st.first, st.last) for st in self.arena]
        plan = plan_arena(lifetimes)
        for st in self.arena:
            st.buffer.offset = plan.offsets[id(st)]  # type: ignore[union-attr]
        used = {id(b) for call in self.calls for b in call.args}
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
