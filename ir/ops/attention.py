"""SoftmaxAttention: softmax(q @ kt * scale + mask) @ v, one op for a whole attention product.

Not an ONNX op: the graph pass fuse-attention recognises the MatMul, scale, mask, Softmax and
MatMul that exporters write for scaled dot-product attention and replaces them by this op, so
the score matrix is never stored (compiler/lower/attention.py). Inputs: q [*B, Sq, D], kt (the
keys already transposed) [*B, D, Sk], v [*B, Sk, Dv], an optional additive mask broadcastable to
[*B, Sq, Sk]; the batch dims broadcast as MatMul's do. Output [*B, Sq, Dv].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import Dim, dim_prod
from ..dtypes import DType
from ..types import TensorType
from .common import broadcast_shapes, check_same_dtype
from .registry import Attr, InferContext, OpDef, register


def _infer(ctx: InferContext) -> list[TensorType]:
    dtype = check_same_dtype(ctx, 0, 1, 2, 3)
    q, kt, v = (ctx.input(i).shape for i in range(3))
    if min(len(q), len(kt), len(v)) < 2:
        raise ctx.error("q, kt and v must have rank >= 2")
    for a, b, what in ((q[-1], kt[-2], "q's last dim and kt's rows"), (kt[-1], v[-2], "kt's columns and v's rows")):
        if isinstance(a, int) and isinstance(b, int) and a != b:
            raise ctx.error(f"{what} differ: q {list(q)}, kt {list(kt)}, v {list(v)}")
    batch = broadcast_shapes(ctx, q[:-2], kt[:-2], v[:-2])
    if ctx.has(3):
        scores = (*batch, q[-2], kt[-1])
        if broadcast_shapes(ctx, scores, ctx.input(3).shape) != scores:
            raise ctx.error(f"the mask {list(ctx.input(3).shape)} does not broadcast to the scores {list(scores)}")
    return [TensorType(dtype, (*batch, q[-2], v[-1]))]


def _reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    q, kt, v = (np.asarray(x, np.float64) for x in inputs[:3])  # type: ignore[arg-type]
    scores = np.matmul(q, kt) * attrs["scale"]
    if len(inputs) > 3 and inputs[3] is not None:
        scores = scores + inputs[3].astype(np.float64)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    out = np.matmul(e / e.sum(axis=-1, keepdims=True), v)
    return [out.astype(inputs[0].dtype)]  # type: ignore[union-attr]


def _flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Dim:
    """Both products (2 per multiply-add) and 5 per score (scale, mask, max, exp, sum)."""
    q, kt, v = ins[0], ins[1], ins[2]
    assert q is not None and kt is not None and v is not None
    rows = dim_prod(outs[0].shape[:-1])
    return dim_prod([rows, kt.shape[-1], 2 * q.shape[-1] + 2 * v.shape[-1] + 5])  # type: ignore[list-item]


SoftmaxAttention = register(
    OpDef(
        "SoftmaxAttention",
        _infer,
        _reference,
        attrs={"scale": Attr("float", 1.0)},
        inputs=(3, 4),
        dtypes=frozenset({DType.float32}),
        kind="contraction",
        flops=_flops,
        doc="softmax(q @ kt * scale + mask, axis=-1) @ v; the score matrix is never stored.",
    )
)
