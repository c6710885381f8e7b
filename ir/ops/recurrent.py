"""LSTMStep, GRUStep, RNNStep (and GRUResetStep, GRUCandidateStep): one time step of a recurrent layer,
every direction at once.

The ONNX LSTM, GRU and RNN converters (frontend/onnx/decompose_rnn.py) compute the input projection
of all steps as one MatMul and chain one step op per time step, so each step is one kernel: the
recurrent product H @ R^T of every direction with the gate math and the state update.

Inputs (G gates: LSTM 4 (i, o, f, c), GRU 3 (z, r, h), RNN 1, in ONNX order):
- ``xw`` [S, B, D*G*H]: X @ W^T plus the biases that add to it, for the whole sequence, direction d's
  gates in columns d*G*H .. (d+1)*G*H;
- ``state`` [N, D, B, H]: the previous state of each direction, N = 2 for LSTM (h, c), else 1 (h);
  absent: zeros;
- ``r`` [D, G*H, H]: the recurrent weights as ONNX lays them out;
- LSTM ``p`` [D, 3H]: peepholes (i, o, f), optional; GRU ``rbh`` [D, H]: the recurrent bias of the
  h gate, which linear_before_reset keeps apart (optional).

Output: the new state, shaped like ``state``. Direction d reads time step ``step`` of ``xw``, or
S - 1 - ``step`` when ``reverse[d]``. With ``whole`` = 1 (and ``step`` 0) the op runs all S steps, each
direction on its own, and its output is every step's state, [D, S, N, B, H] (step k's, not time k's).
``clip`` bounds the pre-activations. LSTM: sigmoid, tanh, tanh,
``input_forget`` couples f = 1 - i. GRU (linear_before_reset): sigmoid, tanh. RNN: ``activation``.

A GRU without linear_before_reset needs the whole reset gate before its h gate's product, so a step is
two ops: GRUResetStep (state [1, D, B, H] in; (r h, z, h) [3, D, B, H] out, from gates z and r) and
GRUCandidateStep (that in, the new h [1, D, B, H] out, from the h gate's product over r h). Every bias
is in their ``xw``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..dims import dim_mul
from ..dtypes import DType
from ..types import TensorType
from .registry import Attr, InferContext, OpDef, register

# (attrs, x: xw's gates at the step, hr: the product input @ R^T, previous state rows, extra input) -> new rows
Cell = Callable[[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], list[np.ndarray]]


def _infer_for(
    gates: int, rows: tuple[int, int], extra: tuple[str, int] | None
) -> Callable[[InferContext], list[TensorType]]:
    def infer(ctx: InferContext) -> list[TensorType]:
        xw, r = ctx.input(0), ctx.input(2)
        if xw.rank != 3 or r.rank != 3 or not (xw.is_static and r.is_static):
            raise ctx.error(f"needs a static xw [S, B, D*{gates}H] and r [D, {gates}H, H]")
        steps, batch, columns = xw.shape
        dirs, gh, hidden = r.shape
        if gh != gates * hidden or columns != dirs * gh:
            raise ctx.error(f"r {list(r.shape)} must be [D, {gates}H, H] and xw's last dim D*{gates}H = {dirs * gh}")
        if len(ctx.attrs["reverse"]) != dirs:
            raise ctx.error(f"reverse {ctx.attrs['reverse']} must give one flag per direction ({dirs})")
        if not 0 <= ctx.attrs["step"] < steps:
            raise ctx.error(f"step {ctx.attrs['step']} is outside the {steps} steps of xw")
        whole = ctx.attrs.get("whole", 0)
        if whole and (ctx.attrs["step"] != 0 or rows[0] != rows[1]):
            raise ctx.error("whole=1 runs every step from step 0, of an op whose state rows in and out agree")
        state = (rows[0], dirs, batch, hidden)
        if ctx.has(1) and tuple(ctx.input(1).shape) != state:
            raise ctx.error(f"state must be {list(state)}")
        if extra is not None and ctx.has(3) and tuple(ctx.input(3).shape) != (dirs, extra[1] * hidden):
            raise ctx.error(f"{extra[0]} must be [{dirs}, {extra[1] * hidden}]")
        for i in range(4):
            if ctx.has(i) and ctx.input(i).dtype != DType.float32:
                raise ctx.error("only float32 is supported")
        if whole:
            return [TensorType(DType.float32, (dirs, steps, rows[1], batch, hidden))]
        return [TensorType(DType.float32, (rows[1], dirs, batch, hidden))]

    return infer


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _clipped(v: np.ndarray, clip: float | None) -> np.ndarray:
    return v if clip is None else np.clip(v, -clip, clip)


def _lstm(attrs: dict[str, Any], x: np.ndarray, hr: np.ndarray, prev: np.ndarray, p: np.ndarray | None) -> list:
    clip = attrs["clip"]
    gi, go, gf, gc = np.split(x + hr, 4, axis=-1)
    c = prev[1]
    pi, po, pf = np.split(p, 3) if p is not None else (0.0, 0.0, 0.0)
    i = _sigmoid(_clipped(gi + pi * c, clip))
    f = 1.0 - i if attrs["input_forget"] else _sigmoid(_clipped(gf + pf * c, clip))
    c = f * c + i * np.tanh(_clipped(gc, clip))
    return [_sigmoid(_clipped(go + po * c, clip)) * np.tanh(c), c]


def _gru(attrs: dict[str, Any], x: np.ndarray, hr: np.ndarray, prev: np.ndarray, rbh: np.ndarray | None) -> list:
    """linear_before_reset: n = tanh(xh + r (h Rh^T + Rbh))."""
    clip = attrs["clip"]
    (xz, xr, xh), (hz, hrr, hh) = np.split(x, 3, axis=-1), np.split(hr, 3, axis=-1)
    z, r = _sigmoid(_clipped(xz + hz, clip)), _sigmoid(_clipped(xr + hrr, clip))
    n = np.tanh(_clipped(xh + r * (hh + (rbh if rbh is not None else 0.0)), clip))
    return [(1.0 - z) * n + z * prev[0]]


def _gru_reset(attrs: dict[str, Any], x: np.ndarray, hr: np.ndarray, prev: np.ndarray, _: np.ndarray | None) -> list:
    """Without linear_before_reset, first half: (r h, z, h) for the candidate."""
    clip = attrs["clip"]
    (xz, xr, _), (hz, hrr, _) = np.split(x, 3, axis=-1), np.split(hr, 3, axis=-1)
    z, r = _sigmoid(_clipped(xz + hz, clip)), _sigmoid(_clipped(xr + hrr, clip))
    return [r * prev[0], z, prev[0]]


def _gru_candidate(
    attrs: dict[str, Any], x: np.ndarray, hr: np.ndarray, prev: np.ndarray, _: np.ndarray | None
) -> list:
    """Second half, from (r h, z, h): n = tanh(xh + (r h) Rh^T); h' = (1 - z) n + z h."""
    n = np.tanh(_clipped(np.split(x, 3, axis=-1)[2] + np.split(hr, 3, axis=-1)[2], attrs["clip"]))
    return [(1.0 - prev[1]) * n + prev[1] * prev[2]]


