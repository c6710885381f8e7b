"""Building the loop-IR `Program` of a graph, in named stages.

`build_program(graph, target)` expects static shapes and a graph already optimised by
the graph passes. Its stages, each a public function below:

1. `fuse_groups`: nodes -> fused groups (compiler/fusion.py); Concats whose inputs can be
   written into their slabs in place become no kernel (compiler/placement.py);
2. `lower_groups`: each group -> a loop-IR kernel and what its parameters are bound to;
3. `schedule_kernels`: each kernel's schedule applied (its lowering's requests, then the
   rule-based defaults of compiler/schedule.py);
4. `dedupe_kernels`: structurally identical kernels kept once, called with different buffers;
5. `assign_storage`: every value gets a storage (graph inputs, weights, graph outputs, arena
   slots; a view shares the storage of the value it views; a kernel whose result is (a view
   of) a graph output writes straight into the output buffer), and the steps are numbered;
   copy kernels are added for graph outputs that are graph inputs, constants, or repeated;
   the inputs of a placed Concat get their slabs of its arena slot as storage;
6. `plan_memory`: arena offsets by liveness (compiler/memory.py);
   every kernel is then checked by the loop-IR verifier (`verify_kernels`, ir/loop_verify.py);
7. `assemble_program`: the `Program`, with weights laid out in one blob (64-byte aligned).

Data-dependent output sizes (NonZero, Unique, ...: compiler/lower/dynamic.py) get buffers
of a static upper bound; their kernels store the actual sizes in arena slots that live
until the run ends, and each output records where its sizes are (`ProgramBuffer.dynamic`).
Run-time index checks share one error slot, alive for the whole run
(`attrs["error_slot"]`, its byte offset; `attrs["error_sites"]`, the text of each check).

A model compiled for ranges of sizes keeps its range symbols (`symbols`: name -> SymbolRange):
kernels compute loop extents, strides and tails from the symbols' run-time values
(compiler/lower/sizes.py), read from one int64 "dims" slot that the runtime writes before
the run (`attrs["dims_slot"]`); buffers are planned for the largest sizes; a last kernel
stores the outputs' symbolic dims where data-dependent sizes go (`ProgramBuffer.dynamic`).

If, Loop and Scan nodes become program steps (compiler/control.py): their bodies go through
stages 1-5 in child scopes (`lower_body`) that share this one's storages, weights, kernels
and arena, with one step clock, so that liveness is measured in one program order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

from aic.codegen.target import Target
from aic.ir.graph import Graph, Value
from aic.ir.loop import INDEX, Const, Kernel, Program, ProgramBuffer, step_buffers
from aic.ir.loop_tools import seq
from aic.ir.loop_verify import verify_kernel
from aic.ir.schedule import DIRECTIVES, Record, ScheduleError

from .control import check_control, lower_control
from .control_static import resolve_static_control
from .fusion import Group, fuse
from .lower import LOWERINGS
from .lower.core import LowerCtx, Param, node_error, store
from .lower.dynamic import bounded_shape, check_bounded, dynamic_bounds, lower_dynamic
from .lower.kernel import lower_group
from .lower.sizes import SymbolicSizeError, SymbolRange, Symbols, active_symbols, as_expr, current_symbols
from .lower.symbols import bind_symbols, fold_symbolic_values
from .lower.table import lowering_of
from .memory import ALIGN, ArenaPlan, Lifetime, align, plan_arena
from .placement import Placement, plan_placement
from .schedule import apply_all, default_schedule
from .storage import KernelTable, ScopeBuilder, Storage, buffer_shape, ident, nbytes
from .summary import group_flops


@dataclass(eq=False)
class LoweredGroup:
    """A fused group as loop IR, before its parameters are bound to storages. `kernel` is None
    for a control-flow group (its steps are made when storage is assigned)."""

    group: Group
    kernel: Kernel | None = None
    params: list[Param] = field(default_factory=list)
    hints: list[Record] = field(default_factory=list)  # schedule records the lowering asks for
    dynamic: bool = False  # data-dependent sizes: serial, left unscheduled
    loop_records: list[Record] | None = None  # the loop records of a given schedule, replacing hints and rules


Schedules = Mapping[str, Sequence[Record]]
"""Schedules given from outside, by kernel name (as `aic inspect --kernels` lists them). A kernel's
directives (`MicroKernel`, `CachePack`) replace its lowering's tiling; its loop records, if any,
are applied exactly instead of the lowering's requests and the default rules."""


