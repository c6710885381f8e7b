"""Fusion: group graph nodes into kernels.

Groups grow backwards from a root (the last node of a kernel) by pulling in producers:

- compute producers (elementwise, movement, gathers) are inlined into their consumers,
  so an elementwise chain of any length is one kernel;
- one anchor per kernel (a contraction, reduction or normalization): its elementwise
  consumers of the same shape become its epilogue (bias, activation, residual add), and
  anchors that allow it take elementwise producers as a prologue (LayerNorm(x + r),
  Softmax(x * s + mask)); anchors that read their inputs many times may still take
  index-only producers (`views`: the Transposes and Slices that split q, k, v for attention),
  so those are read in place instead of copied by kernels of their own.

A producer joins only if every reader of its outputs is in the group and none is a graph
output, so each kernel writes just its root's outputs and groups stay acyclic. Alias ops
(Reshape, Squeeze, ...) are never fused: they become views of their input's bytes.
Control-flow nodes (If, Loop, Scan) are groups of their own: their bodies are fused
separately when the node is lowered (compiler/control.py). A Concat placed in the arena
(compiler/placement.py) is a group of its own that pulls in no producers and joins no
consumer: its inputs are written into its buffer by their own kernels.

A kernel's expression tree is at most MAX_DEPTH producers deep: a longer chain is cut
into several kernels, so lowering (which builds the tree recursively) stays within
Python's recursion limit on graphs of any depth.

Refused fusions are logged with the reason (logger "aic.fusion"; printed with AIC_DEBUG>=2).
"""

from __future__ import annotations

import heapq
import logging
import os
import sys
from dataclasses import dataclass, field

from aic.ir.graph import Graph, Node, Value

from .lower.table import Lowering, check_lowerable, lowering_of

log = logging.getLogger("aic.fusion")

MAX_DEPTH = 64  # producers on the longest path from a kernel's root to its inputs


@dataclass(eq=False)
class Group:
    """Nodes lowered together, in topological order; the last is the root."""

    nodes: list[Node]
    anchor: Node | None = None
    alias: bool = False
    control: bool = False
    refusals: list[str] = field(default_factory=list)
    views: set[int] = field(default_factory=set)  # the views anchor and its fused producers (index-only)

    @property
    def root(self) -> Node:
        return self.nodes[-1]

    def inputs(self) -> list[Value]:
        """Values read by the group and produced outside it, in first-use order."""
        inside = {id(o) for n in self.nodes for o in n.outputs}
        seen: dict[int, Value] = {}
        for n in self.nodes:
            for v in n.inputs:
                if v is not None and id(v) not in inside:
                    seen.setdefault(id(v), v)
        return list(seen.values())

    def describe(self) -> str:
        return "+".join(n.op for n in self.nodes)


def fuse(graph: Graph, placed: frozenset[int] | set[int] = frozenset()) -> list[Group]:
    """Partition the graph's nodes into groups, in an order that respects dependencies; the
    nodes whose ids are in `placed` (Concats by placement) stay alone."""
    check_lowerable(list(graph.walk()))  # bodies too, so every unsupported op is listed at once
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    readers = graph.consumers()
    outputs = {id(v) for v in graph.outputs}
    owner: dict[int, Group] = {}
    groups: list[Group] = []
    for node in reversed(graph.nodes):
        if id(node) in owner:
            continue
        kind = lowering_of(node).kind
        group = Group([node], node if kind == "anchor" else None, alias=kind == "alias", control=kind == "control")
        owner[id(node)] = group
        if kind in ("compute", "anchor") and id(node) not in placed:
            _grow(group, order, readers, outputs, owner, placed)
        groups.append(group)
    groups.reverse()
    _report(groups)
    return groups


