"""Algebraic simplification of elementwise arithmetic.

Rules (x any value, c constants, `k` a folded constant):

- x*1, 1*x, x/1, x+0, 0+x, x-0 -> x (only when the constant does not
  broadcast x to a larger shape; x+0 turns -0.0 into +0.0, which is ignored);
- Neg(Neg(x)) -> x; Reciprocal(Reciprocal(x)) -> x (exact up to rounding);
- Pow(x, 1) -> x, Pow(x, 2) -> x*x, Pow(x, 0.5) -> Sqrt(x), Pow(x, -1) ->
  Reciprocal(x) (Sqrt and Reciprocal for floats), Div(1, x) -> Reciprocal(x);
- constants reassociated and merged when the inner result has no other use:
  (x*c1)*c2, (x/c1)*c2, (x*c1)/c2, (x/c1)/c2 -> x*k (floats; integers only for
  Mul of Mul), and (x±c1)±c2 -> x+k. The merged constant is computed in float64
  and rounded once, so results can differ from the original order in the last
  bit (about 1 ulp).

Assumes every rewritten node is typed by the op table; a rewrite whose result
type would differ from the original's is not applied.
"""

from __future__ import annotations

import numpy as np
from aic.ir import Graph, Node, Value

from .rewrite import Rewriter, apply_rules, const_array, each_scope, is_splat, splat


def _replace(rw: Rewriter, node: Node, new: Value, rule: str) -> bool:
    """Replace the node's output by `new` if their types agree."""
    out = node.outputs[0]
    if new.type != out.type or not rw.can_replace(out, new):
        return False
    rw.replace(out, new, rule)
    return True


def _neutral_operand(rw: Rewriter, node: Node) -> bool:
    a, b = node.inputs
    neutral = 1 if node.op in ("Mul", "Div") else 0
    pairs = [(a, b), (b, a)] if node.op in ("Mul", "Add") else [(a, b)]
    return any(is_splat(c, neutral) and _replace(rw, node, x, f"removed {node.op} by {neutral}") for x, c in pairs)


def _involution(rw: Rewriter, node: Node) -> bool:
    inner = rw.producer(node.inputs[0], node.op)
    return inner is not None and _replace(rw, node, inner.inputs[0], f"cancelled {node.op}({node.op}(x))")


def _pow(rw: Rewriter, node: Node) -> bool:
    x, e = node.inputs
    exponent = splat(e)
    if exponent is None or node.outputs[0].type != x.type:
        return False
    if exponent == 1:
        return _replace(rw, node, x, "Pow(x, 1) -> x")
    if exponent == 2:
        return _replace(rw, node, rw.op("Mul", x, x, name=node.name), "Pow(x, 2) -> x*x")
    if x.type.dtype.is_float and exponent in (0.5, -1):
        op = "Sqrt" if exponent == 0.5 else "Reciprocal"
        return _replace(rw, node, rw.op(op, x, name=node.name), f"Pow(x, {exponent:g}) -> {op}(x)")
    return False


def _reciprocal_div(rw: Rewriter, node: Node) -> bool:
    one, x = node.inputs
    if not (x.type.dtype.is_float and is_splat(one, 1) and node.outputs[0].type == x.type):
        return False
    return _replace(rw, node, rw.op("Reciprocal", x, name=node.name), "Div(1, x) -> Reciprocal(x)")


def _split_const(node: Node) -> tuple[Value, np.ndarray, bool] | None:
    """(x, c, c_is_first) for a binary node with one constant operand."""
    a, b = node.inputs
    ca, cb = const_array(a), const_array(b)
    if cb is not None and ca is None:
        return a, cb, False
    if ca is not None and cb is None:
        return b, ca, True
    return None


def _factor(rw: Rewriter, v: Value, outer: bool) -> tuple[Value, np.ndarray, bool] | None:
    """v = x*c or x/c (or, for the outer node, c*x): (x, c, divides)."""
    node = v.producer if outer else rw.producer(v, "Mul", "Div")
    if node is None or node.op not in ("Mul", "Div") or (not outer and rw.only_reader(v) is None):
        return None
    split = _split_const(node)
    if split is None or (node.op == "Div" and split[2]):
        return None
    return split[0], split[1], node.op == "Div"


def _term(rw: Rewriter, v: Value, outer: bool) -> tuple[Value, np.ndarray, int] | None:
    """v = x+c, c+x or x-c (with a single reader unless outer): (x, c, sign of c)."""
    node = v.producer if outer else rw.producer(v, "Add", "Sub")
    if node is None or node.op not in ("Add", "Sub") or (not outer and rw.only_reader(v) is None):
        return None
    split = _split_const(node)
    if split is None or (node.op == "Sub" and split[2]):
        return None
    return split[0], split[1], -1 if node.op == "Sub" else 1


def _merge_scales(rw: Rewriter, node: Node) -> bool:
    outer = _factor(rw, node.outputs[0], outer=True)
    inner = _factor(rw, outer[0], outer=False) if outer else None
    if outer is None or inner is None:
        return False
    x, c1, div1 = inner
    _, c2, div2 = outer
    dtype = x.type.dtype
    if not dtype.is_float and (div1 or div2):
        return False
    if dtype.is_float:
        k64 = (1 / c1.astype(np.float64) if div1 else c1.astype(np.float64)) * (
            1 / c2.astype(np.float64) if div2 else c2.astype(np.float64)
        )
        k = k64.astype(dtype.numpy)
    else:
        k = np.multiply(c1, c2, dtype=dtype.numpy)
    return _replace(rw, node, rw.op("Mul", x, rw.const(k, "scale"), name=node.name), "merged constant factors")


def _merge_offsets(rw: Rewriter, node: Node) -> bool:
    outer = _term(rw, node.outputs[0], outer=True)
    inner = _term(rw, outer[0], outer=False) if outer else None
    if outer is None or inner is None:
        return False
    x, c1, s1 = inner
    _, c2, s2 = outer
    dtype = x.type.dtype
    if dtype.is_float:
        k = (s1 * c1.astype(np.float64) + s2 * c2.astype(np.float64)).astype(dtype.numpy)
    else:
        with np.errstate(over="ignore"):
            a = c1 if s1 > 0 else np.negative(c1, dtype=dtype.numpy)
            b = c2 if s2 > 0 else np.negative(c2, dtype=dtype.numpy)
            k = np.add(a, b, dtype=dtype.numpy)
    return _replace(rw, node, rw.op("Add", x, rw.const(k, "offset"), name=node.name), "merged constant offsets")


RULES = {
    "Mul": (_neutral_operand, _merge_scales),
    "Div": (_neutral_operand, _reciprocal_div, _merge_scales),
    "Add": (_neutral_operand, _merge_offsets),
    "Sub": (_neutral_operand, _merge_offsets),
    "Neg": (_involution,),
    "Reciprocal": (_involution,),
    "Pow": (_pow,),
}


@each_scope
def simplify_arithmetic(graph: Graph) -> bool:
    return apply_rules(graph, RULES)
