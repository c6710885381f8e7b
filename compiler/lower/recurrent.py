"""Lowering of the recurrent step ops (LSTMStep, GRUStep, RNNStep, GRUResetStep, GRUCandidateStep): one
kernel per time step, the recurrent product with the gate math, the state update and the state write as its
epilogue.

The loops run over (direction, block of `width` hidden units), which the default schedule fuses
into the parallel loop, so both directions run at once. Each block accumulates its G gates
(G x width accumulators per batch row, about eight vectors) over K = H with one fused multiply-add
per weight, then applies the cell's gate math and stores the new state.

A constant R is packed at compile time into [D, H/width, H, G, width]: a block's weights are one
contiguous run of 4 * G * width * H bytes in the order the K loop reads them, so each step streams R
once. The packed array is made once per R and shared by every step's kernel (one weight in the
artifact). A non-constant R is read in place. The step number is data (a table of each direction's time step),
so the kernels of all steps but the first (which starts from a zero state) are two pieces of code: even
steps run the blocks in ascending order, odd steps in descending, so the blocks a step reads last (their R
still in L2) are the next step's first.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Allocate, Call, Expr, For, Load, Stmt, Store
from aic.ir.loop_tools import binop, seq
from aic.ir.schedule import Unroll, Vectorize

from .core import LowerCtx, Tensor, const, idx
from .mathx import add, call, maximum, minimum, mul, sigmoid, sub
from .reduce import stack
from .table import Emit, anchor

# op -> (gates it computes, the first of them in R and xw)
GATES = {"LSTMStep": (4, 0), "GRUStep": (3, 0), "RNNStep": (1, 0), "GRUResetStep": (2, 0), "GRUCandidateStep": (1, 2)}
CHAINS = 8  # accumulator vectors per batch row that keep the FMA units busy
MAX_ROWS = 4  # batch rows sharing one pass over R
F32 = DType.float32

_packed: dict[tuple[int, int, int], tuple[weakref.ref, np.ndarray]] = {}  # (id(R), gates) -> (R, packed)


def block_width(hidden: int, lanes: int, gates: int = 4) -> int:
    """Hidden units per block: whole vectors, as many as give about CHAINS accumulators per row over the
    G gates, when they divide H; else the largest divisor of H up to one vector."""
    for vectors in range(max(1, CHAINS // gates), 0, -1):
        if hidden % (vectors * lanes) == 0:
            return vectors * lanes
    return max(w for w in range(1, min(lanes, hidden) + 1) if hidden % w == 0)


def pack_recurrent(r: np.ndarray, width: int) -> np.ndarray:
    """[D, G*H, H] -> [D, H/width, H, G, width]: per block of hidden units, for each k the G gates' weights."""
    dirs, gh, hidden = r.shape
    blocks = r.astype(np.float32).reshape(dirs, gh // hidden, hidden // width, width, hidden)
    return np.ascontiguousarray(blocks.transpose(0, 2, 4, 1, 3))


def _packed_weight(r: np.ndarray, first: int, gates: int, width: int) -> np.ndarray:
    """Gates first .. first+gates-1 of R packed, made once per (R array, gates, width) so every step's kernel
    binds the same weight; the entry goes when R does."""
    hidden = r.shape[-1]
    key = (id(r), first, gates)
    entry = _packed.get(key)
    if entry is not None and entry[0]() is r and entry[1].shape[-1] == width:
        return entry[1]
    packed = pack_recurrent(r[:, first * hidden : (first + gates) * hidden], width)
    _packed[key] = (weakref.ref(r), packed)
    weakref.finalize(r, _packed.pop, key, None)
    return packed


def _rows(batch: int) -> int:
    return max(n for n in range(1, min(batch, MAX_ROWS) + 1) if batch % n == 0)


@dataclass
class Unit:
    """What a cell's update sees of one hidden unit j of direction d, batch row b (vectors along j)."""

    acc: Callable[[int], Expr]  # gate g's recurrent product (h @ R_g^T)[b, j]
    x: Callable[[int], Expr]  # gate g's input projection xw[t, b, d, g, j]
    prev: Callable[[int], Expr | None]  # row `which` of the previous state at (d, b, j); None when zero
    extra: Callable[[int, int], Expr | None]  # element g*H + j of direction d of extra input i; None if absent
    clip: Callable[[Expr], Expr]  # the op's clip of a pre-activation


Update = Callable[[LowerCtx, Node, Unit], list[Expr]]  # the new state rows


def _lstm(ctx: LowerCtx, node: Node, u: Unit) -> list[Expr]:
    """i, o, f, c with peepholes (extra input 0) and input_forget; Ct = f Ct-1 + i tanh(c), Ht = o tanh(Ct)."""

    def gate(g: int, cell: Expr | None, peep: int) -> Expr:
        v = add(u.acc(g), u.x(g))
        p = u.extra(0, peep)
        return u.clip(v if p is None or cell is None else add(v, mul(p, cell)))

    c_prev = u.prev(1)
    i = ctx.let(sigmoid(gate(0, c_prev, 0)), "i")
    f = sub(const(1, F32), i) if node.attrs.get("input_forget", 0) else sigmoid(gate(2, c_prev, 2))
    cand = mul(i, call("tanh", gate(3, None, 0)))
    cell = ctx.let(add(mul(f, c_prev), cand) if c_prev is not None else cand, "cn")
    return [mul(sigmoid(gate(1, cell, 1)), call("tanh", cell)), cell]


def _gru(ctx: LowerCtx, node: Node, u: Unit) -> list[Expr]:
    """z, r, h with linear_before_reset: n = tanh(xh + r (h Rh^T + Rbh)); Ht = (1 - z) n + z Ht-1
    (Rbh: extra input 0)."""
    z = ctx.let(sigmoid(u.clip(add(u.acc(0), u.x(0)))), "z")
    r = sigmoid(u.clip(add(u.acc(1), u.x(1))))
    rbh = u.extra(0, 0)
    recur = u.acc(2) if rbh is None else add(u.acc(2), rbh)
    n = call("tanh", u.clip(add(u.x(2), mul(r, recur))))
    h_prev = u.prev(0)
    new = mul(sub(const(1, F32), z), n)
    return [new if h_prev is None else add(new, mul(z, h_prev))]


def _rnn(ctx: LowerCtx, node: Node, u: Unit) -> list[Expr]:
    """Ht = f(clip(xt + Ht-1 R^T)), f one of tanh, relu, sigmoid."""
    v = u.clip(add(u.acc(0), u.x(0)))
    kind = node.attrs["activation"]
    if kind == "Relu":
        return [maximum(v, const(0, F32))]
    return [sigmoid(v) if kind == "Sigmoid" else call("tanh", v)]


def _gru_reset(ctx: LowerCtx, node: Node, u: Unit) -> list[Expr]:
    """GRU without linear_before_reset, first half: (r Ht-1, z, Ht-1) for the candidate step."""
    z = sigmoid(u.clip(add(u.acc(0), u.x(0))))
    r = sigmoid(u.clip(add(u.acc(1), u.x(1))))
    h_prev = u.prev(0)
    if h_prev is None:
        return [const(0, F32), z, const(0, F32)]
    return [mul(r, h_prev), z, h_prev]


def _gru_candidate(ctx: LowerCtx, node: Node, u: Unit) -> list[Expr]:
    """Second half: n = tanh(xh + (r Ht-1) Rh^T) (Rbh is in xh); Ht = (1 - z) n + z Ht-1."""
    n = call("tanh", u.clip(add(u.x(0), u.acc(0))))
    z, h_prev = u.prev(1), u.prev(2)
    assert z is not None and h_prev is not None
    return [add(mul(sub(const(1, F32), z), n), mul(z, h_prev))]


UPDATES: dict[str, Update] = {
    "LSTMStep": _lstm,
    "GRUStep": _gru,
    "RNNStep": _rnn,
    "GRUResetStep": _gru_reset,
    "GRUCandidateStep": _gru_candidate,
}


@anchor(*GATES, epilogue=False)
def _recurrent_step(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    xw, state, r = ins[0], ins[1], ins[2]
    extras = list(ins[3:])
    assert xw is not None and r is not None
    (gates, first), update = GATES[node.op], UPDATES[node.op]
    steps, batch, _ = xw.shape
    dirs, _, hidden = r.shape
    step, clip = node.attrs["step"], node.attrs.get("clip")
    times = [steps - 1 - step if rev else step for rev in node.attrs["reverse"]]
    width = block_width(hidden, ctx.lanes, gates) if ctx.lanes > 1 else 1
    rows = _rows(batch)
    r_const = node.inputs[2].const
    packed = None
    if r_const is not None and ctx.lanes > 1:
        packed = ctx.weight(_packed_weight(np.asarray(r_const), first, gates, width), "rp")
    vec_loops: list[str] = []
    unrolled: list[str] = []

    # The time step each direction reads, as a small weight rather than a constant in the code: every step's
    # kernel is then the same code (compiled once), bound to its own step table.
    step_table = ctx.weight(np.asarray(times, np.int64), "t")

    def time_of(d: Expr) -> Expr:
        return step_table.at([d])

    def weight(d: Expr, jb: Expr, k: Expr, g: int, c: Expr) -> Expr:
        if packed is not None:
            return packed.at([d, jb, k, idx(g), c])
        row = binop("add", idx((first + g) * hidden), binop("add", binop("mul", jb, idx(width)), c))
        return r.at([d, row, k])

    def clipped(v: Expr) -> Expr:
        return v if clip is None else minimum(maximum(v, const(-clip, F32)), const(clip, F32))

    def loop(extent: int, body: Callable[[Expr], Stmt], hint: str, names: list[str]) -> Stmt:
        s = ctx.loop(extent, body, hint)
        if extent > 1 and isinstance(s, For):
            names.append(s.var.name)
        return s

    def block(d: Expr, jb: Expr, b0: Expr) -> Stmt:
        acc = stack(ctx, F32, rows * gates * width)

        def at(rr: Expr, g: int, c: Expr) -> Expr:
            return binop("add", binop("mul", rr, idx(gates * width)), binop("add", idx(g * width), c))

        def per_gate(body: Callable[[int, Expr], Stmt]) -> Stmt:
            return seq(*[loop(width, lambda c, g=g: body(g, c), "c", vec_loops) for g in range(gates)])

        zero = loop(rows, lambda rr: per_gate(lambda g, c: Store(acc, at(rr, g, c), const(0, F32))), "zr", unrolled)
        main = None
        if state is not None:

            def k_step(k: Expr) -> Stmt:
                def row(rr: Expr) -> Stmt:
                    hk = ctx.let(state.at([idx(0), d, binop("add", b0, rr), k]), "h")
                    return per_gate(
                        lambda g, c: Store(
                            acc, at(rr, g, c), Call("fma", (hk, weight(d, jb, k, g, c), Load(acc, at(rr, g, c))))
                        )
                    )

                return loop(rows, row, "r", unrolled)

            main = ctx.loop(hidden, k_step, "k")

        def finish(rr: Expr) -> Stmt:
            def unit(c: Expr) -> Stmt:
                b = binop("add", b0, rr)
                j = binop("add", binop("mul", jb, idx(width)), c)

                def x(g: int) -> Expr:
                    per_dir = xw.shape[2] // dirs
                    column = binop("add", binop("mul", d, idx(per_dir)), binop("add", idx((first + g) * hidden), j))
                    return xw.at([time_of(d), b, column])

                def prev(which: int) -> Expr | None:
                    return ctx.let(state.at([idx(which), d, b, j]), "s") if state is not None else None

                def extra(i: int, g: int) -> Expr | None:
                    t = extras[i] if i < len(extras) else None
                    return t.at([d, binop("add", idx(g * hidden), j)]) if t is not None else None

                values = update(ctx, node, Unit(lambda g: Load(acc, at(rr, g, c)), x, prev, extra, clipped))
                return seq(*[emit(0, [idx(w), d, b, j], v) for w, v in enumerate(values)])

            return loop(width, unit, "u", vec_loops)

        store = loop(rows, finish, "sr", unrolled)
        return Allocate(acc, seq(zero, main, store))

    blocks = hidden // width

    def ordered(jb: Expr) -> Expr:
        """Odd steps take a thread's blocks in reverse: what the last step read last is still in its L2 (a
        direction's R, 1 MiB at H 256, streams through a 512 KiB L2; in one order every block would miss)."""
        return binop("sub", idx(blocks - 1), jb) if step % 2 else jb

    body = ctx.loops(
        (dirs, blocks, batch // rows), lambda i: block(i[0], ordered(i[1]), binop("mul", i[2], idx(rows))), "blk"
    )
    _hints(ctx, unrolled, vec_loops, width)
    return body


def _hints(ctx: LowerCtx, unrolled: list[str], vec_loops: list[str], width: int) -> None:
    """Unroll the batch-row loops; vectorize the loops along a block's hidden units, whole vectors unrolled."""
    for name in unrolled:
        ctx.hints.append(Unroll(name))
    lanes = min(ctx.lanes, width)
    if ctx.lanes == 1 or lanes < 2:
        return
    for name in vec_loops:
        ctx.hints.append(Vectorize(name, lanes))
        if width // lanes > 1:
            ctx.hints.append(Unroll(f"{name}.v"))
