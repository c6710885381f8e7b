"""The lowering table: one `Lowering` per op name.

Three kinds of lowering:

- ``compute``: the op's outputs are expressions of its inputs' elements (elementwise
  ops, movement, gathers). They fuse freely: a consumer inlines them. `root` may give
  a better loop structure for when the op is the last node of its kernel (Concat, Split).
- ``anchor``: the op needs loops of its own (reductions, contractions, normalizations).
  It writes each output element through an `Emit` callback, which applies the fused
  elementwise epilogue and stores. A kernel holds at most one anchor.
- ``alias``: the output is the input's bytes under another shape (Reshape, Squeeze, ...):
  no kernel, no copy.
- ``control``: If, Loop, Scan: their bodies are lowered on their own and run as program
  steps around the body kernels (compiler/control.py).

Ops whose output sizes depend on the data (NonZero, Unique, ...) register a `Dynamic`
lowering (compiler/lower/dynamic.py): a kernel of its own that writes each output into a
buffer of a static upper-bound shape and stores the actual sizes at run time. It is used
for a node whose outputs have data-dependent (symbolic) dims, or for an op with no other
lowering; to fusion it is an anchor that takes neither prologue nor epilogue.

Ops that cannot be lowered are registered as ``refused`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aic.ir.graph import Node, Value
from aic.ir.loop import Expr, Stmt
from aic.ir.ops.registry import get_op
from aic.ir.types import TensorType

from .core import ComputeTensor, LowerCtx, LoweringError, Tensor, node_error


class Emit(Protocol):
    """Writes element `index` of the anchor's output `i` (after the fused epilogue)."""

    def __call__(self, i: int, index: list[Expr], value: Expr) -> Stmt: ...

    def needed(self, i: int) -> bool: ...


ComputeFn = Callable[[LowerCtx, Node, list[Tensor | None]], list[Tensor]]
AnchorFn = Callable[[LowerCtx, Node, list[Tensor | None], Emit], Stmt]


@dataclass(frozen=True)
class Dynamic:
    """A whole-kernel lowering of a node whose outputs have data-dependent sizes."""

    bounds: Callable[[Node], list[tuple[int, ...]]]  # a static upper-bound shape per output
    lower: Callable[..., Stmt]  # (ctx, node, inputs, output buffers, sizes) -> the kernel body; see dynamic.py


@dataclass(frozen=True)
class Lowering:
    kind: str  # "compute" | "anchor" | "alias" | "control" | "refused"
    fn: Callable | None = None
    root: AnchorFn | None = None  # compute ops: loop structure used when the op ends its kernel
    elementwise: bool = False  # compute: output element i reads inputs only at broadcast(i)
    cheap: bool = False  # compute: index arithmetic only, fine to recompute under broadcast
    prologue: bool = False  # anchor: inputs may be fused compute producers
    views: bool = False  # anchor: inputs may be fused index-only producers (Transpose, Slice: `cheap` ones)
    epilogue: bool = True  # anchor: elementwise consumers of output 0 may fuse
    reason: str = ""  # refused: why
    dynamic: Dynamic | None = None  # an anchor with data-dependent output sizes


LOWERINGS: dict[str, Lowering] = {}
DYNAMIC: dict[str, Lowering] = {}  # op -> its lowering for data-dependent output sizes


def _add(name: str, lowering: Lowering) -> None:
    if name in LOWERINGS:
        raise ValueError(f"lowering for {name} registered twice")
    LOWERINGS[name] = lowering


def compute(*names: str, elementwise: bool = False, cheap: bool = False, root: AnchorFn | None = None):
    def deco(fn: ComputeFn) -> ComputeFn:
        for name in names:
            _add(name, Lowering("compute", fn, root, elementwise=elementwise, cheap=cheap))
        return fn

    return deco


def anchor(*names: str, prologue: bool = False, epilogue: bool = True, views: bool = False):
    def deco(fn: AnchorFn) -> AnchorFn:
        for name in names:
            _add(name, Lowering("anchor", fn, prologue=prologue, epilogue=epilogue, views=views))
        return fn

    return deco


def alias(*names: str) -> None:
    for name in names:
        _add(name, Lowering("alias"))


def control(*names: str) -> None:
    for name in names:
        _add(name, Lowering("control"))


def refuse(reason: str, *names: str) -> None:
    for name in names:
        _add(name, Lowering("refused", reason=reason))


def dynamic(*names: str, bounds: Callable[[Node], list[tuple[int, ...]]]):
    def deco(fn: Callable[..., Stmt]) -> Callable[..., Stmt]:
        for name in names:
            if name in DYNAMIC:
                raise ValueError(f"dynamic lowering for {name} registered twice")
            DYNAMIC[name] = Lowering("anchor", prologue=False, epilogue=False, dynamic=Dynamic(bounds, fn))
        return fn

    return deco


def lookup(node: Node) -> Lowering | None:
    """The node's lowering, None if there is none (no error)."""
    dyn = DYNAMIC.get(node.op)
    if dyn is not None and (node.op not in LOWERINGS or any(not o.type.is_static for o in node.outputs)):
        return dyn
    return LOWERINGS.get(node.op)


def lowering_of(node: Node) -> Lowering:
    """The node's lowering; raises a LoweringError for refused or unknown ops."""
    low = lookup(node)
    if low is None:
        raise node_error(node, f"no loop-IR lowering for op {node.op}")
    if low.kind == "refused":
        raise node_error(node, low.reason)
    return low


def activate(ctx: LowerCtx, op: str, v: Expr) -> Expr:
    """The elementwise op `op` (one input, default attributes) of `v`, by that op's own lowering."""
    node = Node(op, [None], [Value(op, TensorType(v.dtype, ()))], get_op(op).check_attrs({}), name=op)
    fn = lowering_of(node).fn
    assert fn is not None
    return fn(ctx, node, [ComputeTensor((), v.dtype, lambda i: v)])[0].at([])


def check_lowerable(nodes: list[Node]) -> None:
    """Raise one error listing every op that cannot be lowered, with counts."""
    problems: dict[str, list[Node]] = {}
    for node in nodes:
        low = lookup(node)
        if low is None or low.kind == "refused":
            problems.setdefault(node.op, []).append(node)
    if problems:
        lines = []
        for op, bad in sorted(problems.items()):
            low = LOWERINGS.get(op)
            why = low.reason if low is not None else "no loop-IR lowering"
            lines.append(f"  {op} x{len(bad)} (e.g. node '{bad[0].name}'): {why}")
        raise LoweringError("cannot lower the graph to loop IR:\n" + "\n".join(lines))
