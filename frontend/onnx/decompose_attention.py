"""Attention (opsets 23 to 25) as MatMul, Softmax and elementwise ops.

Q and K are each scaled by sqrt(scale) before Q @ K^T; grouped-query heads
fold into the query sequence (Q [B, Hq, S, D] viewed as [B, Hkv, g*S, D]) so
K and V are never repeated. The additive bias sums the attention mask (bool:
0 or -inf; padded with -inf up to the total length), the bottom-right causal
mask and the sliding window (query i of the block sees key j iff
j <= i + offset, offset = past length or nonpad_kv_seqlen - q length), and the
padding mask of nonpad_kv_seqlen; with static shapes and no nonpad_kv_seqlen
it is one constant (up to 64K elements; larger ones are computed at run
time). Rows the bias masks entirely give zero probabilities. The
qk_matmul_output modes follow the spec (mode 0 is the raw product, as in
onnxruntime).
"""

from __future__ import annotations

from functools import partial

import numpy as np
from aic.ir import DType, Value

from .converters import ConvertContext, converter
from .decompose_seq import Emit

# Larger static masks are computed at run time (cheap compares next to the
# softmax) rather than stored as weights.
_MASK_FOLD_LIMIT = 1 << 16


def _split_heads(e: Emit, x: Value, heads: int) -> Value:
    """[B, S, H*D] -> [B, H, S, D]."""
    return e.op("Transpose", e.op("Reshape", x, e.ints([0, 0, heads, -1])), perm=[0, 2, 1, 3])


def _neg_inf_where(e: Emit, allowed: Value, dtype: np.dtype) -> Value:
    """0 where allowed, -inf elsewhere."""
    return e.op("Where", allowed, e.scalar(0, dtype), e.scalar(-np.inf, dtype))


def _mask_bias(e: Emit, mask: Value, total: Value, dtype: np.dtype) -> Value:
    """The attention mask as an additive bias, padded to the total key length."""
    have, want = mask.type.shape[-1], total.const
    if isinstance(have, int) and want is not None and int(want) > have:
        rank = mask.type.rank
        pads = e.ints([0] * (2 * rank - 1) + [int(want) - have])
        fill = e.scalar(False if mask.type.dtype is DType.bool else -np.inf, mask)
        mask = e.op("Pad", mask, pads, fill)
    if mask.type.dtype is DType.bool:
        return _neg_inf_where(e, mask, dtype)
    return e.cast(mask, dtype)


def _position_bias(
    e: Emit, ctx: ConvertContext, q_len: Value, total: Value, past: Value | None, nonpad: Value | None, dtype: np.dtype
) -> Value | None:
    """Causal and sliding-window bias: [Sq, Skv], or [B, 1, Sq, Skv] with nonpad_kv_seqlen."""
    causal = bool(ctx.attrs.get("is_causal", 0))
    left, right = ctx.attrs.get("left_window_size", -1), ctx.attrs.get("right_window_size", -1)
    if not causal and left < 0 and right < 0:
        return None
    i = e.op("Unsqueeze", e.arange(q_len), e.ints([1]))
    j = e.op("Unsqueeze", e.arange(total), e.ints([0]))
    if nonpad is not None and past is None:
        offset = e.op("Reshape", e.op("Sub", nonpad, q_len), e.ints([-1, 1, 1]))
    else:
        offset = e.size(past, 2) if past is not None else e.scalar(0, np.int64)
    ahead = e.op("Sub", e.op("Add", i, offset), j)  # query position minus key position
    allowed = []
    if causal:
        allowed.append(e.op("GreaterOrEqual", ahead, e.scalar(0, np.int64)))
    if left >= 0:
        allowed.append(e.op("LessOrEqual", ahead, e.scalar(left, np.int64)))
    if right >= 0:
        allowed.append(e.op("GreaterOrEqual", ahead, e.scalar(-right, np.int64)))
    both = allowed[0]
    for a in allowed[1:]:
        both = e.op("And", both, a)
    bias = _neg_inf_where(e, both, dtype)
    return e.op("Unsqueeze", bias, e.ints([1])) if bias.type.rank == 3 else bias


def _bias(e: Emit, ctx: ConvertContext, q: Value, keys: Value, dtype: np.dtype) -> Value | None:
    """The additive bias of the scores, broadcastable to [B, Hq, Sq, Skv] (None: zero)."""
    mask, past, nonpad = ctx.input(3), ctx.input(4), ctx.input(6)
    q_len, total = e.size(q, 2), e.size(keys, 2)
    terms = [_mask_bias(e, mask, total, dtype)] if mask is not None else []
    position = _position_bias(e, ctx, q_len, total, past, nonpad, dtype)
    if position is not None:
        terms.append(position)
    if nonpad is not None:
        valid = e.op("Less", e.arange(total), e.op("Reshape", nonpad, e.ints([-1, 1, 1, 1])))
        terms.append(_neg_inf_where(e, valid, dtype))
    if not terms:
        return None
    bias = terms[0]
    for t in terms[1:]:
        bias = e.op("Add", bias, t)
    return bias


def _grouped(e: Emit, x: Value, heads: int) -> Value:
    """[B, H, S, N] viewed as [B, heads, H/heads*S, N] (or back, with heads = H)."""
    return e.op("Reshape", x, e.ints([0, heads, -1, 0]))


