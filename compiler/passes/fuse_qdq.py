"""QDQ matrix products and convolutions as integer ones: MatMul(DequantizeLinear(xq), DequantizeLinear(Wq))
becomes MatMulInteger(xq, Wq, x_zero, w_zero) times x_scale * w_scale, Conv(DequantizeLinear(xq),
DequantizeLinear(Wq), bias) becomes ConvInteger(xq, Wq, x_zero, w_zero) times x_scale * w_scale plus bias.

onnxruntime's `quantize_static` (QDQ format) surrounds each MatMul / Gemm with DequantizeLinear nodes,
which the frontend decomposes into (Cast(q) - Cast(zero_point)) * scale. Here the right-hand side must
be constant int8/uint8 weights [K, N] (a Gemm's transB=1 weights [N, K] are transposed at compile time)
with one scale and zero point or one per output column; the left-hand side any int8/uint8 tensor with one scale and
zero point. The product is computed exactly in int32 and scaled once in float32, as onnxruntime does
after fusing the same pattern, instead of in float32 on dequantized values (which differs by float32
rounding only). A Gemm must have transA=0, alpha=beta=1; its bias is added after. A Conv's weights
[OC, IC/group, *kernel] may have one scale and zero point or one per output channel (axis 0); its float
bias (a DequantizeLinear of int32 in QDQ models, folded later) is added after. Runs before constant
folding, which would turn small dequantized weights into float constants.
"""

from __future__ import annotations

import numpy as np
from aic.ir import DType, Graph, Node, Value

from .rewrite import Rewriter, apply_rules, const_array, each_scope

QUANT = (DType.int8, DType.uint8)


def _constant(rw: Rewriter, v: Value | None) -> np.ndarray | None:
    """The contents of `v` when constant, looking through a Reshape of a constant."""
    array = const_array(v)
    reshape = rw.producer(v, "Reshape")
    if array is None and reshape is not None and v is not None and v.type.is_static:
        inner = const_array(reshape.inputs[0])
        array = None if inner is None else inner.reshape(v.type.static_shape)
    return array


def _per_column(array: np.ndarray, n: int, transposed: bool) -> bool:
    """Whether a weights' scale or zero point is one value or one per output column: shape [N] or
    [1, N] for weights [K, N], [N, 1] for transposed weights [N, K]."""
    if array.size == 1:
        return True
    return array.shape == ((n, 1) if transposed else (n,)) or (not transposed and array.shape == (1, n))


def _dequantized(rw: Rewriter, v: Value | None) -> tuple[Value, Value | None, np.ndarray] | None:
    """(q, zero point or None, scale) when `v` is (Cast(q) [- Cast(zero point)]) * constant scale,
    q int8/uint8 and the zero point of q's type."""
    mul = rw.producer(v, "Mul")
    if mul is None:
        return None
    for body, scale_value in (mul.inputs, mul.inputs[::-1]):
        scale = _constant(rw, scale_value)
        if scale is None or scale.dtype != np.float32:
            continue
        zero: Value | None = None
        sub = rw.producer(body, "Sub")
        if sub is not None:
            zero_cast = rw.producer(sub.inputs[1], "Cast")
            if zero_cast is None:
                return None
            zero, body = zero_cast.inputs[0], sub.inputs[0]
        cast = rw.producer(body, "Cast")
        if cast is None or cast.inputs[0].type.dtype not in QUANT:
            return None
        q = cast.inputs[0]
        if zero is not None and (zero.type.dtype != q.type.dtype or zero.type.numel not in (1, scale.size)):
            return None
        return q, zero, scale
    return None


def _scalar_zero(rw: Rewriter, zero: Value | None) -> Value | None:
    if zero is None or zero.type.rank == 0:
        return zero
    return rw.op("Reshape", zero, rw.const(np.zeros(0, np.int64), "scalar_shape"))