def build_program(
    graph: Graph,
    target: Target | str | None = None,
    schedules: Schedules | None = None,
    symbols: Mapping[str, SymbolRange] | None = None,
) -> Program:
    """Lower a graph to a loop-IR program for `target`; its shapes are static, data-dependent
    (bounded), or expressions of the range `symbols`; `schedules` replaces the schedules of the
    kernels it names."""
    target = Target.parse(target)
    table = Symbols(symbols) if symbols else None
    with active_symbols(table) if table is not None else nullcontext():
        program = _build(graph, target, schedules, table)
    if table is not None:
        ranges = table.ranges.values()
        program.attrs["symbols"] = [{"name": r.name, "min": r.lo, "max": r.hi, "opt": r.opt} for r in ranges]
        program.attrs["input_dims"] = [list(v.type.shape) for v in graph.inputs]
        program.attrs["output_dims"] = [list(v.type.shape) for v in graph.outputs]
    return program


def _build(graph: Graph, target: Target, schedules: Schedules | None, symbols: Symbols | None) -> Program:
    graph, bounds = prepare_graph(graph, symbols)  # static control resolved; every shape static, bounded or ranged
    table = KernelTable(schedules or {})  # the program's kernels, each kept once; given schedules
    placement = plan_placement(graph, SLAB_ALIGN.get(target.kind, 1))  # Concats written in place by their inputs
    groups = fuse_groups(graph, placement)  # nodes -> fused groups
    lowered = lower_groups(graph, groups, target, table)  # each group -> a loop-IR kernel (tiled by its schedule)
    lowered = schedule_kernels(lowered, target)  # vectorize, parallelize, unroll (records kept per kernel)
    lowered = dedupe_kernels(lowered, table)  # identical kernels kept once
    scope = assign_storage(graph, lowered, target, table, bounds, placement)  # values -> buffers; numbered steps
    plan = plan_memory(scope)  # arena offsets by liveness
    check_schedules_used(table)
    verify_kernels(table.kernels, target)  # types, bounds, parallel writes, barriers
    return assemble_program(scope, plan)  # kernels, steps, buffers, weights blob


def prepare_graph(graph: Graph, symbols: Symbols | None = None) -> tuple[Graph, dict[str, int]]:
    """`graph` with control flow on constants resolved, and the upper bounds of its data-dependent
    dims; raises a LoweringError naming the node when a shape is neither static, bounded, nor an
    expression of the range `symbols`. Shape arithmetic on the symbols is folded away."""
    graph = resolve_static_control(graph)  # Ifs on constants, short loops of changing shapes
    bounds = dynamic_bounds(graph)  # data-dependent dims -> the upper bounds their buffers get
    check_bounded(graph, bounds)

    def known(d: object) -> bool:
        return isinstance(d, int) or d in bounds or (symbols is not None and symbols.covers(d))  # type: ignore[arg-type]

    inputs = {d for v in graph.inputs for d in v.type.shape if isinstance(d, str)}

    def hint(v: Value) -> str:
        unknown = [d for d in v.type.shape if not known(d)]
        if symbols is not None and not all(d in inputs for d in unknown):
            return (f"dims {unknown} cannot be computed from the input dims (they depend on input values, or take a "
                    "min or max of sizes), so no single .so serves every size; aic.compile without output= compiles "
                    "per input signature")  # fmt: skip
        return "give its dims ranges (--shape NAME=MIN..MAX) or bind them to sizes"

    for node in graph.nodes:
        if LOWERINGS.get(node.op) is not None and LOWERINGS[node.op].kind == "control":
            check_control(node)
        for v in [*node.inputs, *node.outputs]:
            if v is not None and not all(known(d) for d in v.type.shape):
                raise node_error(node, f"value {v.name} has symbolic shape {v.type}; {hint(v)}")
    for v in [*graph.inputs, *graph.outputs]:
        if not all(known(d) for d in v.type.shape):
            raise ValueError(f"graph {v.name} has symbolic shape {v.type}; {hint(v)}")
    if symbols is not None:
        _check_inputs(graph, symbols)
        fold_symbolic_values(graph, symbols)
    return graph, bounds


