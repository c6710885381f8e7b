"""Graph editing shared by the passes.

Passes edit the graph they are given in place and return it. A `Rewriter`
makes the edits of one graph scope safe: new nodes get unique names and
inferred types, value replacement keeps graph output names (see `replace`),
nodes left unused are removed at once, and `finish` restores topological order.
Every rewrite is recorded under a rule name (`note`), which the pass manager
reports.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
from aic.ir import Graph, GraphBuilder, Node, Value
from aic.ir.graph import free_values
from aic.ir.graph_edit import refresh_types

NONDETERMINISTIC = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
)

_notes: ContextVar[Counter[str] | None] = ContextVar("aic_pass_notes", default=None)


@contextmanager
def recording() -> Iterator[Counter[str]]:
    """Collect the rules applied (rule name -> count) while the block runs."""
    notes: Counter[str] = Counter()
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


def note(rule: str, count: int = 1) -> None:
    notes = _notes.get()
    if notes is not None:
        notes[rule] += count


def each_scope(run_one: Callable[..., bool]) -> Callable[..., Graph]:
    """Turn a rewrite of one graph scope into a pass over a graph and all its
    subgraphs (innermost first). `run_one(graph, **options)` returns whether it refined types
    (see `Rewriter.replace`); types are then re-inferred over the whole graph."""

    def scopes(graph: Graph, options: dict[str, Any]) -> bool:
        refined = False
        for node in list(graph.nodes):
            for sub in node.subgraphs():
                refined |= scopes(sub, options)
        return run_one(graph, **options) or refined

    @functools.wraps(run_one)
    def run(graph: Graph, **options: Any) -> Graph:
        if scopes(graph, options):
            refresh_types(graph)
        return graph

    return run


Rule = Callable[["Rewriter", Node], bool]
MAX_SWEEPS = 16


def apply_rules(graph: Graph, rules: dict[str, Sequence[Rule]]) -> bool:
    """Try `rules[node.op]` on every live node (the first that applies wins),
    sweeping the graph (dead nodes removed between sweeps) until a sweep changes nothing. Returns whether types
    must be re-inferred."""
    retype = False
    for _ in range(MAX_SWEEPS):
        rw = Rewriter(graph)
        for node in list(graph.nodes):
            for rule in rules.get(node.op, ()):
                if rw.alive(node) and rule(rw, node):
                    break
        retype |= rw.finish()  # drops the nodes that died, which may enable more rules
        if not rw.changes:
            break
    return retype


def reads(node: Node) -> Iterator[Value]:
    """Values a node reads, through its inputs and its subgraphs."""
    for v in node.inputs:
        if v is not None:
            yield v
    for sub in node.subgraphs():
        yield from free_values(sub)


def value_names(graph: Graph) -> set[str]:
    names = {v.name for v in graph.inputs} | {c.name for c in graph.constants()}
    for node in graph.nodes:
        names.add(node.name)
        names.update(o.name for o in node.outputs)
        for sub in node.subgraphs():
            names |= value_names(sub)
    return names


class Rewriter:
    """Edits one graph scope, keeping use lists current."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.builder = GraphBuilder(graph.name, graph.opset, taken=value_names(graph))
        self.users: dict[int, list[Node]] = graph.consumers()
        self.local: set[int] = {id(o) for n in graph.nodes for o in n.outputs}
        self.dead: set[int] = set()
        self.new_nodes: list[Node] = []
        self.fresh: set[int] = set()  # outputs of new nodes that have not taken a replaced value's name
        self.index = {id(n): i for i, n in enumerate(graph.nodes)}
        self.changes = 0
        self.refined = False

    # --- queries ---------------------------------------------------------------

    def is_output(self, v: Value) -> bool:
        return any(o is v for o in self.graph.outputs)

    def uses(self, v: Value) -> int:
        """Readers of `v` (a node reading it twice counts twice) plus graph output slots."""
        return len(self.users.get(id(v), ())) + sum(o is v for o in self.graph.outputs)

    def readers(self, v: Value) -> list[Node]:
        """Distinct live nodes reading `v`."""
        return list({id(n): n for n in self.users.get(id(v), ()) if id(n) not in self.dead}.values())

    def only_reader(self, v: Value) -> Node | None:
        """The node that is the single use of `v` (not a graph output), else None."""
        users = self.users.get(id(v), ())
        if len(users) == 1 and not self.is_output(v):
            return users[0]
        return None

    def alive(self, node: Node) -> bool:
        return id(node) not in self.dead

    def producer(self, v: Value | None, *ops: str) -> Node | None:
        """The live node of this scope producing `v`, if its op is one of `ops`."""
        if v is None or id(v) not in self.local or v.producer is None:
            return None
        node = v.producer
        return node if node.op in ops and self.alive(node) else None

    # --- building --------------------------------------------------------------

    def node(
        self,
        op: str,
        inputs: Sequence[Value | None],
        attrs: dict[str, Any] | None = None,
        *,
        name: str = "",
        num_outputs: int = 1,
        output_names: Sequence[str] | None = None,
    ) -> list[Value]:
        """Add a node (attributes checked, types inferred); it is placed before
        its first reader when the rewrite finishes."""
        outputs = self.builder.node(op, inputs, attrs, name=name, num_outputs=num_outputs, output_names=output_names)
        node = self.builder.nodes.pop()
        self.graph.nodes.append(node)
        self.new_nodes.append(node)
        for v in reads(node):
            self.users.setdefault(id(v), []).append(node)
        self.local.update(id(o) for o in outputs)
        self.fresh.update(id(o) for o in outputs)
        return outputs

    def op(self, op: str, *inputs: Value | None, name: str = "", **attrs: Any) -> Value:
        return self.node(op, list(inputs), attrs, name=name)[0]

    def const(self, array: np.ndarray | float | int, name: str = "const") -> Value:
        return self.builder.const(np.asarray(array), name)

    # --- replacing ---------------------------------------------------------------

    def can_replace(self, old: Value, new: Value) -> bool:
        """Whether `old` can be replaced by `new` without keeping an Identity
        to carry a graph output name."""
        return not self.is_output(old) or new.is_const or self._renamable(new)

    def _renamable(self, v: Value) -> bool:
        return id(v) in self.local and not self.is_output(v)

    def replace(self, old: Value, new: Value, rule: str, refine: bool = False) -> None:
        """Make every reader of `old` read `new` and record `rule`.

        Graph outputs keep their names: when `old` is a graph output, `new`
        takes its name if `new` is a node output of this graph that is not an
        output already; a constant is copied under the output's name; otherwise
        (a graph input, an outer value, a value that is already an output) an
        Identity node carries the name. Types must be equal, unless `refine`:
        then the shapes may differ in symbolic dims (a constant's static shape
        for symbols, one node's fresh symbols for another's) and `refined` is
        set so that types are re-inferred when the pass ends.
        """
        if old is new:
            return
        if old.type != new.type:
            if not (refine and old.type.dtype == new.type.dtype and old.type.rank == new.type.rank):
                raise AssertionError(f"rule {rule!r}: replacing %{old.name}: {old.type} by %{new.name}: {new.type}")
            self.refined = True
        if self.is_output(old):
            new = self._output_value(old, new)
        elif id(new) in self.fresh and id(old) in self.local:
            old.name, new.name = self.builder.unique(f"{old.name}_replaced"), old.name
        self.fresh.discard(id(new))
        for node in self.users.pop(id(old), []):
            node.inputs = [new if v is old else v for v in node.inputs]
            for sub in node.subgraphs():
                sub.replace_uses(old, new)
            self.users.setdefault(id(new), []).append(node)
        self.graph.outputs = [new if v is old else v for v in self.graph.outputs]
        if new.producer is not None and old.producer is not None and id(old.producer) in self.index:
            self.index.setdefault(id(new.producer), self.index[id(old.producer)])
        note(rule)
        self.changes += 1
        if old.producer is not None and id(old) in self.local:
            self.kill_if_dead(old.producer)

    def _output_value(self, old: Value, new: Value) -> Value:
        name = old.name
        old.name = self.builder.unique(f"{name}_replaced")
        if new.is_const:
            return Value.constant(name, new.const)  # type: ignore[arg-type]
        if self._renamable(new):
            new.name = name
            return new
        carrier = self.node("Identity", [new], name=name)[0]
        carrier.name = name
        return carrier

    def kill_if_dead(self, node: Node) -> None:
        """Remove `node` if none of its outputs is used, then its producers that become unused."""
        work = [node]
        while work:
            node = work.pop()
            if id(node) in self.dead or any(self.uses(o) for o in node.outputs):
                continue
            self.dead.add(id(node))
            for v in reads(node):
                if id(v) in self.users:
                    self.users[id(v)] = [n for n in self.users[id(v)] if n is not node]
                if v.producer is not None and id(v) in self.local:
                    work.append(v.producer)

    def finish(self) -> bool:
        """Drop dead nodes and put the graph back in topological order.
        Returns whether types must be re-inferred (see `replace`)."""
        for node in self.new_nodes:
            self.kill_if_dead(node)
        live = [n for n in self.graph.nodes if id(n) not in self.dead]
        last = len(self.graph.nodes)
        self.graph.nodes = sorted(live, key=lambda n: self.index.get(id(n), last))  # new nodes where they replace
        toposort(self.graph)
        self.new_nodes.clear()
        return self.refined


