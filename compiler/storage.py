"""Storage assignment: which bytes every value of a graph scope lives in, and the steps that use them.

A `ScopeBuilder` holds the steps of one graph scope (the model's graph, or a body of
If/Loop/Scan) and the `Storage` of each value: graph inputs, weights, graph outputs,
arena slots. A view (Reshape, Squeeze, ...) shares the storage of the value it views,
and a kernel whose result is (a view of) a graph output writes straight into the
output buffer. Every step gets a number from one clock shared by all scopes, and each
storage records the first and last step touching it: its lifetime for the arena plan.

Body scopes (`child`) share the program's storages, weights, kernel table, arena and
clock with their parent, so that liveness is measured in one program order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aic.codegen.target import Target
from aic.ir.dtypes import DType
from aic.ir.graph import Graph, Value
from aic.ir.loop import Kernel, KernelCall, Load, ProgramBuffer, Step
from aic.ir.loop_tools import structural_key
from aic.ir.schedule import Record

from .lower.core import LowerCtx, Param, linear, store
from .lower.sizes import Size, bound, current_symbols, shape_of, size_prod
from .lower.symbols import bind_symbols
from .lower.table import LOWERINGS
from .schedule import default_schedule


@dataclass(eq=False)
class Storage:
    """The bytes a value lives in; views share their base's storage."""

    buffer: ProgramBuffer | None = None  # arena slots get theirs when first used
    first: int = -1  # first and last step touching it
    last: int = -1
    owner: ScopeBuilder | None = None  # the scope whose arena slot it is
    within: Storage | None = None  # a slab of that arena slot's bytes (compiler/placement.py), from byte `at`
    at: int = 0

    def touch(self, step: int) -> None:
        self.first = step if self.first < 0 else min(self.first, step)
        self.last = max(self.last, step)
        if self.within is not None:  # the enclosing buffer lives while any of its slabs does
            self.within.touch(step)


@dataclass
class KernelTable:
    """The program's kernels, each kept once: a kernel structurally equal to one already
    added (same parameters, same loop IR up to the names of its variables) is replaced by it."""

    schedules: Mapping[str, Sequence[Record]] = field(default_factory=dict)  # given from outside, by kernel name
    by_key: dict[tuple, Kernel] = field(default_factory=dict)
    kept: set[int] = field(default_factory=set)  # ids of the kernels in the table
    count: int = 0  # kernels named so far (names are k<count>_<what>)
    names: set[str] = field(default_factory=set)
    error_sites: list[str] = field(default_factory=list)  # the text of every run-time check, numbered program-wide

    def name(self, what: str) -> str:
        """A fresh kernel name describing `what`."""
        self.count += 1
        name = f"k{self.count - 1}_{ident(what.lower().replace('+', '_'))}"[:56]
        self.names.add(name)
        return name

    def add(self, kernel: Kernel) -> Kernel:
        """`kernel`, or the structurally equal kernel added before it."""
        if id(kernel) in self.kept:
            return kernel
        kept = self.by_key.setdefault(structural_key(kernel), kernel)
        self.kept.add(id(kept))
        return kept

    @property
    def kernels(self) -> list[Kernel]:
        return list(self.by_key.values())


def is_view(v: Value) -> bool:
    p = v.producer
    return p is not None and LOWERINGS.get(p.op) is not None and LOWERINGS[p.op].kind == "alias"


def view_base(v: Value) -> Value:
    """The value whose bytes `v` is a view of (itself unless produced by a view op)."""
    while is_view(v) and v.producer.inputs[0] is not None:  # type: ignore[union-attr]
        v = v.producer.inputs[0]  # type: ignore[union-attr]
    return v


def passes_through(out: Value, inp: Value) -> bool:
    """Whether a body's result `out` is its input `inp` (directly or through views)."""
    return view_base(out) is inp