def _check_inputs(graph: Graph, symbols: Symbols) -> None:
    """Every symbolic input dim must be a symbol itself (the runtime reads the symbols' values
    from the input shapes), and every range symbol must appear in some input."""
    seen = set()
    for v in graph.inputs:
        for d in v.type.shape:
            if isinstance(d, str) and d not in symbols.ranges:
                raise ValueError(f"input '{v.name}' {v.type}: dim '{d}' must be one symbol, given at run time")
            seen.add(d)
    unused = [name for name in symbols.order if name not in seen]
    if unused:
        raise ValueError(f"range symbols {unused} are not dims of any input; the inputs are "
                         f"{[f'{v.name} {v.type}' for v in graph.inputs]}")


SLAB_ALIGN = {"cuda": 16}
"""Byte alignment of the slabs of a placed Concat, per target kind (CUDA kernels make 16-byte vector accesses)."""


def fuse_groups(graph: Graph, placement: Placement | None = None) -> list[Group]:
    """The groups of `graph` that become steps, in dependency order (views and placed Concats become none)."""
    placed = placement.node_ids if placement is not None else set()
    return [g for g in fuse(graph, placed) if not g.alias and id(g.root) not in placed]


def lower_groups(graph: Graph, groups: list[Group], target: Target, table: KernelTable) -> list[LoweredGroup]:
    """Each group's kernel, storing the outputs that something reads; groups whose outputs
    nothing reads are dropped, control-flow groups pass through without a kernel."""
    readers = {k: len(v) for k, v in graph.consumers().items()}
    outs = {id(v) for v in graph.outputs}
    lowered = []
    for group in groups:
        if group.control:
            lowered.append(LoweredGroup(group))
            continue
        needed = [o for o in group.root.outputs if readers.get(id(o), 0) or id(o) in outs]
        if not needed:
            continue
        name = table.name(group.describe())
        given = table.schedules.get(name)
        if group.anchor is not None and lowering_of(group.anchor).dynamic is not None:
            if given is not None:
                raise _refused(name, group, "it has data-dependent sizes and takes no schedule")
            low = lower_dynamic(group.anchor, needed, name)
            lowered.append(LoweredGroup(group, low.kernel, low.params, dynamic=True))
            continue
        directives = [r for r in given or () if isinstance(r, DIRECTIVES)]
        try:
            low = lower_group(
                group.nodes, group.anchor, needed, name, target.lanes(4), directives, len(table.error_sites)
            )
        except ScheduleError as err:
            raise _refused(name, group, f"schedule record {err}") from None
        except SymbolicSizeError as err:
            why = f"{err}: this op does not take run-time sizes yet ({_shapes(group)})"
            raise node_error(group.root, why) from err
        table.error_sites.extend(low.sites)
        for record in directives:
            if record not in low.hints:
                raise _refused(name, group, f"its lowering takes no directive {record}")
        loops = [r for r in given or () if not isinstance(r, DIRECTIVES)] or None
        lowered.append(LoweredGroup(group, low.kernel, low.params, list(low.hints), loop_records=loops))  # type: ignore[arg-type]
    return lowered


def schedule_kernels(lowered: list[LoweredGroup], target: Target) -> list[LoweredGroup]:
    """Each kernel with its schedule applied: the loop records given for it, else the lowering's
    requests followed by the default rules."""
    return [replace(low, kernel=schedule_kernel(low, target)) if low.kernel is not None else low for low in lowered]


def schedule_kernel(low: LoweredGroup, target: Target) -> Kernel:
    """The scheduled kernel of `low`; a given loop record that does not apply is refused."""
    assert low.kernel is not None
    if low.dynamic:
        return low.kernel
    if low.loop_records is None:
        return default_schedule(low.kernel, target, low.hints)
    kernel = apply_all(low.kernel, [r for r in low.hints if isinstance(r, DIRECTIVES)])
    for record in low.loop_records:
        try:
            kernel = apply_all(kernel, [record])
        except ScheduleError as err:
            raise _refused(kernel.name, low.group, f"schedule record {record}: {err}") from None
    return kernel