def _fuse(rw: Rewriter, node: Node) -> bool:
    gemm = node.op == "Gemm"
    if gemm and (node.attrs.get("transA", 0) or node.attrs.get("alpha", 1.0) != 1.0
                 or node.attrs.get("beta", 1.0) != 1.0):
        return False
    a, b = _dequantized(rw, node.inputs[0]), _dequantized(rw, node.inputs[1])
    if a is None or b is None:
        return False
    xq, x_zero, x_scale = a
    wq, w_zero, w_scale = b
    weights = const_array(wq)
    if weights is None or weights.ndim != 2 or x_scale.size != 1 or xq.type.rank < 1:
        return False
    transposed = bool(gemm and node.attrs.get("transB", 0))
    n = weights.shape[0] if transposed else weights.shape[1]
    w_zero_array = None if w_zero is None else _constant(rw, w_zero)
    if w_zero is not None and w_zero_array is None:
        return False
    if not all(_per_column(p, n, transposed) for p in (w_scale, w_zero_array) if p is not None):
        return False
    if x_zero is not None and x_zero.type.numel != 1:
        return False
    if transposed:
        weights = np.ascontiguousarray(weights.T)
    w_value = rw.const(weights, "qdq_weights")
    w_zero_value = None
    if w_zero_array is not None:
        w_zero_value = rw.const(w_zero_array.reshape(-1 if w_zero_array.size > 1 else ()), "qdq_weight_zero")
    acc = rw.op("MatMulInteger", xq, w_value, _scalar_zero(rw, x_zero), w_zero_value, name=node.name)
    scale = (np.float32(x_scale.reshape(())) * w_scale.astype(np.float32).reshape(-1 if w_scale.size > 1 else ()))
    out = rw.op("Mul", rw.op("Cast", acc, to=DType.float32.onnx), rw.const(scale.astype(np.float32), "qdq_scale"))
    if gemm and len(node.inputs) > 2 and node.inputs[2] is not None:
        out = rw.op("Add", out, node.inputs[2])
    old = node.outputs[0]
    if out.type != old.type or not rw.can_replace(old, out):
        return False
    rw.replace(old, out, f"QDQ {node.op} as MatMulInteger")
    return True


def _per_channel(array: np.ndarray, oc: int) -> bool:
    """Whether a conv weights' scale or zero point is one value or one per output channel ([OC] or
    [OC, 1, ..., 1])."""
    return array.size == 1 or (array.size == oc and array.shape[0] == oc)


def _fuse_conv(rw: Rewriter, node: Node) -> bool:
    a, b = _dequantized(rw, node.inputs[0]), _dequantized(rw, node.inputs[1])
    if a is None or b is None:
        return False
    xq, x_zero, x_scale = a
    wq, w_zero, w_scale = b
    weights = const_array(wq)
    if weights is None or weights.ndim < 3 or x_scale.size != 1 or xq.type.rank != weights.ndim:
        return False
    oc = weights.shape[0]
    w_zero_array = None if w_zero is None else _constant(rw, w_zero)
    if (w_zero is not None and w_zero_array is None) or (x_zero is not None and x_zero.type.numel != 1):
        return False
    if not all(_per_channel(p, oc) for p in (w_scale, w_zero_array) if p is not None):
        return False
    w_zero_value = None
    if w_zero_array is not None:
        w_zero_value = rw.const(w_zero_array.reshape(-1 if w_zero_array.size > 1 else ()), "qdq_weight_zero")
    acc = rw.op("ConvInteger", xq, rw.const(weights, "qdq_weights"), _scalar_zero(rw, x_zero), w_zero_value,
                name=node.name, **node.attrs)
    channels = [1, -1, *[1] * (weights.ndim - 2)]
    scale = np.float32(x_scale.reshape(())) * w_scale.astype(np.float32).reshape(channels if w_scale.size > 1 else ())
    out = rw.op("Mul", rw.op("Cast", acc, to=DType.float32.onnx), rw.const(scale.astype(np.float32), "qdq_scale"))
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        out = rw.op("Add", out, rw.op("Reshape", node.inputs[2], rw.const(np.array(channels, np.int64), "bias_shape")))
    old = node.outputs[0]
    if out.type != old.type or not rw.can_replace(old, out):
        return False
    rw.replace(old, out, "QDQ Conv as ConvInteger")
    return True


@each_scope
def fuse_qdq(graph: Graph) -> bool:
    return apply_rules(graph, {"MatMul": (_fuse,), "Gemm": (_fuse,), "Conv": (_fuse_conv,)})