def _rnn(attrs: dict[str, Any], x: np.ndarray, hr: np.ndarray, prev: np.ndarray, _: np.ndarray | None) -> list:
    v = _clipped(x + hr, attrs["clip"])
    act = attrs["activation"]
    return [np.maximum(v, 0.0) if act == "Relu" else _sigmoid(v) if act == "Sigmoid" else np.tanh(v)]


def _reference_for(gates: int, rows: tuple[int, int], cell: Cell):
    def reference(inputs: list[np.ndarray | None], attrs: dict[str, Any]) -> list[np.ndarray]:
        xw, state, r = inputs[0], inputs[1], inputs[2]
        extra = inputs[3] if len(inputs) > 3 else None
        assert xw is not None and r is not None
        steps, batch, _ = xw.shape
        dirs, _, hidden = r.shape
        if state is None:
            state = np.zeros((rows[0], dirs, batch, hidden), np.float32)
        whole = attrs.get("whole", 0)
        out = np.empty((dirs, steps if whole else 1, rows[1], batch, hidden), np.float64)
        for d, rev in enumerate(attrs["reverse"]):
            prev = state[:, d].astype(np.float64)
            for k in range(attrs["step"], steps if whole else attrs["step"] + 1):
                t = steps - 1 - k if rev else k
                x = xw[t, :, d * gates * hidden : (d + 1) * gates * hidden].astype(np.float64)
                hr = prev[0] @ r[d].T.astype(np.float64)
                prev = np.stack(cell(attrs, x, hr, prev, extra[d].astype(np.float64) if extra is not None else None))
                out[d, k - attrs["step"]] = prev
        return [(out if whole else out[:, 0].transpose(1, 0, 2, 3)).astype(np.float32)]

    return reference


