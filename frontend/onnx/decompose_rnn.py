"""RNN, GRU and LSTM: one step op per time step where it applies (rnn_steps.py), else unrolled
into primitive ops, one group of ops per time step.

The sequence length must be static. For each direction the input projection
X @ W^T (+ both biases where they add up) is one MatMul over the whole
sequence; each step then adds H @ R^T, applies the gate activations (any of
the ONNX list, with activation_alpha/beta consumed in order by the functions
that take them, like onnxruntime) after the optional clip, and updates the
state. A zero initial state is left out of the arithmetic. With
`sequence_lens`, a step past a batch entry's length keeps its state and
writes zeros to Y (the reverse direction starts at each entry's last step).
layout=1 (batch-major) transposes in and out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from aic.ir import Value

from .converters import ConvertContext, converter
from .decompose_seq import Emit
from .rnn_steps import gru_steps, lstm_steps, rnn_steps, step_activation

# name -> (uses alpha, uses beta, default alpha, default beta)
_ACTIVATIONS = {
    "relu": (False, False, 0.0, 0.0),
    "tanh": (False, False, 0.0, 0.0),
    "sigmoid": (False, False, 0.0, 0.0),
    "softsign": (False, False, 0.0, 0.0),
    "softplus": (False, False, 0.0, 0.0),
    "leakyrelu": (True, False, 0.01, 0.0),
    "thresholdedrelu": (True, False, 1.0, 0.0),
    "elu": (True, False, 1.0, 0.0),
    "hardsigmoid": (True, True, 0.2, 0.5),
    "affine": (True, True, 1.0, 0.0),
    "scaledtanh": (True, True, 1.0, 1.0),
}
_SIMPLE = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softsign": "Softsign", "softplus": "Softplus"}
_DEFAULTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}

Activation = Callable[..., Value]  # (x, clipped=True)


@dataclass
class _Direction:
    """One direction's weights, laid out for x @ w: w [I, G*H], r [H, G*H]."""

    w: Value
    r: Value
    wb: Value | None  # [G*H]
    rb: Value | None  # [G*H]
    p: Value | None  # LSTM peepholes [3*H]
    acts: list[Activation]
    reverse: bool


