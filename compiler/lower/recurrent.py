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

from .core import LowerCtx, Tensor, const, idx, linear
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


Prev = Callable[[int, Expr, Expr, Expr], Expr | None]  # (state row, d, b, j) -> the previous state; None: zeros
Put = Callable[[int, Expr, Expr, Expr, Expr], Stmt]  # (state row, d, b, j, value) -> its stores


@anchor(*GATES, epilogue=False)
def _recurrent_step(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    xw, state, r = ins[0], ins[1], ins[2]
    extras = list(ins[3:])
    assert xw is not None and r is not None
    (gates, first), update = GATES[node.op], UPDATES[node.op]
    steps, batch, _ = xw.shape
    dirs, _, hidden = r.shape
    step, clip, whole = node.attrs["step"], node.attrs.get("clip"), node.attrs.get("whole", 0)
    width = block_width(hidden, ctx.lanes, gates) if ctx.lanes > 1 else 1
    rows, blocks = _rows(batch), hidden // width
    r_const = node.inputs[2].const
    packed = None
    if r_const is not None and ctx.lanes > 1:
        packed = ctx.weight(_packed_weight(np.asarray(r_const), first, gates, width), "rp")
    vec_loops: list[str] = []
    unrolled: list[str] = []

    # The time step each direction reads (per step with `whole`), as a small weight rather than a constant in
    # the code: every step's kernel is then the same code (compiled once), bound to its own step table.
    ks = range(steps) if whole else [step]
    step_table = ctx.weight(np.asarray([[steps - 1 - k if rev else k for k in ks] for rev in node.attrs["reverse"]],
                                       np.int64), "t")  # fmt: skip

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

    def block(d: Expr, jb: Expr, b0: Expr, k: Expr, prev: Prev, put: Put) -> Stmt:
        acc = stack(ctx, F32, rows * gates * width)

        def at(rr: Expr, g: int, c: Expr) -> Expr:
            return binop("add", binop("mul", rr, idx(gates * width)), binop("add", idx(g * width), c))

        def per_gate(body: Callable[[int, Expr], Stmt]) -> Stmt:
            return seq(*[loop(width, lambda c, g=g: body(g, c), "c", vec_loops) for g in range(gates)])

        zero = loop(rows, lambda rr: per_gate(lambda g, c: Store(acc, at(rr, g, c), const(0, F32))), "zr", unrolled)
        main = None
        if prev(0, d, b0, idx(0)) is not None:

            def k_step(kk: Expr) -> Stmt:
                def row(rr: Expr) -> Stmt:
                    hk = ctx.let(prev(0, d, binop("add", b0, rr), kk), "h")  # type: ignore[arg-type]
                    return per_gate(
                        lambda g, c: Store(
                            acc, at(rr, g, c), Call("fma", (hk, weight(d, jb, kk, g, c), Load(acc, at(rr, g, c))))
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
                    return xw.at([step_table.at([d, k]), b, column])

                def previous(which: int) -> Expr | None:
                    v = prev(which, d, b, j)
                    return ctx.let(v, "s") if v is not None else None

                def extra(i: int, g: int) -> Expr | None:
                    t = extras[i] if i < len(extras) else None
                    return t.at([d, binop("add", idx(g * hidden), j)]) if t is not None else None

                values = update(ctx, node, Unit(lambda g: Load(acc, at(rr, g, c)), x, previous, extra, clipped))
                return seq(*[put(w, d, b, j, v) for w, v in enumerate(values)])

            return loop(width, unit, "u", vec_loops)

        store = loop(rows, finish, "sr", unrolled)
        return Allocate(acc, seq(zero, main, store))

    def blocks_of(d: Expr, k: Expr, reverse: bool, prev: Prev, put: Put) -> Stmt:
        """One step of direction d over its blocks; in reverse order on odd steps: what the last step read last
        (a direction's R, 1 MiB at H 256, streams through a 512 KiB L2) is then still in L2 for this one."""

        def ordered(jb: Expr) -> Expr:
            return binop("sub", idx(blocks - 1), jb) if reverse else jb

        return ctx.loops(
            (blocks, batch // rows),
            lambda i: block(d, ordered(i[0]), binop("mul", i[1], idx(rows)), k, prev, put),
            "blk",
        )

    def given(which: int, d: Expr, b: Expr, j: Expr) -> Expr | None:
        return state.at([idx(which), d, b, j]) if state is not None else None

    if not whole:
        body = ctx.loop(
            dirs,
            lambda d: blocks_of(d, idx(0), step % 2 == 1, given, lambda w, d, b, j, v: emit(0, [idx(w), d, b, j], v)),
            "blk",
        )
    else:
        body = _whole_sequence(ctx, node, emit, blocks_of, given, (dirs, steps, batch, hidden))
    _hints(ctx, unrolled, vec_loops, width)
    return body


def _whole_sequence(
    ctx: LowerCtx, node: Node, emit: Emit, blocks_of: Callable[..., Stmt], given: Prev, sizes: tuple[int, ...]
) -> Stmt:
    """Every step, one direction per iteration of the outer (parallel) loop: a thread runs its direction's
    whole sequence with no barrier between steps. Step k's state goes to the output [D, S, N, B, H] and to
    slot k % 2 of a scratch [D, 2, N, B, H] that step k + 1 reads (each direction's own slice of both)."""
    dirs, steps, batch, hidden = sizes
    rows_out = node.outputs[0].type.shape[2]
    shape = (dirs, 2, rows_out, batch, hidden)
    scratch = ctx.scratch(F32, int(np.prod(shape)))

    def at(d: Expr, slot: int, which: int, b: Expr, j: Expr) -> Expr:
        return linear([d, idx(slot), idx(which), b, j], shape)

    def put(k: Expr, slot: int) -> Put:
        def stores(which: int, d: Expr, b: Expr, j: Expr, v: Expr) -> Stmt:
            v = ctx.let(v, "n")
            return seq(emit(0, [d, k, idx(which), b, j], v), Store(scratch, at(d, slot, which, b, j), v))

        return stores

    def read(slot: int) -> Prev:
        return lambda which, d, b, j: Load(scratch, at(d, slot, which, b, j))

    def step(d: Expr, k: Expr, odd: int) -> Stmt:
        return blocks_of(d, k, odd == 1, read(1 - odd), put(k, odd))

    def direction(d: Expr) -> Stmt:
        pairs = ctx.loop(
            (steps - 1) // 2,
            lambda p: seq(
                step(d, binop("add", binop("mul", p, idx(2)), idx(1)), 1),
                step(d, binop("add", binop("mul", p, idx(2)), idx(2)), 0),
            ),
            "pair",
        )
        last = step(d, idx(steps - 1), 1) if steps > 1 and (steps - 1) % 2 == 1 else None
        return seq(blocks_of(d, idx(0), False, given, put(idx(0), 0)), pairs, last)

    return ctx.loop(dirs, direction, "dir")


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