def toposort(graph: Graph) -> None:
    """Order nodes so that every value is defined before it is read, moving
    as few nodes as possible (a node is pulled up just before its first reader)."""
    produced = {id(o): n for n in graph.nodes for o in n.outputs}
    placed: set[int] = set()
    order: list[Node] = []
    for root in graph.nodes:
        stack: list[tuple[Node, bool]] = [(root, False)]
        on_path: set[int] = set()
        while stack:
            node, expanded = stack.pop()
            if id(node) in placed:
                continue
            if expanded:
                on_path.discard(id(node))
                placed.add(id(node))
                order.append(node)
                continue
            if id(node) in on_path:
                raise ValueError(f"graph {graph.name}: cycle through {node.describe()}")
            on_path.add(id(node))
            stack.append((node, True))
            for v in reversed(list(reads(node))):
                producer = produced.get(id(v))
                if producer is not None and id(producer) not in placed:
                    stack.append((producer, False))
    graph.nodes = order


# --- matching helpers -------------------------------------------------------------


def const_array(v: Value | None) -> np.ndarray | None:
    """The contents of `v` when known at compile time: a constant, or a small
    integer tensor whose symbolic contents are all ints."""
    if v is None:
        return None
    if v.const is not None:
        return v.const
    if v.sym is not None and v.type.is_static and all(isinstance(d, int) for d in v.sym):
        return np.array(v.sym, dtype=v.type.dtype.numpy).reshape(v.type.static_shape)
    return None


def splat(v: Value | None) -> float | None:
    """The single value of a constant whose elements are all equal, else None."""
    array = const_array(v)
    if array is None or array.size == 0:
        return None
    first = array.reshape(-1)[0]
    if not np.all(array == first):
        return None
    return float(first)


def is_splat(v: Value | None, value: float) -> bool:
    return splat(v) == value
