"""Bounded dynamic dims: ops whose output sizes depend on the data (NonZero, Compress with a
run-time condition, Unique, NonMaxSuppression).

Shape inference gives such a size a fresh symbol. At lowering, the symbol gets a static
upper bound (NonZero: the input's element count; Unique: the element count or the axis
length; ...) that sizes the output's buffer, and the node's kernel stores the actual size
at run time into a small int64 "sizes" buffer (a parameter of kind "sizes", one slot per
symbol, kept in the arena until the run ends). Outputs are written C-contiguous in their
actual shape at the start of their buffer, so a data-dependent dim that is not the leading
one is laid out with the actual (not the bound) strides: kernels count first, then write.

Such a value may only be a graph output: the runtime reads the sizes after a run
(`aic_output_shape`) and trims the result. A node reading it gets a LoweringError.
The kernels are serial loops; `argsort` is a stable bottom-up merge sort over scratch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Graph, Node, Value
from aic.ir.loop import INDEX, Allocate, Bin, Buffer, Cast, Expr, For, Kernel, Load, Seq, Stmt, Store
from aic.ir.loop_tools import binop, select, seq

from .core import HALF, BufferTensor, ConstTensor, LowerCtx, Tensor, delinear, idx, node_error
from .kernel import LoweredKernel
from .mathx import k
from .reduce import stack
from .table import Dynamic, lookup

Sizes = Callable[[int, int, Expr], Stmt]  # (output, dim, actual size) -> the statement storing it
Before = Callable[[Expr, Expr], tuple[Stmt | None, Expr]]  # (a, b) -> (statements to run first, a sorts before b)


def _dynamic_of(node: Node) -> Dynamic | None:
    low = lookup(node)
    return low.dynamic if low is not None else None


def dynamic_bounds(graph: Graph) -> dict[str, int]:
    """Static upper bounds of the data-dependent dims of the graph's nodes (symbol -> bound)."""
    bounds: dict[str, int] = {}
    for node in graph.nodes:
        dyn = _dynamic_of(node)
        if dyn is None or not all(v is None or v.type.is_static for v in node.inputs):
            continue
        for out, shape in zip(node.outputs, dyn.bounds(node)):
            for d, b in zip(out.type.shape, shape):
                if isinstance(d, str):
                    bounds[d] = b
    return bounds


def bounded_flows(graph: Graph, bounds: dict[str, int]) -> list[tuple[Node, Value]]:
    """(reader, value) for each node reading a value with a data-dependent dim."""
    readers = graph.consumers()
    flows = []
    for node in graph.nodes:
        for out in node.outputs:
            if any(isinstance(d, str) and d in bounds for d in out.type.shape):
                flows += [(r, out) for r in readers.get(id(out), [])]
    return flows


def compilable_bounds(graph: Graph) -> dict[str, int]:
    """The data-dependent dims lowering supports as they are: those no node reads."""
    bounds = dynamic_bounds(graph)
    for _, value in bounded_flows(graph, bounds):
        for d in value.type.shape:
            if isinstance(d, str):
                bounds.pop(d, None)
    return bounds


def check_bounded(graph: Graph, bounds: dict[str, int]) -> None:
    """Raise a LoweringError naming the first node that reads a value of data-dependent size."""
    for reader, value in bounded_flows(graph, bounds):
        producer = value.producer
        assert producer is not None
        raise node_error(
            reader,
            f"its input {value.name} {value.type} has a size computed at run time by {producer.op} "
            f"'{producer.name}'; such values can only be graph outputs for now",
        )


def bounded_shape(v: Value, bounds: dict[str, int]) -> tuple[int, ...]:
    """The static shape of `v`'s buffer: data-dependent dims at their upper bound."""
    return tuple(bounds[d] if isinstance(d, str) else d for d in v.type.shape)


# ---------------------------------------------------------------- one node's kernel


def lower_dynamic(node: Node, needed: list[Value], name: str) -> LoweredKernel:
    """The kernel of a node with data-dependent output sizes, writing the outputs in `needed`."""
    dyn = _dynamic_of(node)
    assert dyn is not None, node.op
    ctx = LowerCtx()
    wanted = {id(v) for v in needed}
    outs: list[Buffer | None] = []
    for out, bound in zip(node.outputs, dyn.bounds(node)):
        size = int(np.prod([d if isinstance(d, int) else b for d, b in zip(out.type.shape, bound)], dtype=np.int64))
        outs.append(ctx.param("value", out.type.dtype, size, out, "out") if id(out) in wanted else None)
    symbols = list(dict.fromkeys(d for v in needed for d in v.type.shape if isinstance(d, str)))
    slots = ctx.param("sizes", INDEX, len(symbols), tuple(symbols), "size") if symbols else None

    stored: set[str] = set()

    def sizes(i: int, dim: int, value: Expr) -> Stmt:
        d = node.outputs[i].type.shape[dim] if i < len(node.outputs) else None
        if slots is None or d not in symbols or d in stored:
            return Seq([])
        stored.add(d)  # type: ignore[arg-type]
        return Store(slots, idx(symbols.index(d)), value)

    ins = [_input(ctx, v) for v in node.inputs]
    with ctx.scope() as top:
        body = top.wrap(dyn.lower(ctx, node, ins, outs, sizes))
    order = {"value": 0, "weight": 1, "scratch": 3, "sizes": 4}
    out_ids = {id(b) for b in outs if b is not None}
    params = sorted(ctx.params, key=lambda p: 2 if id(p.buffer) in out_ids else order[p.kind])
    return LoweredKernel(Kernel(name, [p.buffer for p in params], body), params, [])


