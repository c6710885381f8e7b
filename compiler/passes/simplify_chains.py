"""Collapsing chains of layout ops and casts.

- Transpose(Transpose(x, p1), p2) -> Transpose(x, p1[p2]), or x when that is
  the identity permutation;
- a reshape-like op (Reshape, Flatten, Squeeze, Unsqueeze) of a reshape-like
  op -> x when the result has x's type, and Reshape(reshape-like(x), s) ->
  Reshape(x, s) when the target shape does not depend on the intermediate (it
  is static, or it is known and holds no 0 "copy this dim" entry);
- Cast(Cast(x, T1), T2) for x of type T0, when T0 -> T1 is exact (T1 holds
  every T0 value: f32 -> f64, i8 -> i32, u8 -> f16, bool -> anything): x when
  T2 is T0, else Cast(x, T2), except int -> float -> int (a float to int
  conversion out of range differs from integer wrap-around). f32 -> i32 -> f32
  is not exact and is kept.

The intermediate nodes stay when they have other readers. Assumes shapes are
inferred by the op table (a rewrite whose type would differ is not applied).
"""

from __future__ import annotations

import numpy as np
from aic.ir import DType, Graph, Node, Value

from .rewrite import Rewriter, apply_rules, const_array, each_scope

RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
_MANTISSA = {DType.float16: 11, DType.bfloat16: 8, DType.float32: 24, DType.float64: 53}


def is_exact_cast(src: DType, dst: DType) -> bool:
    """Whether every value of `src` converts to `dst` exactly."""
    if src == dst or src == DType.bool:
        return True
    if dst == DType.bool or (src.is_float and not dst.is_float):
        return False
    if src.is_float:
        return _MANTISSA[dst] >= _MANTISSA[src] and dst.itemsize > src.itemsize
    bits = src.itemsize * 8 - (1 if src.is_signed else 0)
    if dst.is_float:
        return _MANTISSA[dst] >= bits
    return dst.itemsize * 8 - (1 if dst.is_signed else 0) >= bits and (dst.is_signed or not src.is_signed)


def perm_of(node: Node) -> list[int]:
    perm = node.attrs["perm"]
    return list(perm) if perm is not None else list(range(node.outputs[0].type.rank))[::-1]


def _replace(rw: Rewriter, node: Node, new: Value, rule: str) -> bool:
    out = node.outputs[0]
    if new.type != out.type or not rw.can_replace(out, new):
        return False
    rw.replace(out, new, rule)
    return True


def _transposes(rw: Rewriter, node: Node) -> bool:
    inner = rw.producer(node.inputs[0], "Transpose")
    if inner is None:
        return False
    p1, p2 = perm_of(inner), perm_of(node)
    perm = [p1[p] for p in p2]
    x = inner.inputs[0]
    if perm == list(range(len(perm))):
        return _replace(rw, node, x, "cancelled Transpose pair")
    return _replace(rw, node, rw.op("Transpose", x, name=node.name, perm=perm), "composed Transpose pair")


def _reshapes(rw: Rewriter, node: Node) -> bool:
    inner = rw.producer(node.inputs[0], *RESHAPES)
    if inner is None:
        return False
    x, out = inner.inputs[0], node.outputs[0]
    if out.type == x.type:
        return _replace(rw, node, x, f"cancelled {inner.op} -> {node.op}")
    if node.op != "Reshape":
        return False
    if out.type.is_static:
        shape = rw.const(np.array(out.type.shape, np.int64), "shape")
        return _replace(rw, node, rw.op("Reshape", x, shape, name=node.name), f"merged {inner.op} -> Reshape")
    target = node.inputs[1]
    values = target.sym if target.sym is not None else const_array(target)
    if values is None or (not node.attrs["allowzero"] and any(v == 0 for v in values)):
        return False
    new = rw.op("Reshape", x, target, name=node.name, allowzero=node.attrs["allowzero"])
    return _replace(rw, node, new, f"merged {inner.op} -> Reshape")


def _casts(rw: Rewriter, node: Node) -> bool:
    inner = rw.producer(node.inputs[0], "Cast")
    if inner is None:
        return False
    x = inner.inputs[0]
    t0, t1, t2 = x.type.dtype, inner.outputs[0].type.dtype, node.outputs[0].type.dtype
    if not is_exact_cast(t0, t1):
        return False
    if t2 == t0:
        return _replace(rw, node, x, f"cancelled exact Cast {t0.name} -> {t1.name} -> {t2.name}")
    if t0.is_int and t1.is_float and not t2.is_float and t2 != DType.bool:
        return False
    new = rw.op("Cast", x, name=node.name, to=t2.onnx)
    return _replace(rw, node, new, f"merged exact Cast {t0.name} -> {t1.name} -> {t2.name}")


RULES = {"Transpose": (_transposes,), "Cast": (_casts,), **{op: (_reshapes,) for op in RESHAPES}}


@each_scope
def simplify_chains(graph: Graph) -> bool:
    return apply_rules(graph, RULES)