class ScopeBuilder:
    """The steps of one graph scope over the storages of its values."""

    def __init__(self, graph: Graph, target: Target, table: KernelTable, parent: ScopeBuilder | None = None) -> None:
        self.graph = graph
        self.target = target
        self.table = table
        self.parent = parent
        self.lanes = target.lanes(4)
        self.calls: list[Step] = []
        self.readers = {k: len(v) for k, v in graph.consumers().items()}
        self.local = {id(o) for n in graph.nodes for o in n.outputs}  # values this scope computes
        self.copies: list[tuple[Value, Storage]] = []
        self.inputs: list[ProgramBuffer] = []  # the model's (root scope only)
        self.outputs: list[ProgramBuffer] = []
        if parent is not None:  # one program: storages, weights, arena, sizes and clock are shared
            self.storage, self.weights, self.groups = parent.storage, parent.weights, parent.groups
            self.arena, self.sizes, self.clock = parent.arena, parent.sizes, parent.clock
            self.placed = parent.placed
            self.error_slot, self.dims_slot = parent.error_slot, parent.dims_slot
            return
        self.storage: dict[int, Storage] = {}
        self.weights: dict[int, ProgramBuffer] = {}
        self.groups: list[str] = []  # what each kernel call computes, in call order
        self.arena: list[Storage] = []
        self.placed: list[Storage] = []  # slabs of arena slots, in placement order (outer before inner)
        self.sizes: list[tuple[Storage, tuple[str, ...]]] = []  # where kernels store data-dependent dims
        self.clock = [0]  # the next step's number, in program order across all scopes
        self.error_slot: list[Storage] = []  # the one slot where kernels report a bad index (lower/checks.py)
        self.dims_slot: list[Storage] = []  # the run-time sizes of the range symbols (lower/symbols.py)

    def child(self, body: Graph) -> ScopeBuilder:
        """The scope of a control-flow body inside this one."""
        return ScopeBuilder(body, self.target, self.table, self)

    # -- storages
    def bind(self, values: list[Value], storages: list[Storage]) -> None:
        """Place values (graph or body inputs) in given storages."""
        for v, st in zip(values, storages):
            self.storage[id(v)] = st

    def bind_outputs(self, values: list[Value], storages: list[Storage]) -> None:
        """Make this scope's results land in `storages`: the kernel computing a value writes there
        directly; a value computed elsewhere (an input, a constant, an enclosing scope's value) or
        whose bytes another output took is copied there at the end (`copy_outputs`)."""
        for v, st in zip(values, storages):
            base = view_base(v)
            if id(base) not in self.local or id(base) in self.storage:
                self.copies.append((v, st))
            else:
                self.storage[id(base)] = st

    def storage_of(self, v: Value) -> Storage:
        """The storage of `v` (of the value it views), made on first use: a weight for a
        constant, else an arena slot owned by the scope computing the value."""
        base = view_base(v)
        st = self.storage.get(id(base))
        if st is None:
            if base.const is not None:
                st = Storage(self._weight(base.name, base.const, id(base)))
            else:
                owner = self
                while owner.parent is not None and id(base) not in owner.local:
                    owner = owner.parent
                st = owner.new_storage(base.name, base.type.dtype, buffer_shape(base))
                if not base.type.is_static:
                    st.buffer.dims = base.type.shape  # type: ignore[union-attr]
            self.storage[id(base)] = st
        return st

    def constant(self, name: str, array: np.ndarray) -> Storage:
        """A weight holding `array` (kept once per array object)."""
        return Storage(self._weight(name, array, id(array)))

    def new_storage(self, name: str, dtype: DType, shape: tuple[int, ...]) -> Storage:
        """A fresh arena slot owned by this scope."""
        st = Storage(ProgramBuffer(ident(name), dtype, shape, "arena"), owner=self)
        self.arena.append(st)
        return st

    def place(self, v: Value, within: Storage, at: int) -> Storage:
        """Make the storage of `v` (of the value it views) the bytes of `within` from byte `at` on."""
        base = view_base(v)
        assert id(base) not in self.storage, f"{base.name} already has storage"
        if within.within is not None:  # a slab of a slab: a slab of the outermost slot
            within, at = within.within, within.at + at
        assert within.buffer is not None and within.buffer.kind == "arena"
        buffer = ProgramBuffer(ident(base.name), base.type.dtype, buffer_shape(base), "arena", within=within.buffer)
        st = Storage(buffer, owner=self, within=within, at=at)
        self.placed.append(st)
        self.storage[id(base)] = st
        return st

    def owns(self, st: Storage) -> bool:
        """Whether `st` is an arena slot of this scope or of a scope nested in it."""
        owner = st.owner
        while owner is not None and owner is not self:
            owner = owner.parent
        return owner is self

    def hold(self, body: ScopeBuilder, start: int, end: int) -> None:
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
            name = f"w{len(self.weights)}_{ident(name)}"[:64]
            self.weights[key] = ProgramBuffer(name, DType.from_numpy(array.dtype), array.shape, "weight", data=array)
        return self.weights[key]

    # -- steps
    def bind_params(self, params: list[Param]) -> list[Storage]:
        """The storages a kernel's parameters are bound to by the next call: graph values,
        weights made by lowering, fresh scratch slots, slots for data-dependent sizes, the error slot."""
        step = self.clock[0]
        storages = []
        for p in params:
            if p.kind == "weight":
                st = Storage(self._weight(p.buffer.name, p.value, id(p.value)))  # type: ignore[arg-type]
            elif p.kind == "scratch":
                st = self.new_storage(f"tmp{step}_{p.buffer.name}", p.buffer.dtype, (int(p.buffer.size),))
            elif p.kind == "errors":  # one slot for the whole program, read after the run
                if not self.error_slot:
                    self.error_slot.append(self.new_storage("errors", p.buffer.dtype, (int(p.buffer.size),)))
                st = self.error_slot[0]
            elif p.kind == "dims":  # one slot for the whole program, written before the run
                if not self.dims_slot:
                    self.dims_slot.append(self.new_storage("dims", p.buffer.dtype, (int(p.buffer.size),)))
                st = self.dims_slot[0]
            elif p.kind == "sizes":  # read after the run
                st = self.new_storage(f"sizes{step}", p.buffer.dtype, (int(p.buffer.size),))
                self.sizes.append((st, p.value))  # type: ignore[arg-type]
            else:
                st = self.storage_of(p.value)  # type: ignore[arg-type]
            storages.append(st)
        return storages

    def call(self, kernel: Kernel, storages: list[Storage], describe: str, **attrs: Any) -> None:
        """Add a call of `kernel` (kept once in the kernel table) over the buffers of `storages`;
        `describe` says what it computes, `attrs` more of that for inspection."""
        step = self.tick()
        for st in storages:
            st.touch(step)
        args = [st.buffer for st in storages]
        self.calls.append(KernelCall(self.table.add(kernel), args, {"group": describe, **attrs}))  # type: ignore[arg-type]
        self.groups.append(describe)

    def copy(self, src: Storage, dst: Storage, n: Size | None = None) -> None:
        """Add a kernel copying `n` elements (default: all) of `src` to `dst` (same element type)."""
        assert src.buffer is not None and dst.buffer is not None
        dtype = dst.buffer.dtype
        n = int(np.prod(dst.buffer.shape, dtype=np.int64)) if n is None else n
        ctx = LowerCtx(self.lanes)
        a = ctx.param("value", dtype, n, None, "in")
        b = ctx.param("value", dtype, n, None, "out")
        body = bind_symbols(ctx, ctx.loops((n,), lambda i: store(b, linear(i, (n,)), Load(a, i[0]))))
        kernel = default_schedule(Kernel(self.table.name("copy"), [p.buffer for p in ctx.params], body), self.target)
        extra = self.bind_params(ctx.params[2:])  # the dims slot, for a run-time count
        self.call(kernel, [src, dst, *extra], f"copy to {dst.buffer.name}")

    def copy_outputs(self) -> None:
        """Copy the results that `bind_outputs` could not place into their storages."""
        symbols = current_symbols()
        for v, out in self.copies:  # run-time sizes: the actual count; data-dependent ones: the whole bound
            ranged = symbols is not None and all(symbols.covers(d) for d in v.type.shape)
            self.copy(self.storage_of(v), out, size_prod(shape_of(v.type)) if ranged else None)


def buffer_shape(v: Value) -> tuple[int, ...]:
    """The shape of `v`'s buffer: its largest size in each dim."""
    return tuple(bound(d) for d in shape_of(v.type))


def nbytes(b: ProgramBuffer | None) -> int:
    assert b is not None
    return int(np.prod(b.shape, dtype=np.int64)) * b.dtype.itemsize


def ident(name: str) -> str:
    """`name` as an identifier (non-word characters become _)."""
    return re.sub(r"\W", "_", name) or "v"