def _activations(ctx: ConvertContext, e: Emit, count: int, clip: float | None) -> list[Activation]:
    per_dir = len(_DEFAULTS[ctx.op_type])
    names = ctx.attrs.get("activations") or _DEFAULTS[ctx.op_type] * (count // per_dir)
    if len(names) == 2 * count == 2 * per_dir:
        names = names[:count]  # a one-direction op given both directions' list (RNN's schema default)
    if len(names) != count:
        raise ctx.error(f"expects {count} activations, got {names}")
    alphas, betas = list(ctx.attrs.get("activation_alpha", [])), list(ctx.attrs.get("activation_beta", []))
    acts = []
    for name in names:
        key = name.lower()
        if key not in _ACTIVATIONS:
            raise ctx.error(f"activation '{name}' is not supported; expected one of {sorted(_ACTIVATIONS)}")
        takes_alpha, takes_beta, alpha, beta = _ACTIVATIONS[key]
        if takes_alpha and alphas:
            alpha = alphas.pop(0)
        if takes_beta and betas:
            beta = betas.pop(0)
        acts.append(_activation(e, key, alpha, beta, clip))
    return acts


def _activation(e: Emit, key: str, alpha: float, beta: float, clip: float | None) -> Activation:
    def apply(x: Value, clipped: bool = True) -> Value:
        if clip is not None and clipped:
            x = e.op("Clip", x, e.scalar(-clip, x), e.scalar(clip, x))
        if key in _SIMPLE:
            return e.op(_SIMPLE[key], x)
        if key == "leakyrelu":
            return e.op("LeakyRelu", x, alpha=alpha)
        if key == "thresholdedrelu":
            return e.op("ThresholdedRelu", x, alpha=alpha)
        if key == "elu":
            return e.op("Elu", x, alpha=alpha)
        if key == "hardsigmoid":
            return e.op("HardSigmoid", x, alpha=alpha, beta=beta)
        if key == "affine":
            return e.op("Add", e.op("Mul", x, e.scalar(alpha, x)), e.scalar(beta, x))
        return e.op("Mul", e.op("Tanh", e.op("Mul", x, e.scalar(beta, x))), e.scalar(alpha, x))  # scaledtanh

    return apply


def _pick(e: Emit, v: Value, d: int) -> Value:
    """Direction d's slice of a per-direction input."""
    return e.op("Gather", v, e.scalar(d, np.int64), axis=0)


def _add(e: Emit, a: Value | None, b: Value | None) -> Value | None:
    """a + b where None stands for zero."""
    if a is None or b is None:
        return a if b is None else b
    return e.op("Add", a, b)


class _Recurrence:
    """Shared driver: inputs, directions, time steps, outputs."""

    def __init__(self, ctx: ConvertContext) -> None:
        self.ctx, self.e = ctx, Emit(ctx)
        e, kind = self.e, ctx.op_type
        x, w, r = ctx.inputs[:3]
        self.batch_major = bool(ctx.attrs.get("layout", 0))
        direction = ctx.attrs.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ctx.error(f"direction '{direction}' must be forward, reverse or bidirectional")
        self.num_dirs = 2 if direction == "bidirectional" else 1
        self.hidden = ctx.attrs.get("hidden_size") or r.type.shape[-1]
        if not isinstance(self.hidden, int) or x.type.rank != 3:
            raise ctx.error(f"needs a rank-3 X and a static hidden size, got X {x.type}, R {r.type}")
        self.x = e.op("Transpose", x, perm=[1, 0, 2]) if self.batch_major else x
        self.steps = self.x.type.shape[0]
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ctx.error(f"needs a static sequence length of at least 1, got X {x.type}")
        clip = ctx.attrs.get("clip")
        per_dir = len(_DEFAULTS[kind])
        acts = _activations(ctx, e, per_dir * self.num_dirs, clip)
        self.dirs = []
        for d in range(self.num_dirs):
            wb = rb = None
            if ctx.input(3) is not None:
                wb, rb = e.split(_pick(e, ctx.input(3), d), 2)
            self.dirs.append(
                _Direction(
                    e.op("Transpose", _pick(e, w, d), perm=[1, 0]),
                    e.op("Transpose", _pick(e, r, d), perm=[1, 0]),
                    wb,
                    rb,
                    _pick(e, ctx.input(7), d) if kind == "LSTM" and ctx.input(7) is not None else None,
                    acts[d * per_dir : (d + 1) * per_dir],
                    direction == "reverse" or d == 1,
                )
            )
        self.valid = self._valid_steps(ctx.input(4))
        self._valid_at: dict[int, Value] = {}

    def initial(self, index: int, d: int) -> Value | None:
        """Direction d's initial state from input `index` (None: zeros)."""
        v = self.ctx.input(index)
        if v is None:
            return None
        if self.batch_major:
            v = self.e.op("Transpose", v, perm=[1, 0, 2])
        return _pick(self.e, v, d)

    def _valid_steps(self, lens: Value | None) -> Value | None:
        """[S, B, 1] bool: whether step t is within batch entry b's length (None: all are)."""
        if lens is None:
            return None
        if lens.const is not None and np.all(lens.const == self.steps):
            return None
        e = self.e
        t = e.op("Unsqueeze", e.arange(self.steps), e.ints([1]))
        valid = e.op("Less", t, e.op("Unsqueeze", e.cast(lens, np.int64), e.ints([0])))
        return e.op("Unsqueeze", valid, e.ints([2]))

    def projection(self, d: _Direction, bias: Value | None) -> Value:
        """X @ W^T + bias over the whole sequence: [S, B, G*H]."""
        xw = self.e.op("MatMul", self.x, d.w)
        return xw if bias is None else self.e.op("Add", xw, bias)

    def step_input(self, xw: Value, t: int) -> Value:
        return self.e.op("Gather", xw, self.e.scalar(t, np.int64), axis=0)

    def order(self, d: _Direction) -> list[int]:
        return list(range(self.steps - 1, -1, -1) if d.reverse else range(self.steps))

    def keep(self, t: int, new: Value, old: Value | None) -> Value:
        """The state after step t: `new` where the step is valid, else `old`."""
        if self.valid is None:
            return new
        e = self.e
        if t not in self._valid_at:
            self._valid_at[t] = e.op("Gather", self.valid, e.scalar(t, np.int64), axis=0)
        return e.op("Where", self._valid_at[t], new, old if old is not None else e.scalar(0, new))

    def outputs(self, hs: list[list[Value]], finals: list[list[Value]]) -> list[Value | None]:
        """Y from each direction's per-step outputs (in time order), then the final states."""
        e, names = self.e, self.ctx.output_names
        wanted = [k < len(names) and bool(names[k]) for k in range(1 + len(finals))]
        results: list[Value | None] = [None] * len(wanted)
        if wanted[0]:
            per_dir = [e.op("Concat", *[e.op("Unsqueeze", h, e.ints([0])) for h in seq], axis=0) for seq in hs]
            results[0] = self._stack(0, per_dir, 1, [2, 0, 1, 3])
        for k, states in enumerate(finals, start=1):
            if wanted[k]:
                results[k] = self._stack(k, states, 0, [1, 0, 2])
        return results

    def _stack(self, k: int, values: list[Value], axis: int, batch_major: list[int]) -> Value:
        """Output k: `values` stacked along a new `axis`, batch-major when layout=1."""
        e = self.e
        if self.batch_major:
            stacked = e.op("Concat", *[e.op("Unsqueeze", v, e.ints([axis])) for v in values], axis=axis)
            return e.out(k, "Transpose", stacked, perm=batch_major)
        if len(values) == 1:
            return e.out(k, "Unsqueeze", values[0], e.ints([axis]))
        return e.out(k, "Concat", *[e.op("Unsqueeze", v, e.ints([axis])) for v in values], axis=axis)

    def masked_output(self, t: int, h: Value) -> Value:
        """What step t writes to Y: zeros past the entry's length."""
        return self.keep(t, h, None)


@converter("RNN", 7)
def rnn(ctx: ConvertContext) -> list[Value | None]:
    """Ht = f(Xt W^T + Ht-1 R^T + Wb + Rb)."""
    run = _Recurrence(ctx)
    activation = step_activation(ctx, run)
    if activation is not None:
        return rnn_steps(run, activation)
    e = run.e
    hs, finals = [], []
    for i, d in enumerate(run.dirs):
        xw = run.projection(d, _add(e, d.wb, d.rb))
        h = run.initial(5, i)
        seq: dict[int, Value] = {}
        for t in run.order(d):
            pre = _add(e, run.step_input(xw, t), e.op("MatMul", h, d.r) if h is not None else None)
            new = d.acts[0](pre)
            seq[t] = run.masked_output(t, new)
            h = run.keep(t, new, h)
        hs.append([seq[t] for t in range(run.steps)])
        finals.append(h)
    return run.outputs(hs, [finals])


@converter("GRU", 7)
def gru(ctx: ConvertContext) -> list[Value | None]:
    """z, r = f(...); h~ = g(Xt Wh^T + (r . Ht-1) Rh^T + Rbh + Wbh), or with
    linear_before_reset g(Xt Wh^T + r . (Ht-1 Rh^T + Rbh) + Wbh); Ht = (1 - z) h~ + z Ht-1."""
    run = _Recurrence(ctx)
    if step_activation(ctx, run) is not None:
        return gru_steps(run)
    e, hidden = run.e, run.hidden
    before_reset = bool(ctx.attrs.get("linear_before_reset", 0))
    hs, finals = [], []
    for i, d in enumerate(run.dirs):
        rbh = None
        bias = d.wb
        if d.rb is not None:
            rb_zr = e.op("Slice", d.rb, e.ints([0]), e.ints([2 * hidden]))
            rbh = e.op("Slice", d.rb, e.ints([2 * hidden]), e.ints([3 * hidden]))
            if before_reset:
                zeros = e.op("Mul", rbh, e.scalar(0, rbh))
                bias = _add(e, bias, e.op("Concat", rb_zr, zeros, axis=0))
            else:
                bias, rbh = _add(e, bias, d.rb), None
        xw = run.projection(d, bias)
        r_zr = e.op("Slice", d.r, e.ints([0]), e.ints([2 * hidden]), e.ints([1]))
        r_h = e.op("Slice", d.r, e.ints([2 * hidden]), e.ints([3 * hidden]), e.ints([1]))
        f, g = d.acts
        h = run.initial(5, i)
        seq: dict[int, Value] = {}
        for t in run.order(d):
            xz, xr, xh = e.split(run.step_input(xw, t), 3)
            hz = hr = None
            if h is not None:
                hz, hr = e.split(e.op("MatMul", h, r_zr), 2)
            z, r = f(_add(e, xz, hz)), f(_add(e, xr, hr))
            if before_reset:
                recur = _add(e, e.op("MatMul", h, r_h) if h is not None else None, rbh)
                recur = e.op("Mul", r, recur) if recur is not None else None
            else:
                recur = e.op("MatMul", e.op("Mul", r, h), r_h) if h is not None else None
            candidate = g(_add(e, xh, recur))
            one_minus_z = e.op("Sub", e.scalar(1, z), z)
            new = e.op("Mul", one_minus_z, candidate)
            if h is not None:
                new = e.op("Add", new, e.op("Mul", z, h))
            seq[t] = run.masked_output(t, new)
            h = run.keep(t, new, h)
        hs.append([seq[t] for t in range(run.steps)])
        finals.append(h)
    return run.outputs(hs, [finals])


@converter("LSTM", 7)
def lstm(ctx: ConvertContext) -> list[Value | None]:
    """Gates i, o, f, c (peepholes P[iof] on the cell state, input_forget couples
    f = 1 - i); Ct = f . Ct-1 + i . g(c); Ht = o . h(Ct)."""
    run = _Recurrence(ctx)
    if step_activation(ctx, run) is not None:
        return lstm_steps(run)
    e = run.e
    coupled = bool(ctx.attrs.get("input_forget", 0))
    hs, h_finals, c_finals = [], [], []
    for i, d in enumerate(run.dirs):
        xw = run.projection(d, _add(e, d.wb, d.rb))
        pi = po = pf = None
        if d.p is not None:
            pi, po, pf = e.split(d.p, 3)
        f, g, act_h = d.acts
        h, c = run.initial(5, i), run.initial(6, i)
        seq: dict[int, Value] = {}
        for t in run.order(d):
            gates = _add(e, run.step_input(xw, t), e.op("MatMul", h, d.r) if h is not None else None)
            gi, go, gf, gc = e.split(gates, 4)
            peep = lambda p, state: e.op("Mul", p, state) if p is not None and state is not None else None  # noqa: E731
            in_gate = f(_add(e, gi, peep(pi, c)))
            forget = e.op("Sub", e.scalar(1, in_gate), in_gate) if coupled else f(_add(e, gf, peep(pf, c)))
            new_c = e.op("Mul", in_gate, g(gc))
            if c is not None:
                new_c = e.op("Add", e.op("Mul", forget, c), new_c)
            out_gate = f(_add(e, go, peep(po, new_c)))
            new_h = e.op("Mul", out_gate, act_h(new_c, clipped=False))
            seq[t] = run.masked_output(t, new_h)
            h, c = run.keep(t, new_h, h), run.keep(t, new_c, c)
        hs.append([seq[t] for t in range(run.steps)])
        h_finals.append(h)
        c_finals.append(c)
    return run.outputs(hs, [h_finals, c_finals])
