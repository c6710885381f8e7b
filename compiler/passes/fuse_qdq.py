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

from dataclasses import dataclass

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


@dataclass
class _Operands:
    """The integer operands of a QDQ product: activations xq with one scale and zero point (or none),
    constant weights with their scale and constant zero point (or none)."""

    xq: Value
    x_zero: Value | None
    x_scale: np.ndarray
    weights: np.ndarray
    w_zero: np.ndarray | None
    w_scale: np.ndarray


def _operands(rw: Rewriter, node: Node) -> _Operands | None:
    a, b = _dequantized(rw, node.inputs[0]), _dequantized(rw, node.inputs[1])
    if a is None or b is None:
        return None
    xq, x_zero, x_scale = a
    wq, w_zero, w_scale = b
    weights = const_array(wq)
    w_zero_array = None if w_zero is None else _constant(rw, w_zero)
    if weights is None or x_scale.size != 1 or (w_zero is not None and w_zero_array is None):
        return None
    if x_zero is not None and x_zero.type.numel != 1:
        return None
    return _Operands(xq, x_zero, x_scale, weights, w_zero_array, w_scale)


def _weight_zero(rw: Rewriter, w_zero: np.ndarray | None) -> Value | None:
    return None if w_zero is None else rw.const(w_zero.reshape(-1 if w_zero.size > 1 else ()), "qdq_weight_zero")


def _scaled(rw: Rewriter, acc: Value, ops: _Operands, channel_shape: list[int]) -> Value:
    """The int32 product `acc` in float32 times x_scale * w_scale (per channel: w_scale as `channel_shape`)."""
    w_scale = ops.w_scale.astype(np.float32).reshape(channel_shape if ops.w_scale.size > 1 else ())
    scale = np.float32(ops.x_scale.reshape(())) * w_scale
    return rw.op("Mul", rw.op("Cast", acc, to=DType.float32.onnx), rw.const(scale.astype(np.float32), "qdq_scale"))


def _replace(rw: Rewriter, node: Node, out: Value, what: str) -> bool:
    old = node.outputs[0]
    if out.type != old.type or not rw.can_replace(old, out):
        return False
    rw.replace(old, out, what)
    return True


def _fuse(rw: Rewriter, node: Node) -> bool:
    gemm = node.op == "Gemm"
    if gemm and (node.attrs.get("transA", 0) or node.attrs.get("alpha", 1.0) != 1.0
                 or node.attrs.get("beta", 1.0) != 1.0):
        return False
    ops = _operands(rw, node)
    if ops is None or ops.weights.ndim != 2 or ops.xq.type.rank < 1:
        return False
    weights = ops.weights
    transposed = bool(gemm and node.attrs.get("transB", 0))
    n = weights.shape[0] if transposed else weights.shape[1]
    if not all(_per_column(p, n, transposed) for p in (ops.w_scale, ops.w_zero) if p is not None):
        return False
    if transposed:
        weights = np.ascontiguousarray(weights.T)
    acc = rw.op("MatMulInteger", ops.xq, rw.const(weights, "qdq_weights"), _scalar_zero(rw, ops.x_zero),
                _weight_zero(rw, ops.w_zero), name=node.name)
    out = _scaled(rw, acc, ops, [-1])
    if gemm and len(node.inputs) > 2 and node.inputs[2] is not None:
        out = rw.op("Add", out, node.inputs[2])
    return _replace(rw, node, out, f"QDQ {node.op} as MatMulInteger")


def _per_channel(array: np.ndarray, oc: int) -> bool:
    """Whether a conv weights' scale or zero point is one value or one per output channel ([OC] or
    [OC, 1, ..., 1])."""
    return array.size == 1 or (array.size == oc and array.shape[0] == oc)


def _fuse_conv(rw: Rewriter, node: Node) -> bool:
    ops = _operands(rw, node)
    if ops is None or ops.weights.ndim < 3 or ops.xq.type.rank != ops.weights.ndim:
        return False
    weights = ops.weights
    if not all(_per_channel(p, weights.shape[0]) for p in (ops.w_scale, ops.w_zero) if p is not None):
        return False
    acc = rw.op("ConvInteger", ops.xq, rw.const(weights, "qdq_weights"), _scalar_zero(rw, ops.x_zero),
                _weight_zero(rw, ops.w_zero), name=node.name, **node.attrs)
    channels = [1, -1, *[1] * (weights.ndim - 2)]
    out = _scaled(rw, acc, ops, channels)
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        out = rw.op("Add", out, rw.op("Reshape", node.inputs[2], rw.const(np.array(channels, np.int64), "bias_shape")))
    return _replace(rw, node, out, "QDQ Conv as ConvInteger")


@each_scope
def fuse_qdq(graph: Graph) -> bool:
    return apply_rules(graph, {"MatMul": (_fuse,), "Gemm": (_fuse,), "Conv": (_fuse_conv,)})
