"""LSTM, GRU and RNN as one step op per time step (LSTMStep, GRUStep, RNNStep of ir/ops/recurrent.py).

The input projection of every direction and step is one MatMul over S*B rows (the biases that add
to it folded in); each time step is one op over all directions, which lowers to one kernel
(compiler/lower/recurrent.py); Y and the final states are slices of the step outputs. Used when the
sizes are static, the type is float32, no `sequence_lens` shortens an entry, and the activations
are the ones the step ops implement: LSTM's and GRU's defaults, one of Tanh, Relu, Sigmoid for an RNN
(the same for both directions). A GRU without linear_before_reset takes two ops per step (its h gate's
product needs the whole reset gate). Other forms are unrolled into primitive ops (decompose_rnn.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from aic.ir import Value

if TYPE_CHECKING:
    from .converters import ConvertContext
    from .decompose_rnn import _Recurrence

_DEFAULT = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}
_RNN = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}


def step_activation(ctx: ConvertContext, run: _Recurrence) -> str | None:
    """The activation of the node's step op ("" for LSTM and GRU), or None when it must be unrolled."""
    if not run.x.type.is_static or run.valid is not None or run.x.type.dtype.numpy != np.float32:
        return None
    names = [n.lower() for n in ctx.attrs.get("activations") or []]
    kind = ctx.op_type
    if kind == "RNN":
        names = names[: run.num_dirs] if len(names) == 2 * run.num_dirs == 2 else names  # see decompose_rnn
        names = names or ["tanh"] * run.num_dirs
        if len(set(names)) != 1 or names[0] not in _RNN:
            return None
        return _RNN[names[0]]
    if names and names != _DEFAULT[kind] * run.num_dirs:
        return None
    return ""


def lstm_steps(run: _Recurrence) -> list[Value | None]:
    """LSTMStep per step; peepholes and input_forget as the node gives them."""
    bias = [_sum(run, d.wb, d.rb) for d in run.dirs]
    peep = run.ctx.input(7)
    attrs = {"input_forget": int(run.ctx.attrs.get("input_forget", 0))}
    return _steps(run, "LSTMStep", _projection(run, bias), 2, [peep] if peep is not None else [], attrs)


def gru_steps(run: _Recurrence) -> list[Value | None]:
    """GRUStep per step: Rbh stays apart (linear_before_reset multiplies it by r), the other biases add to xw.
    Without linear_before_reset the h gate's product needs the whole reset gate first: a GRUResetStep and a
    GRUCandidateStep per step (two kernels), every bias in xw."""
    e, hidden = run.e, run.hidden
    if not run.ctx.attrs.get("linear_before_reset", 0):
        xw = _projection(run, [_sum(run, d.wb, d.rb) for d in run.dirs])
        common = {"reverse": [int(d.reverse) for d in run.dirs], "clip": run.ctx.attrs.get("clip")}
        state, states = _initial_state(run, 1), []
        for k in range(run.steps):
            gates = e.op("GRUResetStep", xw, state, run.ctx.inputs[2], step=k, **common)
            state = e.op("GRUCandidateStep", xw, gates, run.ctx.inputs[2], step=k, **common)
            states.append(state)
        return _step_outputs(run, states, 1)
    bias: list[Value | None] = []
    extra: list[Value] = []
    for d in run.dirs:
        if d.rb is None:
            bias.append(d.wb)
            continue
        rb_zr = e.op("Slice", d.rb, e.ints([0]), e.ints([2 * hidden]))
        zeros = e.const(np.zeros(hidden, np.float32))
        bias.append(_sum(run, d.wb, e.op("Concat", rb_zr, zeros, axis=0)))
        extra.append(e.op("Unsqueeze", e.op("Slice", d.rb, e.ints([2 * hidden]), e.ints([3 * hidden])), e.ints([0])))
    rbh = [extra[0] if len(extra) == 1 else e.op("Concat", *extra, axis=0)] if extra else []
    return _steps(run, "GRUStep", _projection(run, bias), 1, rbh, {})


def rnn_steps(run: _Recurrence, activation: str) -> list[Value | None]:
    bias = [_sum(run, d.wb, d.rb) for d in run.dirs]
    return _steps(run, "RNNStep", _projection(run, bias), 1, [], {"activation": activation})


def _sum(run: _Recurrence, a: Value | None, b: Value | None) -> Value | None:
    if a is None or b is None:
        return a if b is None else b
    return run.e.op("Add", a, b)


def _projection(run: _Recurrence, bias: list[Value | None]) -> Value:
    """X @ [W_0^T | W_1^T] (+ the biases): [S, B, D*G*H], one MatMul of S*B rows."""
    e = run.e
    steps, batch, size = run.x.type.shape
    w = run.dirs[0].w if run.num_dirs == 1 else e.op("Concat", *[d.w for d in run.dirs], axis=1)
    xw = e.op("MatMul", e.op("Reshape", run.x, e.ints([-1, size])), w)
    if all(b is not None for b in bias):
        xw = e.op("Add", xw, bias[0] if run.num_dirs == 1 else e.op("Concat", *bias, axis=0))
    return e.op("Reshape", xw, e.ints([steps, batch, -1]))


