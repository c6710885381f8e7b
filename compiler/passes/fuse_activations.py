"""SiLU/Swish and HardSwish recognition.

- x * Sigmoid(x) -> Swish(x) and x * Sigmoid(alpha * x) -> Swish(x, alpha)
  (ONNX Swish, opset 24: x * sigmoid(alpha * x));
- x * HardSigmoid(x, alpha=1/6, beta=0.5) and x * Clip(x + 3, 0, 6) / 6 (the
  relu6 spelling, the 1/6 anywhere in the product) -> HardSwish(x).

Constants must match to 1e-4 relative. Assumes the intermediates have no
reader outside the pattern.
"""

from __future__ import annotations

from aic.ir import Graph, Node, Value

from .match import Pattern, close, factors, poly, poly_close
from .rewrite import Rewriter, apply_rules, each_scope, is_splat


def _replace(rw: Rewriter, p: Pattern, node: Node, x: Value, op: str, **attrs: float) -> bool:
    out = node.outputs[0]
    if x.type != out.type or not p.closed(node):
        return False
    rw.replace(out, rw.op(op, x, name=node.name, **attrs), f"recognised {op}")
    return True


def _swish(rw: Rewriter, node: Node) -> bool:
    for x, s in (node.inputs, node.inputs[::-1]):
        p = Pattern(rw)
        p.add(node)
        sig = p.producer(s, "Sigmoid")
        arg = poly(p, sig.inputs[0], x) if sig is not None else None  # type: ignore[arg-type]
        if arg is None or set(arg) != {1}:
            continue
        if _replace(rw, p, node, x, "Swish", alpha=arg[1]):  # type: ignore[arg-type]
            return True
    return False


def _hard_swish(rw: Rewriter, node: Node) -> bool:
    found = Pattern(rw)
    values, scale = factors(found, node.outputs[0])
    if len(values) != 2:
        return False
    for x, h in (values, values[::-1]):
        p = Pattern(rw)
        p.nodes = dict(found.nodes)
        gate = p.producer(h, "HardSigmoid", "Clip")
        if gate is None:
            continue
        if gate.op == "HardSigmoid":
            alpha, beta = gate.attrs["alpha"], gate.attrs["beta"]
            ok = gate.inputs[0] is x and close(scale, 1) and close(alpha, 1 / 6) and close(beta, 0.5)
        else:
            arg = poly(p, gate.inputs[0], x)
            bounds = [*gate.inputs[1:], None, None][:2]
            ok = arg is not None and poly_close(arg, {0: 3.0, 1: 1.0}) and close(scale, 1 / 6)
            ok = ok and is_splat(bounds[0], 0) and is_splat(bounds[1], 6)
        if ok and _replace(rw, p, node, x, "HardSwish"):
            return True
    return False


@each_scope
def fuse_activations(graph: Graph) -> bool:
    return apply_rules(graph, {"Mul": (_swish, _hard_swish), "Div": (_hard_swish,)})