def _flops_for(gates: int):
    def flops(ins: list[TensorType | None], outs: list[TensorType], attrs: dict[str, Any]) -> Any:
        """2 G H flops of the recurrent product (G of the op's gates) per hidden unit, plus about 10 per unit."""
        hidden = outs[0].shape[-1]
        rows = outs[0].shape[2] if attrs.get("whole", 0) else outs[0].shape[0]
        return dim_mul(outs[0].numel // rows, 2 * gates * hidden + 10)

    return flops


def _step_op(
    name: str,
    gates: tuple[int, int],
    rows: tuple[int, int],
    cell: Cell,
    extra: tuple[str, int] | None,
    attrs: dict[str, Attr],
    doc: str,
) -> OpDef:
    """`gates`: (gates of R and xw, gates this op computes); `rows`: rows of the state in and out."""
    common = {"step": Attr("int"), "reverse": Attr("ints"), "clip": Attr("float", None), "whole": Attr("int", 0)}
    return register(
        OpDef(
            name,
            _infer_for(gates[0], rows, extra),
            _reference_for(gates[0], rows, cell),
            attrs={**common, **attrs},
            inputs=(3, 4 if extra is not None else 3),
            kind="contraction",
            flops=_flops_for(gates[1]),
            doc=doc,
        )
    )


LSTMStep = _step_op(
    "LSTMStep",
    (4, 4),
    (2, 2),
    _lstm,
    ("peepholes", 3),
    {"input_forget": Attr("int", 0)},
    "One LSTM time step of every direction: (h, c) from xw[t], the previous (h, c), R, peepholes.",
)
GRUStep = _step_op(
    "GRUStep",
    (3, 3),
    (1, 1),
    _gru,
    ("rbh", 1),
    {},
    "One GRU time step (linear_before_reset) of every direction: h from xw[t], the previous h, R, Rbh.",
)
GRUResetStep = _step_op(
    "GRUResetStep",
    (3, 2),
    (1, 3),
    _gru_reset,
    None,
    {},
    "GRU without linear_before_reset, first half of a step: (r h, z, h) from xw[t], the previous h, R.",
)
GRUCandidateStep = _step_op(
    "GRUCandidateStep",
    (3, 1),
    (3, 1),
    _gru_candidate,
    None,
    {},
    "GRU without linear_before_reset, second half of a step: h from xw[t], GRUResetStep's (r h, z, h), R.",
)
RNNStep = _step_op(
    "RNNStep",
    (1, 1),
    (1, 1),
    _rnn,
    None,
    {"activation": Attr("string", "Tanh", ("Tanh", "Relu", "Sigmoid"))},
    "One RNN time step of every direction: h = f(xw[t] + h R^T).",
)
