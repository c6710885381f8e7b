"""LSTMStep: one time step of an LSTM layer, every direction at once.

The ONNX LSTM converter (frontend/onnx/decompose_rnn.py) computes the input projection of all
steps as one MatMul and chains one LSTMStep per step, so each step is one kernel: the recurrent
product H @ R^T of every direction with the gate math, the cell update and the new state.

Inputs:
- ``xw`` [S, B, D*4H]: X @ W^T plus both biases for the whole sequence, direction d's gates
  (i, o, f, c, ONNX order) in columns d*4H .. (d+1)*4H;
- ``state`` [2, D, B, H]: the previous (h, c) of each direction (absent: zeros);
- ``r`` [D, 4H, H]: the recurrent weights as ONNX lays them out;
- ``p`` [D, 3H]: peepholes (i, o, f), optional.

Output: the new state [2, D, B, H]. Direction d reads time step ``step`` of ``xw``, or
S - 1 - ``step`` when ``reverse[d]``. Gate activations are sigmoid, tanh, tanh after the optional
``clip`` of the pre-activations; ``input_forget`` couples f = 1 - i.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import dim_mul
from ..dtypes import DType
from ..types import TensorType
from .registry import Attr, InferContext, OpDef, register


def _infer(ctx: InferContext) -> list[TensorType]:
    xw, r = ctx.input(0), ctx.input(2)
    if xw.rank != 3 or r.rank != 3 or not (xw.is_static and r.is_static):
        raise ctx.error("needs a static xw [S, B, D*4H] and r [D, 4H, H]")
    steps, batch, gates = xw.shape
    dirs, four_h, hidden = r.shape
    if four_h != 4 * hidden or gates != dirs * four_h:
        raise ctx.error(f"r {list(r.shape)} must be [D, 4H, H] and xw's last dim D*4H = {dirs * four_h}")
    if len(ctx.attrs["reverse"]) != dirs:
        raise ctx.error(f"reverse {ctx.attrs['reverse']} must give one flag per direction ({dirs})")
    if not 0 <= ctx.attrs["step"] < steps:
        raise ctx.error(f"step {ctx.attrs['step']} is outside the {steps} steps of xw")
    state = (2, dirs, batch, hidden)
    if ctx.has(1) and tuple(ctx.input(1).shape) != state:
        raise ctx.error(f"state must be {list(state)}")
    if ctx.has(3) and tuple(ctx.input(3).shape) != (dirs, 3 * hidden):
        raise ctx.error(f"peepholes must be [{dirs}, {3 * hidden}]")
    for i in range(4):
        if ctx.has(i) and ctx.input(i).dtype != DType.float32:
            raise ctx.error("only float32 is supported")
    return [TensorType(DType.float32, state)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _clipped(v: np.ndarray, clip: float | None) -> np.ndarray:
    return v if clip is None else np.clip(v, -clip, clip)


def _reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
    xw, state, r = inputs[0], inputs[1], inputs[2]
    p = inputs[3] if len(inputs) > 3 else None
    assert xw is not None and r is not None
    steps, batch, _ = xw.shape
    dirs, _, hidden = r.shape
    clip = attrs["clip"]
    if state is None:
        state = np.zeros((2, dirs, batch, hidden), np.float32)
    out = np.empty((2, dirs, batch, hidden), np.float64)
    for d, rev in enumerate(attrs["reverse"]):
        t = steps - 1 - attrs["step"] if rev else attrs["step"]
        h, c = state[0, d].astype(np.float64), state[1, d].astype(np.float64)
        gates = xw[t, :, d * 4 * hidden : (d + 1) * 4 * hidden] + h @ r[d].T.astype(np.float64)
        gi, go, gf, gc = np.split(gates, 4, axis=-1)
        pi, po, pf = np.split(p[d].astype(np.float64), 3) if p is not None else (0.0, 0.0, 0.0)
        i = _sigmoid(_clipped(gi + pi * c, clip))
        f = 1.0 - i if attrs["input_forget"] else _sigmoid(_clipped(gf + pf * c, clip))
        c = f * c + i * np.tanh(_clipped(gc, clip))
        out[0, d] = _sigmoid(_clipped(go + po * c, clip)) * np.tanh(c)
        out[1, d] = c
    return [out.astype(np.float32)]


def _flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Any:
    """8H multiply-adds per state element (4 gates of H) plus about 10 for the gate math."""
    hidden = outs[0].shape[-1]
    return dim_mul(outs[0].numel, (8 * hidden + 10) // 2)


LSTMStep = register(
    OpDef(
        "LSTMStep",
        _infer,
        _reference,
        attrs={
            "step": Attr("int"),
            "reverse": Attr("ints"),
            "clip": Attr("float", None),
            "input_forget": Attr("int", 0),
        },
        inputs=(3, 4),
        kind="contraction",
        flops=_flops,
        doc="One LSTM time step of every direction: (h, c) from xw[t], the previous (h, c), R and peepholes.",
    )
)
