"""Transposes moved through reductions, Pad and Concat, the layout-sensitive ops that
channels-last models put between convolutions (elementwise ops: `sink_layout`).

- Reduce(Transpose(x, p), axes) reduces x over p[axes] instead. With keepdims=0
  the kept dims come out in x's order, so no Transpose remains when p keeps the
  surviving dims in order (NHWC global pooling of an NCHW tensor:
  ReduceMean(Transpose(x, [0,2,3,1]), [1,2]) -> ReduceMean(x, [2,3])); else a
  smaller Transpose of the result restores the order. With keepdims=1:
  Transpose(Reduce(x, p[axes]), p). The Transpose may have other readers (the
  reduction just stops reading it).
- Pad(Transpose(x, p), pads) -> Transpose(Pad(x, pads'), p), pads permuted.
- Concat(Transpose(a, p), Transpose(b, p), ...) -> Transpose(Concat(a, b, ...), p)
  on axis p[axis] (channel concatenation of NHWC tensors: DenseNet).
- A Transpose read by several nodes, each of which would move it on (the ops
  above, or an elementwise op whose other inputs are constants, the per-channel
  scale of a batch norm), is copied for each reader, so that every copy moves
  and cancels on its own (CSE merges copies that do not).
- A Transpose of a Reshape that moves only size-1 dims is a Reshape (the two
  then merge).

Constant axes and pads only (no Pad `axes` input). Moved transposes must have no
other reader (except where said), so no work is added.
"""

from __future__ import annotations

import numpy as np
from aic.ir import Graph, Node, Value, get_op

from .rewrite import Rewriter, apply_rules, const_array, each_scope
from .simplify_chains import perm_of
from .sink_layout import NOT_SINKABLE

REDUCTIONS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2")


def _fold_into_reduction(rw: Rewriter, node: Node) -> bool:
    x, axes_value = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None
    transpose = rw.producer(x, "Transpose")
    axes = const_array(axes_value)
    if transpose is None or axes is None or axes.size == 0:
        return False
    perm = perm_of(transpose)
    rank = len(perm)
    reduced = sorted({perm[int(a) % rank] for a in axes.reshape(-1)})
    new_axes = rw.const(np.asarray(reduced, np.int64), f"{node.name}_axes")
    inner = rw.op(node.op, transpose.inputs[0], new_axes, name=node.name, **node.attrs)
    if node.attrs["keepdims"]:
        out = rw.op("Transpose", inner, name=node.name, perm=perm)
    else:
        kept = [p for p in perm if p not in reduced]  # x's dims in the order the reduction's result wants them
        order = [sorted(kept).index(p) for p in kept]
        out = inner if order == sorted(order) else rw.op("Transpose", inner, name=node.name, perm=order)
    return replace_output(rw, node, out, "folded Transpose into reduction axes")


def _sink_through_pad(rw: Rewriter, node: Node) -> bool:
    x = node.inputs[0]
    transpose = rw.producer(x, "Transpose")
    pads = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if transpose is None or pads is None or len(node.inputs) > 3 or rw.only_reader(x) is not node:
        return False
    perm = perm_of(transpose)
    rank = len(perm)
    pads = pads.reshape(-1)
    if pads.size != 2 * rank:
        return False
    moved = np.zeros(2 * rank, np.int64)
    for i, p in enumerate(perm):
        moved[p], moved[rank + p] = pads[i], pads[rank + i]
    inputs = [transpose.inputs[0], rw.const(moved, f"{node.name}_pads"), *node.inputs[2:]]
    inner = rw.node("Pad", inputs, node.attrs, name=node.name)[0]
    return replace_output(rw, node, rw.op("Transpose", inner, name=node.name, perm=perm), "sank Transpose through Pad")