def _grow(group: Group, order: dict[int, int], readers, outputs: set[int], owner: dict[int, Group],
          placed: frozenset[int] | set[int]) -> None:
    root = group.root
    members = {id(root)}
    depth = {id(root): 0}  # longest path to the root inside the group
    heap: list[tuple[int, int, Node]] = []
    pushed: set[int] = set()

    def push_producers(node: Node) -> None:
        for v in node.inputs:
            p = v.producer if v is not None else None
            if p is not None and id(p) in order and id(p) not in pushed and id(p) not in owner:
                pushed.add(id(p))
                heapq.heappush(heap, (-order[id(p)], id(p), p))

    if lowering_of(root).views:
        group.views.add(id(root))
    push_producers(root)
    while heap:
        _, _, cand = heapq.heappop(heap)
        reason = _refusal(cand, group, members, readers, outputs)
        if id(cand) in placed:
            reason = "it is placed: its inputs write into its buffer, which is read in place"
        if reason is None:
            # every reader of cand is a member already (else refused), so its depth is final
            level = 1 + max(depth[id(r)] for o in cand.outputs for r in readers.get(id(o), []))
            if level > MAX_DEPTH:
                reason = f"the kernel's expression is already {MAX_DEPTH} producers deep"
        if reason is not None:
            into = f"{root.op} '{root.name}'"
            group.refusals.append(f"{cand.op} '{cand.name}' not fused into {into}: {reason}")
            continue
        members.add(id(cand))
        depth[id(cand)] = level
        owner[id(cand)] = group
        group.nodes.append(cand)
        if lowering_of(cand).kind == "anchor":
            group.anchor = cand
        if lowering_of(cand).views or any(id(r) in group.views for o in cand.outputs for r in readers.get(id(o), [])):
            group.views.add(id(cand))
        push_producers(cand)
    group.nodes.sort(key=lambda n: order[id(n)])


def _refusal(cand: Node, group: Group, members: set[int], readers, outputs: set[int]) -> str | None:
    """Why `cand` may not join `group`, or None when it may."""
    low = lowering_of(cand)
    if low.kind == "alias":
        return "alias ops are views, never fused"
    if low.kind == "control":
        return "control flow runs as a step of its own"
    for out in cand.outputs:
        if id(out) in outputs:
            return f"its output {out.name} is a graph output"
        for r in readers.get(id(out), []):
            if id(r) not in members:
                return f"its output {out.name} is also read by {r.op} '{r.name}' outside the kernel"
    users = [n for n in group.nodes if any(v is not None and v.producer is cand for v in n.inputs)]
    if low.kind == "anchor":
        return _anchor_refusal(cand, low, group)
    for user in users:
        ulow = lowering_of(user)
        if id(user) in group.views:
            if not low.cheap:
                return f"only index-only producers (Transpose, Slice) fuse into the inputs of {group.anchor.op}"
            continue
        if ulow.kind == "anchor" and not ulow.prologue:
            return f"{user.op} reads its inputs many times and needs them materialized"
        if ulow.kind == "anchor" and not low.elementwise and not low.cheap:
            return f"only elementwise producers fuse into {user.op}"
        if not low.cheap and _numel(cand.outputs[0]) < _numel(user.outputs[0]):
            return f"{user.op} broadcasts it, so it would be recomputed per use"
    return None


def _anchor_refusal(cand: Node, low: Lowering, group: Group) -> str | None:
    if group.anchor is not None:
        return f"the kernel already has the anchor {group.anchor.op} '{group.anchor.name}'"
    if not low.epilogue:
        return f"{cand.op} takes no fused epilogue"
    shape = cand.outputs[0].type.shape
    downstream = _downstream(cand, group)
    tainted = {id(cand)} | {id(n) for n in downstream}
    for n in downstream:
        if not lowering_of(n).elementwise:
            return f"its consumer {n.op} '{n.name}' is not elementwise"
        if n.outputs[0].type.shape != shape:
            return f"its consumer {n.op} '{n.name}' changes the shape {list(shape)}"
        for v in n.inputs:
            if v is not None and id(v.producer) in tainted and v.type.shape != shape:
                return f"{n.op} '{n.name}' broadcasts a value computed from it"
    for i, out in enumerate(cand.outputs[1:], 1):
        if any(v is out for n in group.nodes for v in n.inputs):
            return f"its output {i} is read in the kernel; only output 0 feeds an epilogue"
    return None


def _downstream(anchor: Node, group: Group) -> list[Node]:
    """Group nodes that depend on `anchor`."""
    tainted = {id(o) for o in anchor.outputs}
    found: dict[int, Node] = {}
    changed = True
    while changed:
        changed = False
        for n in group.nodes:
            if id(n) not in found and any(v is not None and id(v) in tainted for v in n.inputs):
                found[id(n)] = n
                tainted.update(id(o) for o in n.outputs)
                changed = True
    return list(found.values())


def _numel(v: Value) -> int:
    n = 1
    for d in v.type.shape:
        n *= d if isinstance(d, int) else 1
    return n


def _report(groups: list[Group]) -> None:
    verbose = int(os.environ.get("AIC_DEBUG", "0") or 0) >= 2
    for g in groups:
        for why in g.refusals:
            log.debug(why)
            if verbose:
                print(f"[aic.fusion] {why}", file=sys.stderr)
        if verbose and not g.alias and not g.control:
            print(f"[aic.fusion] kernel {g.describe()}", file=sys.stderr)
