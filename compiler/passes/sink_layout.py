"""Transpose and Reshape sinking through elementwise ops, so that pairs meet and cancel.

- op(Transpose(a, p), Transpose(b, p), c...) -> Transpose(op(a, b, c'...), p)
  for an elementwise op whose other inputs are constants (c' is c broadcast
  to the rank and permuted by the inverse of p; scalars are kept);
- op(Reshape(a, s), Reshape(b, s'), k...) -> Reshape(op(a, b, k...), s) when
  a, b have one shape and the reshapes give one shape, the other inputs
  being scalar constants;
- then, as in `simplify_chains`, Transpose(Transpose) composes or cancels and
  a reshape-like op of a reshape-like op collapses: Transpose -> Relu ->
  inverse Transpose leaves Relu alone.

Only when each moved Transpose/Reshape is read by that op alone and the op's
output has the moved op's output shape (no broadcast to a larger tensor), so
no work is added. BatchNormalization (per-channel, not broadcasting) and
CastLike are not sunk through; nor ops with several outputs. Assumes
elementwise ops apply numpy broadcasting to all their inputs.
"""

from __future__ import annotations

import numpy as np
from aic.ir import OPS, Graph, Node, Value, get_op

from .rewrite import Rewriter, Rule, apply_rules, const_array, each_scope
from .simplify_chains import RULES as CHAIN_RULES
from .simplify_chains import perm_of

NOT_SINKABLE = frozenset({"BatchNormalization", "CastLike"})


def _sinkable(node: Node) -> bool:
    return len(node.outputs) == 1 and node.op not in NOT_SINKABLE and get_op(node.op).kind == "elementwise"


def _moved(rw: Rewriter, node: Node, v: Value | None, op: str) -> Node | None:
    mover = rw.producer(v, op)
    if mover is None or rw.is_output(v) or any(r is not node for r in rw.users.get(id(v), ())):  # type: ignore[arg-type]
        return None
    return mover


def _sink_transpose(rw: Rewriter, node: Node) -> bool:
    if not _sinkable(node):
        return False
    movers = [_moved(rw, node, v, "Transpose") for v in node.inputs]
    perms = {tuple(perm_of(t)) for t in movers if t is not None}
    if len(perms) != 1:
        return False
    perm = list(perms.pop())
    inverse = list(np.argsort(perm))
    rank = len(perm)
    first = next(t for t in movers if t is not None)
    if node.outputs[0].type.shape != first.outputs[0].type.shape:
        return False
    inputs: list[Value | None] = []
    for v, t in zip(node.inputs, movers):
        c = const_array(v)
        if t is not None:
            inputs.append(t.inputs[0])
        elif v is None or (c is not None and c.size == 1):
            inputs.append(v)
        elif c is not None and c.ndim <= rank:
            full = c.reshape((1,) * (rank - c.ndim) + c.shape)
            inputs.append(rw.const(np.ascontiguousarray(np.transpose(full, inverse)), f"{v.name}_t"))
        else:
            return False
    inner = rw.node(node.op, inputs, node.attrs, name=node.name)[0]
    return _replace(rw, node, rw.op("Transpose", inner, name=node.name, perm=perm), "sank Transpose")


def _sink_reshape(rw: Rewriter, node: Node) -> bool:
    if not _sinkable(node):
        return False
    movers = [_moved(rw, node, v, "Reshape") for v in node.inputs]
    present = [r for r in movers if r is not None]
    if not present or node.outputs[0].type.shape != present[0].outputs[0].type.shape:
        return False
    if len({r.inputs[0].type.shape for r in present}) != 1 or len({r.outputs[0].type.shape for r in present}) != 1:  # type: ignore[union-attr]
        return False
    inputs: list[Value | None] = []
    for v, r in zip(node.inputs, movers):
        c = const_array(v)
        if r is None and v is not None and (c is None or c.size != 1):
            return False
        inputs.append(r.inputs[0] if r is not None else v)
    inner = rw.node(node.op, inputs, node.attrs, name=node.name)[0]
    if inner.type.shape != present[0].inputs[0].type.shape:  # type: ignore[union-attr]
        return False
    shape, allowzero = present[0].inputs[1], present[0].attrs["allowzero"]
    return _replace(rw, node, rw.op("Reshape", inner, shape, name=node.name, allowzero=allowzero), "sank Reshape")


def _replace(rw: Rewriter, node: Node, new: Value, rule: str) -> bool:
    out = node.outputs[0]
    if new.type != out.type:
        return False
    rw.replace(out, new, rule)
    return True


def _sink(rw: Rewriter, node: Node) -> bool:
    return _sink_transpose(rw, node) or _sink_reshape(rw, node)


def _rules() -> dict[str, tuple[Rule, ...]]:
    """Sinking for every elementwise op, and the chain rules."""
    rules: dict[str, tuple[Rule, ...]] = {
        name: (_sink,) for name, op in OPS.items() if op.kind == "elementwise" and name not in NOT_SINKABLE
    }
    for op, chain in CHAIN_RULES.items():
        rules[op] = (*chain, *rules.get(op, ()))
    return rules


@each_scope
def sink_layout(graph: Graph) -> bool:
    return apply_rules(graph, _rules())