@converter("Attention", 23)
def attention(ctx: ConvertContext) -> list[Value | None]:
    """Y, then present_key/present_value and qk_matmul_output where the model reads them."""
    e = Emit(ctx, fold_limit=_MASK_FOLD_LIMIT)
    q, k, v = ctx.inputs[:3]
    past_k, past_v, nonpad = ctx.input(4), ctx.input(5), ctx.input(6)
    if (past_k is None) != (past_v is None):
        raise ctx.error("past_key and past_value must be given together")
    if nonpad is not None and past_k is not None:
        raise ctx.error("nonpad_kv_seqlen cannot be combined with past_key/past_value")
    dtype = q.type.dtype.numpy
    rank = q.type.rank
    if rank == 3:
        if "q_num_heads" not in ctx.attrs or "kv_num_heads" not in ctx.attrs:
            raise ctx.error("3-D inputs need the q_num_heads and kv_num_heads attributes")
        heads = ctx.attrs["kv_num_heads"]
        q, k, v = _split_heads(e, q, ctx.attrs["q_num_heads"]), _split_heads(e, k, heads), _split_heads(e, v, heads)
    elif rank != 4:
        raise ctx.error(f"Q must be 3-D or 4-D, got {q.type}")
    heads_q, heads_kv, head_size = q.type.shape[1], k.type.shape[1], q.type.shape[3]
    group = 1
    if heads_q != heads_kv:
        if not (isinstance(heads_q, int) and isinstance(heads_kv, int)) or heads_q % heads_kv:
            raise ctx.error(f"query heads {heads_q} must be a static multiple of key/value heads {heads_kv}")
        group = heads_q // heads_kv
    scale = ctx.attrs.get("scale")
    if scale is None:
        if not isinstance(head_size, int):
            raise ctx.error(f"needs a static head size or the scale attribute, got Q {q.type}")
        scale = 1 / np.sqrt(head_size)
    root = e.scalar(np.sqrt(scale), dtype)
    names = ctx.output_names
    wanted = [i < len(names) and bool(names[i]) for i in range(4)]
    if past_k is not None:
        keys = e.out(1, "Concat", past_k, k, axis=2) if wanted[1] else e.op("Concat", past_k, k, axis=2)
        values = e.out(2, "Concat", past_v, v, axis=2) if wanted[2] else e.op("Concat", past_v, v, axis=2)
    else:
        keys, values = k, v
    bias = _bias(e, ctx, q, keys, dtype)

    stages = []  # what qk_matmul_output holds in modes 0 to 3
    scaled_q = e.op("Mul", q, root)
    if group > 1:
        scaled_q = _grouped(e, scaled_q, heads_kv)
    scores = e.op("MatMul", scaled_q, e.op("Mul", e.op("Transpose", keys, perm=[0, 1, 3, 2]), root))
    if group > 1:
        scores = _grouped(e, scores, heads_q)
    stages.append(scores)
    softcap = ctx.attrs.get("softcap", 0.0)
    if softcap > 0:
        cap = e.scalar(softcap, dtype)
        scores = e.op("Mul", e.op("Tanh", e.op("Div", scores, cap)), cap)
    stages.append(scores)
    if bias is not None:
        scores = e.op("Add", scores, bias)
    stages.append(scores)
    precision = ctx.attrs.get("softmax_precision")
    wide = DType.from_onnx(precision).numpy if precision else dtype
    probs = e.cast(e.op("Softmax", e.cast(scores, wide), axis=-1), dtype)
    windowed = ctx.attrs.get("left_window_size", -1) >= 0 or ctx.attrs.get("right_window_size", -1) >= 0
    only_causal = ctx.input(3) is None and nonpad is None and not windowed  # every row sees key 0
    if bias is not None and not only_causal:
        masked_rows = e.op("Equal", e.op("ReduceMax", bias, e.ints([-1]), keepdims=1), e.scalar(-np.inf, dtype))
        if masked_rows.const is None or masked_rows.const.any():
            probs = e.op("Where", masked_rows, e.scalar(0, dtype), probs)
    stages.append(probs)

    last = partial(e.out, 0) if rank == 4 else e.op
    if group > 1:
        y = last("Reshape", e.op("MatMul", _grouped(e, probs, heads_kv), values), e.ints([0, heads_q, -1, 0]))
    else:
        y = last("MatMul", probs, values)
    if rank == 3:
        y = e.out(0, "Reshape", e.op("Transpose", y, perm=[0, 2, 1, 3]), e.ints([0, 0, -1]))
    results: list[Value | None] = [y, None, None, None]
    if past_k is not None:
        results[1:3] = [keys, values]
    else:
        results[1:3] = [e.out(i, "Identity", x) if wanted[i] else None for i, x in ((1, keys), (2, values))]
    mode = ctx.attrs.get("qk_matmul_output_mode", 0)
    if wanted[3]:
        if mode not in (0, 1, 2, 3):
            raise ctx.error(f"qk_matmul_output_mode {mode} must be 0, 1, 2 or 3")
        results[3] = e.out(3, "Identity", stages[mode])
    return results