def _shapes(group: Group) -> str:
    values = [v for n in group.nodes for v in n.inputs if v is not None and not v.type.is_static]
    return ", ".join(f"{v.name} {v.type}" for v in values)


def _refused(name: str, group: Group, why: str) -> ScheduleError:
    return ScheduleError(f"kernel {name} ({group.describe()}): {why}")


def dedupe_kernels(lowered: list[LoweredGroup], table: KernelTable) -> list[LoweredGroup]:
    """Each kernel replaced by the structurally equal one already in `table` (if any)."""
    return [replace(low, kernel=table.add(low.kernel)) if low.kernel is not None else low for low in lowered]


def assign_storage(
    graph: Graph,
    lowered: list[LoweredGroup],
    target: Target,
    table: KernelTable,
    bounds: dict[str, int],
    placement: Placement | None = None,
) -> ScopeBuilder:
    """The model's scope: its inputs and outputs placed, the inputs of placed Concats in their
    slabs, then one step per lowered group (control flow expanded, its bodies lowered on the
    way) and the copies to the outputs."""
    scope = ScopeBuilder(graph, target, table)
    scope.inputs = [ProgramBuffer(v.name, v.type.dtype, buffer_shape(v), "input") for v in graph.inputs]
    scope.bind(graph.inputs, [Storage(b) for b in scope.inputs])
    for v in graph.outputs:
        name = _unique(v.name, scope.outputs)
        shape = bounded_shape(v, bounds) if any(d in bounds for d in v.type.shape) else buffer_shape(v)
        scope.outputs.append(ProgramBuffer(name, v.type.dtype, shape, "output"))
    scope.bind_outputs(graph.outputs, [Storage(b) for b in scope.outputs])
    for concat, slabs in placement.concats if placement is not None else ():  # outer Concats first
        within = scope.storage_of(concat.outputs[0])
        for base, at in slabs:
            scope.place(base, within, at)
    add_steps(scope, lowered)
    store_output_dims(scope, bounds)
    return scope


def store_output_dims(scope: ScopeBuilder, bounds: dict[str, int]) -> None:
    """A last kernel storing the run-time sizes of the outputs' symbolic (range) dims where the
    runtime reads output shapes after a run."""
    dims = sorted({d for v in scope.graph.outputs for d in v.type.shape if isinstance(d, str) and d not in bounds})
    if not dims:
        return
    ctx = LowerCtx(scope.lanes)
    slots = ctx.param("sizes", INDEX, len(dims), tuple(dims), "sizes")
    symbols = current_symbols()
    assert symbols is not None
    body = seq(*(store(slots, Const(k, INDEX), as_expr(symbols.size(d))) for k, d in enumerate(dims)))
    body = bind_symbols(ctx, body)
    kernel = Kernel(scope.table.name("output_dims"), [p.buffer for p in ctx.params], body)
    scope.call(kernel, scope.bind_params(ctx.params), "output dims")


def add_steps(scope: ScopeBuilder, lowered: list[LoweredGroup]) -> None:
    """Bind each lowered group's parameters to storages in `scope` and add its call (or, for
    control flow, its steps), then the copies to the scope's outputs."""
    for low in lowered:
        if low.kernel is None:
            lower_control(scope, low.group.root, lower_body)
        else:
            group = low.group
            nodes = [f"{n.op} {n.name}" for n in group.nodes]
            info = {"nodes": nodes, "flops": group_flops(group.nodes), "refusals": group.refusals}
            scope.call(low.kernel, scope.bind_params(low.params), group.describe(), **info)
    scope.copy_outputs()


def lower_body(scope: ScopeBuilder) -> None:
    """Stages 1-5 for a control-flow body in its own scope (its inputs and outputs already bound)."""
    groups = fuse_groups(scope.graph)
    lowered = lower_groups(scope.graph, groups, scope.target, scope.table)
    lowered = schedule_kernels(lowered, scope.target)
    add_steps(scope, dedupe_kernels(lowered, scope.table))