def _steps(run: _Recurrence, op: str, xw: Value, rows: int, extra: list[Value], attrs: dict[str, Any]) -> list:
    """`op` once per time step, each reading the previous one's state; then the node's outputs."""
    e = run.e
    state = _initial_state(run, rows)
    common = {"reverse": [int(d.reverse) for d in run.dirs], "clip": run.ctx.attrs.get("clip"), **attrs}
    if run.num_dirs == 2:
        return _whole_outputs(run, e.op(op, xw, state, run.ctx.inputs[2], *extra, step=0, whole=1, **common), rows)
    states = []
    for k in range(run.steps):
        state = e.op(op, xw, state, run.ctx.inputs[2], *extra, step=k, **common)
        states.append(state)
    return _step_outputs(run, states, rows)


def _initial_state(run: _Recurrence, rows: int) -> Value | None:
    """(initial_h[, initial_c]) stacked as [rows, D, B, H]; None when all are absent (zeros)."""
    e = run.e
    given = [run.ctx.input(i) for i in (5, 6)[:rows]]
    if all(v is None for v in given):
        return None
    if run.batch_major:
        given = [e.op("Transpose", v, perm=[1, 0, 2]) if v is not None else None for v in given]
    zeros = e.const(np.zeros((run.num_dirs, run.x.type.shape[1], run.hidden), np.float32))
    parts = [e.op("Unsqueeze", v if v is not None else zeros, e.ints([0])) for v in given]
    return parts[0] if rows == 1 else e.op("Concat", *parts, axis=0)


def _step_outputs(run: _Recurrence, states: list[Value], rows: int) -> list[Value | None]:
    """Y [S, D, B, H] and the final states: direction d's output at time t is h of step t, or of step
    S-1-t when it runs in reverse; the last step holds every final state."""
    e, names, steps = run.e, run.ctx.output_names, run.steps
    wanted = [k < len(names) and bool(names[k]) for k in range(1 + rows)]
    results: list[Value | None] = [None] * (1 + rows)

    def part(k: int, which: int, d: int, count: int) -> Value:
        return e.op("Slice", states[k], e.ints([which, d]), e.ints([which + 1, d + count]), e.ints([0, 1]))

    if wanted[0]:
        # Every state stacked by one Concat of whole buffers (cheap to compile, unlike one of S*D slices); then
        # each direction's h in time order (reversed for a reverse direction), viewed as [S, D, B, H].
        stacked = e.op("Concat", *states, axis=0)  # [S*N, D, B, H]; the view below keeps it a kernel of its own
        stacked = e.op("Reshape", stacked, e.ints([steps, rows, run.num_dirs, -1, run.hidden]))
        limit = np.iinfo(np.int64).min
        per_dir = [
            e.op(
                "Slice",
                stacked,
                e.ints([steps - 1, 0, i]),
                e.ints([limit, 1, i + 1]),
                e.ints([0, 1, 2]),
                e.ints([-1, 1, 1]),
            )
            if d.reverse
            else e.op("Slice", stacked, e.ints([0, 0, i]), e.ints([steps, 1, i + 1]), e.ints([0, 1, 2]))
            for i, d in enumerate(run.dirs)
        ]
        y = per_dir[0] if run.num_dirs == 1 else e.op("Concat", *per_dir, axis=2)
        y_shape = e.ints([steps, run.num_dirs, -1, run.hidden])
        if run.batch_major:
            results[0] = e.out(0, "Transpose", e.op("Reshape", y, y_shape), perm=[2, 0, 1, 3])
        else:
            results[0] = e.out(0, "Reshape", y, y_shape)
    final_shape = e.ints([run.num_dirs, -1, run.hidden])
    for which in range(rows):
        if wanted[which + 1]:
            last = part(steps - 1, which, 0, run.num_dirs)
            if run.batch_major:
                results[which + 1] = e.out(which + 1, "Transpose", e.op("Reshape", last, final_shape), perm=[1, 0, 2])
            else:
                results[which + 1] = e.out(which + 1, "Reshape", last, final_shape)
    return results


def _whole_outputs(run: _Recurrence, out: Value, rows: int) -> list[Value | None]:
    """Y and the final states from a whole-sequence op's [D, S, N, B, H] (each direction's state after each of
    its steps): direction d's output at time t is its step t, or step S-1-t when it runs in reverse."""
    e, names, steps = run.e, run.ctx.output_names, run.steps
    wanted = [k < len(names) and bool(names[k]) for k in range(1 + rows)]
    results: list[Value | None] = [None] * (1 + rows)
    if wanted[0]:
        limit = np.iinfo(np.int64).min
        per_dir = [
            e.op(
                "Slice",
                out,
                e.ints([i, steps - 1, 0]),
                e.ints([i + 1, limit, 1]),
                e.ints([0, 1, 2]),
                e.ints([1, -1, 1]),
            )
            if d.reverse
            else e.op("Slice", out, e.ints([i, 0, 0]), e.ints([i + 1, steps, 1]), e.ints([0, 1, 2]))
            for i, d in enumerate(run.dirs)
        ]
        y = e.op("Reshape", e.op("Concat", *per_dir, axis=0), e.ints([run.num_dirs, steps, -1, run.hidden]))
        results[0] = e.out(0, "Transpose", y, perm=[2, 1, 0, 3] if run.batch_major else [1, 0, 2, 3])
    for which in range(rows):
        if wanted[which + 1]:
            last = e.op("Slice", out, e.ints([steps - 1, which]), e.ints([steps, which + 1]), e.ints([1, 2]))
            shape = e.ints([run.num_dirs, -1, run.hidden])
            if run.batch_major:
                results[which + 1] = e.out(which + 1, "Transpose", e.op("Reshape", last, shape), perm=[1, 0, 2])
            else:
                results[which + 1] = e.out(which + 1, "Reshape", last, shape)
    return results
