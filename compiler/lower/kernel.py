"""Lowering one fused group to a loop-IR `Kernel`.

External inputs become buffer parameters (created on first read, so inputs used only at
compile time, like Reshape's shape, cost nothing; one-element constants inline as
literals). Nodes lower in order to tensors; an anchor writes through `emit`, which runs
the fused epilogue and stores the group's outputs; a compute-only group stores its
outputs with one loop nest per output shape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from aic.ir.graph import Node, Value
from aic.ir.loop import Buffer, Expr, Kernel, Stmt
from aic.ir.loop_printer import expr_text
from aic.ir.loop_tools import seq

from .core import (
    BufferTensor,
    ConstTensor,
    LowerCtx,
    MemoTensor,
    Param,
    SlotTensor,
    Tensor,
    convert,
    linear,
    store,
)
from .movement import Segment, concat_head, concat_segments
from .rows import vector_row
from .sizes import Size, current_symbols, numel_bound, shape_of
from .symbols import bind_symbols, symbol_tensor
from .table import lowering_of
from .transposed_rows import gathered_axis, rows_by_tiles


@dataclass
class LoweredKernel:
    kernel: Kernel
    params: list[Param]  # what each kernel parameter is bound to, in parameter order
    hints: list[object]  # schedule records the lowering asks for
    sites: list[str] = field(default_factory=list)  # the texts of its run-time checks (checks.py)


def lower_group(
    nodes: list[Node],
    anchor: Node | None,
    needed: list[Value],
    name: str,
    lanes: int,
    directives: Sequence = (),
    site_base: int = 0,
) -> LoweredKernel:
    """Lower `nodes` (topological; the last is the root) storing the root outputs `needed`;
    `directives` (schedule records such as `MicroKernel`) replace the lowering's default tiling;
    its run-time checks are numbered from `site_base`."""
    ctx = LowerCtx(lanes, directives, site_base)
    root = nodes[-1]
    inside = {id(o) for n in nodes for o in n.outputs}
    reads = Counter(id(v) for n in nodes for v in n.inputs if v is not None)
    tensors: dict[int, Tensor] = {}
    out_bufs: dict[int, Buffer] = {}
    for v in needed:
        out_bufs[id(v)] = ctx.param("value", v.type.dtype, numel_bound(v.type), v, "out")

    def tensor_of(v: Value | None) -> Tensor | None:
        if v is None:
            return None
        if id(v) not in tensors and id(v) not in inside:
            tensors[id(v)] = _external(ctx, v)
        return tensors[id(v)]

    slots: dict[int, SlotTensor] = {}

    def lower_nodes(part: list[Node]) -> None:
        for node in part:
            ins = [tensor_of(v) for v in node.inputs]
            if node is anchor:
                for o in node.outputs:
                    slots[id(o)] = tensors[id(o)] = SlotTensor(shape_of(o.type), o.type.dtype)
                continue
            low = lowering_of(node)
            if node is root and low.root is not None:
                continue
            outs = low.fn(ctx, node, ins)
            for o, t in zip(node.outputs, outs):
                tensors[id(o)] = MemoTensor(t, ctx) if reads[id(o)] > 1 else t

    lower_nodes(nodes)

    def emit_for(source: Node):
        class _Emit:
            def needed(self, i: int) -> bool:
                if i >= len(source.outputs):
                    return False
                out = source.outputs[i]
                return id(out) in out_bufs or (source is not root and reads[id(out)] > 0)

            def __call__(self, i: int, index: list[Expr], value: Expr) -> Stmt:
                out = source.outputs[i]
                with ctx.scope() as sc:
                    value = ctx.let(convert(value, out.type.dtype), "v")
                    if id(out) in slots:
                        slots[id(out)].value = value
                        slots[id(out)].index = [expr_text(e) for e in index]
                    stores = []
                    for v in needed:
                        if v is out or (source is not root and i == 0):
                            element = value if v is out else tensors[id(v)].at(index)
                            stores.append(store(out_bufs[id(v)], linear(index, shape_of(v.type)), element))
                    return sc.wrap(seq(*stores))

        return _Emit()

    with ctx.scope() as top:  # values the lowering binds outside any loop
        if anchor is not None:
            body = lowering_of(anchor).fn(ctx, anchor, [tensor_of(v) for v in anchor.inputs], emit_for(anchor))
        elif lowering_of(root).root is not None:
            body = lowering_of(root).root(ctx, root, [tensor_of(v) for v in root.inputs], emit_for(root))
        elif (head := concat_head(nodes, needed)) is not None:
            concat = nodes[head]
            body = seq(*(
                _store_outputs(ctx, needed, tensors, out_bufs, segment)
                for segment in concat_segments(concat, [tensor_of(v) for v in concat.inputs], tensors,
                                               lambda: lower_nodes(nodes[head + 1 :]))
            ))
        else:
            body = _store_outputs(ctx, needed, tensors, out_bufs)
        body = seq(*ctx.checks, top.wrap(body))  # checks bind their values inside their own loops
    body = bind_symbols(ctx, body)
    params = _ordered(ctx.params, out_bufs)
    attrs = {"typical_sizes": ctx.typical_sizes} if ctx.typical_sizes else {}
    kernel = Kernel(name, [p.buffer for p in params], body, attrs)
    return LoweredKernel(kernel, params, ctx.hints, ctx.sites)


def _external(ctx: LowerCtx, v: Value) -> Tensor:
    shape = shape_of(v.type)
    if v.const is not None and v.const.size == 1:
        return ConstTensor(shape, v.type.dtype, np.asarray(v.const).reshape(-1)[0].item())
    symbols = current_symbols()
    if v.sym is not None and v.const is None and symbols is not None and all(symbols.covers(d) for d in v.sym):
        return symbol_tensor(v)  # shape arithmetic: computed from the run-time sizes
    buffer: list[Buffer] = []

    def get() -> Buffer:
        if not buffer:
            buffer.append(ctx.param("value", v.type.dtype, numel_bound(v.type), v, "in"))
        return buffer[0]

    return BufferTensor(shape, v.type.dtype, get)


def _store_outputs(
    ctx: LowerCtx,
    needed: list[Value],
    tensors: dict[int, Tensor],
    bufs: dict[int, Buffer],
    segment: Segment | None = None,
) -> Stmt:
    """Loop nests storing the `needed` values; with a `segment`, only its slab of each (all of one shape)."""
    by_shape: dict[tuple[Size, ...], list[Value]] = {}
    for v in needed:
        by_shape.setdefault(shape_of(v.type), []).append(v)

    def body(index: list[Expr], values: list[Value]) -> Stmt:
        if segment is not None:
            index = segment.place(index)
        return seq(*(store(bufs[id(v)], linear(index, shape_of(v.type)), tensors[id(v)].at(index)) for v in values))

    def nest(shape: tuple[Size, ...], values: list[Value]) -> Stmt:
        if segment is not None:
            shape = segment.shape
        if not shape:
            return body([], values)
        axis = gathered_axis(ctx, shape, lambda index: body(index, values))
        if axis is not None:
            return rows_by_tiles(ctx, shape, axis, lambda index: body(index, values))  # type: ignore[arg-type]
        return ctx.loops(shape[:-1], lambda lead: vector_row(ctx, shape[-1], lambda v: body([*lead, v], values)))

    return seq(*(nest(shape, values) for shape, values in by_shape.items()))


def _ordered(params: list[Param], outputs: dict[int, Buffer]) -> list[Param]:
    """Inputs, then compile-time weights, then outputs, then scratch buffers, then the error slot."""
    out_ids = {id(b) for b in outputs.values()}

    def key(p: Param) -> int:
        if id(p.buffer) in out_ids:
            return 2
        return {"value": 0, "weight": 1, "scratch": 3, "errors": 4, "dims": 5}[p.kind]

    return sorted(params, key=key)