def _same_perm_transposes(rw: Rewriter, values: list[Value | None]) -> list[Node] | None:
    movers = [rw.producer(v, "Transpose") for v in values]
    if any(t is None for t in movers) or len({tuple(perm_of(t)) for t in movers}) != 1:  # type: ignore[arg-type]
        return None
    return movers  # type: ignore[return-value]


def _sink_through_concat(rw: Rewriter, node: Node) -> bool:
    movers = _same_perm_transposes(rw, node.inputs)
    if movers is None or any(rw.only_reader(v) is not node for v in node.inputs):  # type: ignore[arg-type]
        return False
    perm = perm_of(movers[0])
    axis = perm[node.attrs["axis"] % len(perm)]
    inner = rw.op("Concat", *[t.inputs[0] for t in movers], name=node.name, axis=axis)
    out = rw.op("Transpose", inner, name=node.name, perm=perm)
    return replace_output(rw, node, out, "sank Transpose through Concat")


def moves_on(rw: Rewriter, reader: Node, t: Value) -> bool:
    """Whether `reader` would move the Transpose giving `t` past itself."""
    if reader.op in REDUCTIONS:
        return len(reader.inputs) > 1 and const_array(reader.inputs[1]) is not None
    if reader.op == "Pad":
        return reader.inputs[0] is t and const_array(reader.inputs[1]) is not None and len(reader.inputs) <= 3
    if reader.op == "Concat":
        return _same_perm_transposes(rw, reader.inputs) is not None
    if reader.op in NOT_SINKABLE or get_op(reader.op).kind != "elementwise" or len(reader.outputs) != 1:
        return False
    if reader.outputs[0].type.shape != t.type.shape:
        return False
    others = [v for v in reader.inputs if v is not None and v is not t]
    return all(const_array(v) is not None and const_array(v).ndim <= t.type.rank for v in others)  # type: ignore[union-attr]


def _copy_per_reader(rw: Rewriter, node: Node) -> bool:
    t = node.outputs[0]
    readers = rw.readers(t)
    if len(readers) < 2 or rw.is_output(t) or not all(moves_on(rw, r, t) for r in readers):
        return False
    if all(r.op in REDUCTIONS for r in readers):
        return False  # the reduction rule needs no copy
    for reader in readers[1:]:
        copy = rw.op("Transpose", node.inputs[0], name=node.name, perm=perm_of(node))
        inputs = [copy if v is t else v for v in reader.inputs]
        outputs = rw.node(reader.op, inputs, reader.attrs, name=reader.name, num_outputs=len(reader.outputs))
        for old, new in zip(reader.outputs, outputs):
            rw.replace(old, new, "copied a Transpose for each reader")
    return True


def _unit_transpose_as_reshape(rw: Rewriter, node: Node) -> bool:
    x, out = node.inputs[0], node.outputs[0]
    shape = out.type.shape
    if rw.producer(x, "Reshape") is None or not all(isinstance(d, int) for d in shape):
        return False
    perm = perm_of(node)
    moved = [p for p in perm if x.type.shape[p] != 1]  # type: ignore[union-attr]
    if moved != sorted(moved):
        return False
    reshape = rw.op("Reshape", x, rw.const(np.asarray(shape, np.int64), f"{node.name}_shape"), name=node.name)
    return replace_output(rw, node, reshape, "Transpose of size-1 dims as Reshape")


def replace_output(rw: Rewriter, node: Node, new: Value, rule: str) -> bool:
    """Replace `node`'s first output by `new` where the types agree."""
    if new.type != node.outputs[0].type:
        return False
    rw.replace(node.outputs[0], new, rule)
    return True


@each_scope
def sink_transpose(graph: Graph) -> bool:
    rules: dict = dict.fromkeys(REDUCTIONS, (_fold_into_reduction,))
    rules["Pad"] = (_sink_through_pad,)
    rules["Concat"] = (_sink_through_concat,)
    rules["Transpose"] = (_unit_transpose_as_reshape, _copy_per_reader)
    return apply_rules(graph, rules)
