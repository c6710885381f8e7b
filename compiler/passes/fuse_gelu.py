"""GELU recognition: the exported formulas become one Gelu op.

- erf form, approximate='none': x * 0.5 * (1 + erf(x / sqrt(2))), in any
  order of the products, with x/sqrt(2) or x*0.7071..., the 0.5 anywhere in the
  product or as a division by 2, and 0.5 + 0.5*erf(...);
- tanh form, approximate='tanh': 0.5 * x * (1 + tanh(sqrt(2/pi) * (x +
  0.044715 * x^3))), with x^3 as Pow(x, 3) or products, or the polynomial
  expanded (x*0.79788 + x^3*0.035677).

The formula is read algebraically (see `match`): constants must agree with
the exact ones to 1e-4 (1e-3 for the tanh polynomial, whose constants exporters
round). Assumes the intermediate values have no reader outside the pattern
(otherwise it is left alone) and that the constants do not broadcast x to a
larger shape (checked by type).
"""

from __future__ import annotations

import math

from aic.ir import Graph, Node

from .match import Pattern, factors, find, poly, poly_close
from .rewrite import Rewriter, apply_rules, each_scope

ERF_ARG = {1: 1 / math.sqrt(2)}
TANH_ARG = {1: math.sqrt(2 / math.pi), 3: 0.044715 * math.sqrt(2 / math.pi)}


def _gelu(rw: Rewriter, node: Node) -> bool:
    root = node.outputs[0]
    found = Pattern(rw)
    values, scale = factors(found, root)
    if len(values) != 2:
        return False
    for x, t in (values, values[::-1]):
        pattern = Pattern(rw)
        pattern.nodes = dict(found.nodes)
        e = find(pattern, t, ("Erf", "Tanh"))
        if e is None:
            continue
        pattern.add(e)
        affine, arg = poly(pattern, t, e.outputs[0]), poly(pattern, e.inputs[0], x)
        if affine is None or arg is None or not poly_close({k: scale * c for k, c in affine.items()}, {0: 0.5, 1: 0.5}):
            continue
        if e.op == "Erf" and poly_close(arg, ERF_ARG):
            approximate = "none"
        elif e.op == "Tanh" and poly_close(arg, TANH_ARG, 1e-3):
            approximate = "tanh"
        else:
            continue
        if x.type != root.type or not pattern.closed(node):
            continue
        rw.replace(root, rw.op("Gelu", x, name=node.name, approximate=approximate), f"recognised Gelu ({approximate})")
        return True
    return False


@each_scope
def fuse_gelu(graph: Graph) -> bool:
    return apply_rules(graph, {"Mul": (_gelu,), "Div": (_gelu,)})
