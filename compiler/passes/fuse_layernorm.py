"""LayerNormalization recognition.

    mean = ReduceMean(x, axes)            d = Sub(x, mean)
    var  = ReduceMean(Pow(d, 2) | Mul(d, d), axes)
    std  = Sqrt(Add(var, eps)) | Pow(Add(var, eps), 0.5)
    n    = Div(d, std) | Mul(d, Reciprocal(std))
    y    = Add(Mul(n, gamma), beta)       (gamma and beta optional, either order)

becomes LayerNormalization(x, gamma, beta, axis, epsilon) when `axes` are the
trailing axes [axis, ..., rank-1] (keepdims=1), eps is a scalar constant and
gamma/beta broadcast to the normalized shape x.shape[axis:] (a missing gamma
becomes a constant of ones, so the normalized shape must then be static).
Assumes the intermediates have no reader outside the pattern.
"""

from __future__ import annotations

import numpy as np
from aic.ir import Graph, Node, Value

from .match import Pattern
from .rewrite import Rewriter, apply_rules, const_array, each_scope, is_splat


def _trailing_axes(node: Node, rank: int) -> int | None:
    """The first axis if the ReduceMean reduces exactly the trailing axes with keepdims."""
    axes = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
    if axes is None or not node.attrs["keepdims"] or axes.size == 0:
        return None
    axes = sorted(int(a) % rank for a in axes.reshape(-1))
    return axes[0] if axes == list(range(axes[0], rank)) else None


def _std(p: Pattern, v: Value | None) -> tuple[Value, float] | None:
    """(var, eps) for v = sqrt(var + eps)."""
    root = p.producer(v, "Sqrt", "Pow")
    if root is None or (root.op == "Pow" and not is_splat(root.inputs[1], 0.5)):
        return None
    add = p.producer(root.inputs[0], "Add")
    if add is None:
        return None
    for var, eps in (add.inputs, add.inputs[::-1]):
        array = const_array(eps)
        if array is not None and array.size == 1 and eps.type.rank <= var.type.rank:  # type: ignore[union-attr]
            return var, float(array.reshape(-1)[0])  # type: ignore[return-value]
    return None


def _core(p: Pattern, node: Node) -> tuple[Value, int, float] | None:
    """(x, axis, eps) when `node` computes (x - mean) / sqrt(var + eps)."""
    d, denom = node.inputs
    if node.op == "Mul":
        if p.rw.producer(denom, "Reciprocal") is None:
            d, denom = denom, d
        recip = p.producer(denom, "Reciprocal")
        if recip is None:
            return None
        denom = recip.inputs[0]
    sub = p.producer(d, "Sub")
    found = _std(p, denom)
    if sub is None or found is None:
        return None
    x, mean = sub.inputs
    var, eps = found
    mean_node, var_node = p.producer(mean, "ReduceMean"), p.producer(var, "ReduceMean")
    if mean_node is None or var_node is None or mean_node.inputs[0] is not x:
        return None
    square = p.producer(var_node.inputs[0], "Pow", "Mul")
    if square is None or square.inputs[0] is not d:
        return None
    if (square.op == "Pow" and not is_splat(square.inputs[1], 2)) or (square.op == "Mul" and square.inputs[1] is not d):
        return None
    rank = x.type.rank  # type: ignore[union-attr]
    axis = _trailing_axes(mean_node, rank)
    if axis is None or _trailing_axes(var_node, rank) != axis:
        return None
    return x, axis, eps  # type: ignore[return-value]


def _affine(rw: Rewriter, v: Value, op: str, normalized: tuple) -> tuple[Node, Value] | None:
    """The single reader of v if it computes op(v, c) or op(c, v) with c
    broadcasting to the normalized shape; with c."""
    reader = rw.only_reader(v)
    if reader is None or reader.op != op:
        return None
    a, b = reader.inputs
    c = b if a is v else a
    if c is None or c is v or c.type.rank > len(normalized):
        return None
    if not all(d in (1, n) for d, n in zip(c.type.shape[::-1], normalized[::-1])):
        return None
    return reader, c


def _layernorm(rw: Rewriter, node: Node) -> bool:
    p = Pattern(rw)
    p.add(node)
    core = _core(p, node)
    if core is None:
        return False
    x, axis, eps = core
    normalized = x.type.shape[axis:]
    root, gamma, beta = node, None, None
    scaled = _affine(rw, node.outputs[0], "Mul", normalized)
    if scaled is not None:
        root, gamma = scaled
        p.add(root)
    shifted = _affine(rw, root.outputs[0], "Add", normalized)
    if shifted is not None:
        root, beta = shifted
        p.add(root)
    if gamma is None:
        if not all(isinstance(d, int) for d in normalized):
            return False
        gamma = rw.const(np.ones(normalized, x.type.dtype.numpy), "ln_scale")
    out = root.outputs[0]
    if out.type != x.type or not p.closed(root):
        return False
    ln = rw.op("LayerNormalization", x, gamma, beta, name=node.name, axis=axis, epsilon=eps)
    rw.replace(out, ln, "recognised LayerNormalization")
    return True


@each_scope
def fuse_layernorm(graph: Graph) -> bool:
    return apply_rules(graph, {"Div": (_layernorm,), "Mul": (_layernorm,)})
