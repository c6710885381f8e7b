"""Concat by placement: a Concat's inputs are written straight into their slabs of its buffer.

A Concat along `axis` whose output has only ones before `axis` (batch-1 channel concats of
CNNs: SqueezeNet's fire modules, Inception's branches, DenseNet's blocks, UNet's skips, YOLO's
SPPF) stores each input as one contiguous run of its output. Such a Concat becomes no kernel:
its output gets an arena slot, each input's bytes are placed at its slab's byte offset inside
that slot (an offset view), and the kernel producing the input writes there as it would write
any buffer. Readers of an input elsewhere read the same bytes in place.

A Concat keeps its copy kernel when any of these holds (decided for the whole Concat):
- its output or an input has a symbolic or data-dependent dim (offsets not known at compile time),
  or elements before `axis` (the slabs would be strided);
- its output is (a view of) a graph output (it lives in the caller's buffer);
- an input is (a view of) a graph input, a constant, a graph output, a control-flow result or a
  value with data-dependent sizes (not written by a kernel of this scope into an arena slot);
- an input appears twice in it, or is already placed in another Concat (bytes have one place);
- an input's element type differs from the output's, or an input is a view of a value with a
  different element count.

Concats are decided from the graph's end backwards, so a placed Concat's output can itself be an
input of a later placed Concat (nested slabs: Inception's 1x3/3x1 pairs inside a block's concat).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aic.ir.graph import Graph, Node, Value

from .lower.table import LOWERINGS
from .storage import view_base


@dataclass
class Placement:
    """The placed Concats, each with the values written into its buffer and their byte offsets."""

    concats: list[tuple[Node, list[tuple[Value, int]]]] = field(default_factory=list)  # from the graph's end back
    placed: set[int] = field(default_factory=set)  # ids of the values placed

    @property
    def node_ids(self) -> set[int]:
        return {id(c) for c, _ in self.concats}


def plan_placement(graph: Graph, align: int = 1) -> Placement:
    """The Concats of `graph` whose inputs can be written into their output in place, each slab at
    a byte offset that is a multiple of `align`."""
    outputs = {id(view_base(v)) for v in graph.outputs}
    inputs = {id(v) for v in graph.inputs}
    placement = Placement()
    for node in reversed(graph.nodes):
        if node.op != "Concat":
            continue
        slabs = _slabs(node, outputs, inputs, placement)
        if slabs is None or any(offset % align for _, offset in slabs):
            continue
        placement.concats.append((node, slabs))
        placement.placed.update(id(base) for base, _ in slabs)
    return placement


def _slabs(node: Node, outputs: set[int], inputs: set[int], placement: Placement) -> list[tuple[Value, int]] | None:
    """(value written, byte offset in the output) per input of Concat `node` (the values its inputs
    view), or None if it keeps its copy."""
    out = node.outputs[0]
    shape = out.type.shape
    if not out.type.is_static or id(view_base(out)) in outputs or not shape:
        return None
    axis = node.attrs.get("axis", 0) % len(shape)
    if any(d != 1 for d in shape[:axis]):
        return None
    row = out.type.dtype.itemsize
    for d in shape[axis + 1 :]:
        row *= d
    slabs, seen, at = [], set(), 0
    for v in node.inputs:
        if v is None:
            continue
        base = view_base(v)
        if not _writable(v, base, out, outputs, inputs, placement) or id(base) in seen:
            return None
        seen.add(id(base))
        if v.type.shape[axis]:
            slabs.append((base, at * row))
        at += v.type.shape[axis]
    return slabs


def _writable(v: Value, base: Value, out: Value, outputs: set[int], inputs: set[int], placement: Placement) -> bool:
    """Whether a kernel of this scope writes `base` (which input `v` views) into an arena slot that can be moved."""
    producer = base.producer
    if producer is None or base.const is not None or id(base) in inputs or id(base) in outputs:
        return False
    if not (v.type.is_static and base.type.is_static) or len({v.type.dtype, base.type.dtype, out.type.dtype}) > 1:
        return False
    if v.type.numel != base.type.numel or id(base) in placement.placed:
        return False
    low = LOWERINGS.get(producer.op)
    return low is not None and low.kind in ("compute", "anchor") and low.dynamic is None