def check_schedules_used(table: KernelTable) -> None:
    """Refuse schedules given for kernels the program does not have."""
    unknown = sorted(set(table.schedules) - table.names)
    if unknown:
        raise ScheduleError(f"schedules given for unknown kernels {unknown}; `aic inspect MODEL --kernels` lists them")


def verify_kernels(kernels: list[Kernel], target: Target) -> None:
    """Run the loop-IR verifier (ir/loop_verify.py) on every kernel; a failure is a compiler bug."""
    for kernel in kernels:
        verify_kernel(kernel, gpu=target.kind == "cuda")


def plan_memory(scope: ScopeBuilder) -> ArenaPlan:
    """Arena offsets for every slot of the program by the steps that touch it (slots holding
    data-dependent sizes live until the run ends); the offsets are written into the buffers."""
    for st, _ in scope.sizes:
        st.touch(scope.clock[0] - 1)
    for st in [*scope.error_slot, *scope.dims_slot]:  # written before the run, read after it
        st.touch(0)
        st.touch(scope.clock[0] - 1)
    plan = plan_arena([Lifetime(id(st), nbytes(st.buffer), st.first, st.last) for st in scope.arena])
    for st in scope.arena:
        st.buffer.offset = plan.offsets[id(st)]  # type: ignore[union-attr]
    for st in scope.placed:
        st.buffer.offset = st.within.buffer.offset + st.at  # type: ignore[union-attr]
    symbols = current_symbols()
    if symbols is not None:  # the arena is planned for the largest sizes; what smaller ones would need
        for which in ("min", "opt", "max"):
            field = {"min": "lo", "max": "hi"}.get(which, which)
            values = {name: getattr(r, field) for name, r in symbols.ranges.items()}
            sized = [Lifetime(id(st), _bytes_at(st.buffer, symbols, values), st.first, st.last) for st in scope.arena]
            plan.peak_at[which] = plan_arena(sized).peak_bytes
    return plan


def _bytes_at(b: ProgramBuffer | None, symbols: Symbols, values: dict[str, int]) -> int:
    """The bytes of an arena slot when the symbols have `values` (scratch slots at their largest)."""
    assert b is not None
    if b.dims is None:
        return nbytes(b)
    count = 1
    for d in b.dims:
        count *= symbols.value_of(d, values)
    return count * b.dtype.itemsize


def assemble_program(scope: ScopeBuilder, plan: ArenaPlan) -> Program:
    """The program of the model's `scope`: the kernels its steps call, the weights they use laid
    out in one blob, where each output's data-dependent sizes are, and the memory report."""
    where = {s: st.buffer.offset + 8 * i for st, symbols in scope.sizes for i, s in enumerate(symbols)}  # type: ignore[union-attr]
    for v, out in zip(scope.graph.outputs, scope.outputs):
        out.dynamic = {d: (s, where[s]) for d, s in enumerate(v.type.shape) if isinstance(s, str)}
    used = {id(b) for b in step_buffers(scope.calls)}
    weights = [w for w in scope.weights.values() if id(w) in used]
    offset = 0
    for w in weights:
        w.offset = offset
        offset = align(offset + nbytes(w), ALIGN)
    attrs = {
        "arena_peak_bytes": plan.peak_bytes,
        **({"arena_bytes_at": dict(plan.peak_at)} if plan.peak_at else {}),
        "arena_unshared_bytes": plan.total_bytes,
        "memory_report": plan.report(),
        "weight_bytes": offset,
        "groups": scope.groups,
        "placed_bytes": sum(nbytes(st.buffer) for st in scope.placed),
        "error_slot": scope.error_slot[0].buffer.offset if scope.error_slot else -1,  # type: ignore[union-attr]
        "dims_slot": scope.dims_slot[0].buffer.offset if scope.dims_slot else -1,  # type: ignore[union-attr]
        "error_sites": scope.table.error_sites,
    }
    name = ident(scope.graph.name or "model")
    return Program(name, scope.table.kernels, scope.calls, scope.inputs, scope.outputs, weights, plan.peak_bytes, attrs)


def _unique(name: str, taken: list[ProgramBuffer]) -> str:
    names = {b.name for b in taken}
    out, n = name, 0
    while out in names:
        n += 1
        out = f"{name}_{n}"
    return out