def _input(ctx: LowerCtx, v: Value | None) -> Tensor | None:
    if v is None:
        return None
    shape = v.type.static_shape
    if v.const is not None and v.const.size == 1:
        return ConstTensor(shape, v.type.dtype, np.asarray(v.const).reshape(-1)[0].item())
    made: list[Buffer] = []

    def get() -> Buffer:
        if not made:
            made.append(ctx.param("value", v.type.dtype, int(np.prod(shape)), v, "in"))
        return made[0]

    return BufferTensor(shape, v.type.dtype, get)


# ---------------------------------------------------------------- helpers for the lowerings


def flat(t: Tensor, i: Expr) -> Expr:
    """Element `i` of `t` in row-major order (as a compute value)."""
    if isinstance(t, BufferTensor):
        value: Expr = Load(t.buffer, i)
        return Cast(DType.float32, value) if t.dtype in HALF else value
    return t.at(delinear(i, t.shape))


def scalar(t: Tensor | None) -> Expr | None:
    """The single element of an optional scalar (or one-element) input."""
    if t is None or t.numel == 0:
        return None
    return t.at([idx(0)] * t.rank)


def nonzero(e: Expr) -> Expr:
    """`e != 0` as a bool."""
    return e if e.dtype == DType.bool else Bin("ne", e, k(0, e))


def counter(ctx: LowerCtx, hint: str) -> Buffer:
    """A one-element int64 stack variable."""
    return stack(ctx, INDEX, 1, hint)


def get(b: Buffer) -> Expr:
    return Load(b, idx(0))


def put(b: Buffer, value: Expr) -> Stmt:
    return Store(b, idx(0), value)


def bump(b: Buffer, by: Expr | None = None) -> Stmt:
    return put(b, binop("add", get(b), by if by is not None else idx(1)))


def dyn_loop(ctx: LowerCtx, extent: Expr, body: Callable[[Expr], Stmt], hint: str = "j") -> Stmt:
    """`for v in range(extent)` for a run-time extent, with its own Let scope."""
    v = ctx.var(hint)
    with ctx.scope() as sc:
        inner = sc.wrap(body(v))
    return For(v, extent, inner)


def argsort(ctx: LowerCtx, n: int, before: Before) -> tuple[Stmt, Buffer]:
    """A stable sort of 0..n-1 (`before(a, b)`: element a goes strictly before b): the
    statement, and the scratch buffer that holds the sorted indices after it."""
    src, dst = ctx.scratch(INDEX, max(n, 1)), ctx.scratch(INDEX, max(n, 1))
    steps = [ctx.loop(n, lambda i: Store(src, i, i), "s")]
    width = 1
    while width < n:
        steps.append(ctx.loop(-(-n // (2 * width)), lambda b, w=width, s=src, d=dst: _merge(ctx, s, d, b, w, n, before),
                              "blk"))
        src, dst = dst, src
        width *= 2
    return seq(*steps), src


def _merge(ctx: LowerCtx, src: Buffer, dst: Buffer, block: Expr, width: int, n: int, before: Before) -> Stmt:
    """Merge the runs [lo, mid) and [mid, hi) of src into dst (ties keep the left run first)."""
    lo = ctx.let(binop("mul", block, idx(2 * width)), "lo")
    mid = ctx.let(binop("min", binop("add", lo, idx(width)), idx(n)), "mid")
    hi = ctx.let(binop("min", binop("add", lo, idx(2 * width)), idx(n)), "hi")
    pos = stack(ctx, INDEX, 2, "run")
    i, j = Load(pos, idx(0)), Load(pos, idx(1))
    k = ctx.var("m")
    with ctx.scope() as outer:
        left = ctx.let(Load(src, binop("min", i, idx(n - 1))), "left")
        right = ctx.let(Load(src, binop("min", j, idx(n - 1))), "right")
        first, right_first = before(right, left)
        with ctx.scope() as inner:
            take = ctx.let(Bin("and", Bin("lt", j, hi), Bin("or", Bin("ge", i, mid), right_first)), "take")
            one, zero = idx(1), idx(0)
            body = inner.wrap(seq(
                Store(dst, k, select(take, right, left)),
                Store(pos, idx(0), binop("add", i, select(take, zero, one))),
                Store(pos, idx(1), binop("add", j, select(take, one, zero))),
            ))
        body = outer.wrap(seq(first, body))
    loop = For(k, binop("sub", hi, lo), body, start=lo)
    return Allocate(pos, seq(Store(pos, idx(0), lo), Store(pos, idx(1), mid), loop))
