"""Channel MLPs of channels-first maps kept channels-first: no Transposes around them.

ConvNeXt's blocks (and other channels-first CNNs with per-position MLPs) compute
Transpose(x, to channels last) -> LayerNorm(axis=-1) -> MatMul(W1) -> Add -> Gelu
-> MatMul(W2) -> Add -> Mul -> Transpose(back). Two rules move the first Transpose
down past the ops `sink_layout` cannot move it through, until it meets its inverse
and the pair cancels:

- LayerNormalization(Transpose(x, p), axis=-1) -> Transpose(ChannelLayerNorm(x), p),
- MatMul(Transpose(x, p), W) with constant 2-D W -> Transpose(Conv(x, W^T as 1x1), p),

where p moves axis 1 last ([0, 2, ..., r-1, 1]) and the Transpose has no other
reader; MatMuls only on maps of MIN_POSITIONS positions or more. Each applies only
when every path from the rewritten op's output reaches the inverse Transpose
through such MatMuls and elementwise ops with constant other operands (which
`sink_layout` moves it through): then the Transposes cancel, and no Transpose is
left where there was none. The map is then normalized in place (positions on the
vector lanes, contiguous loads and stores) and multiplied by 1x1 convolutions,
whose epilogues take the residual Add.
"""

from __future__ import annotations

import numpy as np
from aic.ir import Graph, Node, Value, get_op
from aic.ir.ops.conv import CONV_TYPES

from .rewrite import Rewriter, apply_rules, const_array, each_scope
from .simplify_chains import perm_of
from .sink_transpose import moves_on, replace_output

# positions of a map whose channel MLP runs as 1x1 convolutions: on 14x14 and 7x7 maps the NCHW 1x1 kernels ran
# 6-9% slower than the MatMuls (ConvNeXt-T), more than the transposes they spare (BENCHMARKS.md)
MIN_POSITIONS = 28 * 28


def _channels_last(perm: list[int]) -> bool:
    return len(perm) >= 3 and perm == [0, *range(2, len(perm)), 1]


def _transpose_in(rw: Rewriter, node: Node) -> Node | None:
    """The Transpose to channels last that `node` alone reads as its first input."""
    t = rw.producer(node.inputs[0], "Transpose")
    if t is None or not _channels_last(perm_of(t)) or rw.only_reader(node.inputs[0]) is not node:
        return None
    return t


def _weights(rw: Rewriter, node: Node, v: Value) -> np.ndarray | None:
    """The constant 2-D weights of MatMul `node` reading `v` as its first operand, on a map of at least
    MIN_POSITIONS positions."""
    w = const_array(node.inputs[1]) if node.op == "MatMul" and node.inputs[0] is v else None
    positions = v.type.shape[1:-1]
    large = all(isinstance(d, int) for d in positions) and int(np.prod(positions)) >= MIN_POSITIONS
    return w if w is not None and w.ndim == 2 and v.type.dtype in CONV_TYPES and large else None


def _passes_on(rw: Rewriter, reader: Node, v: Value) -> bool:
    elementwise = get_op(reader.op).kind == "elementwise"
    return _weights(rw, reader, v) is not None or (elementwise and moves_on(rw, reader, v))


def _cancels_below(rw: Rewriter, v: Value, perm: list[int]) -> bool:
    """Whether a Transpose by `perm` of the channels-first value behind `v` would move down every path from `v`
    to the inverse Transpose, through MatMuls by constant 2-D weights and elementwise ops."""
    readers = rw.readers(v)
    if not readers or rw.is_output(v):
        return False
    for r in readers:
        if r.op == "Transpose":
            if [perm[i] for i in perm_of(r)] != list(range(len(perm))):
                return False
        elif not (_passes_on(rw, r, v) and _cancels_below(rw, r.outputs[0], perm)):
            return False
    return True


def _layer_norm(rw: Rewriter, node: Node) -> bool:
    t = _transpose_in(rw, node)
    x = node.inputs[0]
    if t is None or node.attrs["axis"] % x.type.rank != x.type.rank - 1 or node.attrs["stash_type"] != 1:
        return False
    if any(rw.readers(v) or rw.is_output(v) for v in node.outputs[1:]):
        return False
    params = [v for v in node.inputs[1:] if v is not None]
    if any(v.type.rank != 1 for v in params) or not _cancels_below(rw, node.outputs[0], perm_of(t)):
        return False
    inner = rw.op("ChannelLayerNorm", t.inputs[0], *params, name=node.name, epsilon=node.attrs["epsilon"])
    out = rw.op("Transpose", inner, name=node.name, perm=perm_of(t))
    return replace_output(rw, node, out, "LayerNorm channels-first")


def _matmul(rw: Rewriter, node: Node) -> bool:
    t = _transpose_in(rw, node)
    w = None if t is None else _weights(rw, node, node.inputs[0])
    if t is None or w is None or not _cancels_below(rw, node.outputs[0], perm_of(t)):
        return False
    kernel = np.ascontiguousarray(w.T).reshape(*w.T.shape, *[1] * (len(perm_of(t)) - 2))
    conv = rw.op("Conv", t.inputs[0], rw.const(kernel, f"{node.name}_kernel"), name=node.name)
    out = rw.op("Transpose", conv, name=node.name, perm=perm_of(t))
    return replace_output(rw, node, out, "MatMul as 1x1 Conv")


@each_scope
def channels_first(graph: Graph) -> bool:
    return apply_rules(graph, {"LayerNormalization": (_layer_norm,), "MatMul": (_matmul,)})
