"""Matching composite patterns written with elementwise arithmetic.

Exporters spell the same formula in many orders (0.5*x*(1+erf(x/√2)),
x*0.5*(1+erf(x*0.7071)), ...). Instead of listing orders, a pattern is read
algebraically: `factors` flattens a product into its non-constant factors and
one scalar, `poly` reads a value as a polynomial in a given value with scalar
coefficients. Every node read this way is collected in a `Pattern`, which is
then checked to be self-contained (no intermediate read from outside) before
the root is replaced.
"""

from __future__ import annotations

import math

from aic.ir import Node, Value

from .rewrite import Rewriter, splat

Poly = dict[int, float]
MAX_DEGREE = 6


class Pattern:
    """The nodes of one candidate match, the root last."""

    def __init__(self, rw: Rewriter) -> None:
        self.rw = rw
        self.nodes: dict[int, Node] = {}

    def add(self, node: Node) -> None:
        self.nodes[id(node)] = node

    def producer(self, v: Value | None, *ops: str) -> Node | None:
        node = self.rw.producer(v, *ops)
        if node is not None:
            self.add(node)
        return node

    def closed(self, root: Node) -> bool:
        """Whether only the pattern reads its intermediate values."""
        rw = self.rw
        for node in self.nodes.values():
            if node is root:
                continue
            for out in node.outputs:
                if rw.is_output(out) or any(id(r) not in self.nodes for r in rw.readers(out)):
                    return False
        return True


def close(a: float, b: float, rtol: float = 1e-4) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=rtol * 1e-3)


def poly_close(p: Poly, q: Poly, rtol: float = 1e-4) -> bool:
    keys = set(p) | set(q)
    return all(close(p.get(k, 0.0), q.get(k, 0.0), rtol) for k in keys)


def factors(pattern: Pattern, v: Value, root: bool = True) -> tuple[list[Value], float]:
    """v = scale * product(values), through Mul, Neg and Div by a constant
    (and below the root only through values with no other reader)."""
    if not root and pattern.rw.only_reader(v) is None:
        return [v], 1.0
    node = pattern.producer(v, "Mul", "Div", "Neg")
    if node is None:
        return [v], 1.0
    if node.op == "Neg":
        values, scale = factors(pattern, node.inputs[0], False)  # type: ignore[arg-type]
        return values, -scale
    a, b = node.inputs
    sb = splat(b)
    if node.op == "Div":
        if not sb:
            pattern.nodes.pop(id(node))
            return [v], 1.0
        values, scale = factors(pattern, a, False)  # type: ignore[arg-type]
        return values, scale / sb
    values, scale = [], 1.0
    for operand in (a, b):
        s = splat(operand)
        if s is not None:
            scale *= s
        else:
            more, k = factors(pattern, operand, False)  # type: ignore[arg-type]
            values += more
            scale *= k
    return values, scale


def poly(pattern: Pattern, v: Value | None, x: Value) -> Poly | None:
    """v as a polynomial in x with scalar coefficients (Add, Sub, Mul, Neg,
    Div by a constant, Pow by a small integer), else None."""
    if v is x:
        return {1: 1.0}
    s = splat(v)
    if s is not None:
        return {0: s}
    node = pattern.producer(v, "Add", "Sub", "Mul", "Div", "Neg", "Pow")
    if node is None:
        return None
    if node.op == "Neg":
        p = poly(pattern, node.inputs[0], x)
        return None if p is None else {k: -c for k, c in p.items()}
    a, b = node.inputs
    if node.op in ("Div", "Pow"):
        e = splat(b)
        p = poly(pattern, a, x)
        if p is None or not e:
            return None
        if node.op == "Div":
            return {k: c / e for k, c in p.items()}
        if e != int(e) or not 0 < e <= MAX_DEGREE:
            return None
        out: Poly = {0: 1.0}
        for _ in range(int(e)):
            out = _times(out, p)  # type: ignore[assignment]
        return out
    p, q = poly(pattern, a, x), poly(pattern, b, x)
    if p is None or q is None:
        return None
    if node.op == "Mul":
        return _times(p, q)
    sign = 1.0 if node.op == "Add" else -1.0
    return {k: p.get(k, 0.0) + sign * q.get(k, 0.0) for k in set(p) | set(q)}


def _times(p: Poly, q: Poly) -> Poly | None:
    out: Poly = {}
    for i, a in p.items():
        for j, b in q.items():
            if i + j > MAX_DEGREE:
                return None
            out[i + j] = out.get(i + j, 0.0) + a * b
    return out


def find(pattern: Pattern, v: Value | None, ops: tuple[str, ...], depth: int = 4) -> Node | None:
    """The first node with an op in `ops` upstream of v through arithmetic ops (not collected)."""
    node = pattern.rw.producer(v, *ops, "Add", "Sub", "Mul", "Div", "Neg")
    if node is None or depth == 0:
        return None
    if node.op in ops:
        return node
    for operand in node.inputs:
        found = find(pattern, operand, ops, depth - 1)
        if found is not None:
            return found
    return None
