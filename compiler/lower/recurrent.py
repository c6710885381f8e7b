"""Lowering of LSTMStep: one kernel per time step, the recurrent product with the gate math as its epilogue.

The loops run over (direction, block of `width` hidden units), which the default schedule fuses
into the parallel loop, so both directions run at once. Each block accumulates its four gates
(`4 x width` vector accumulators per batch row) over K = H with one fused multiply-add per
weight, then applies the gate activations, updates the cell and stores h and c.

A constant R is packed at compile time into [D, H/width, H, 4, width]: a block's weights are one
contiguous run of 16 * width * H bytes in the order the K loop reads them, so each step streams R
once. The packed array is made once per R and shared by every step's kernel (one weight in the
artifact). A non-constant R is read in place.
"""

from __future__ import annotations

import weakref

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

GATES = 4  # i, o, f, c (ONNX order)
MAX_ROWS = 4  # batch rows sharing one pass over R

_packed: dict[int, tuple[weakref.ref, np.ndarray]] = {}  # id(R) -> (R, R packed), shared by the steps


def block_width(hidden: int, lanes: int) -> int:
    """Hidden units per block: two vectors when they divide H (eight independent accumulator chains),
    else the largest divisor of H up to one vector."""
    if hidden % (2 * lanes) == 0:
        return 2 * lanes
    return max(w for w in range(1, min(lanes, hidden) + 1) if hidden % w == 0)


def pack_recurrent(r: np.ndarray, width: int) -> np.ndarray:
    """[D, 4H, H] -> [D, H/width, H, 4, width]: per block of hidden units, for each k the 4 gates' weights."""
    dirs, _, hidden = r.shape
    blocks = r.astype(np.float32).reshape(dirs, GATES, hidden // width, width, hidden)
    return np.ascontiguousarray(blocks.transpose(0, 2, 4, 1, 3))


def _packed_weight(r: np.ndarray, width: int) -> np.ndarray:
    """The packed R, made once per (R array, width) so every step's kernel binds the same weight."""
    for key in [k for k, (ref, _) in _packed.items() if ref() is None]:
        del _packed[key]
    entry = _packed.get(id(r))
    if entry is not None and entry[0]() is r and entry[1].shape[-1] == width:
        return entry[1]
    packed = pack_recurrent(r, width)
    _packed[id(r)] = (weakref.ref(r), packed)
    return packed


def _rows(batch: int) -> int:
    return max(n for n in range(1, min(batch, MAX_ROWS) + 1) if batch % n == 0)


@anchor("LSTMStep", epilogue=False)
def _lstm_step(ctx: LowerCtx, node: Node, ins: list[Tensor | None], emit: Emit) -> Stmt:
    xw, state, r = ins[0], ins[1], ins[2]
    peep = ins[3] if len(ins) > 3 else None
    assert xw is not None and r is not None
    steps, batch, _ = xw.shape
    dirs, _, hidden = r.shape
    step, reverse = node.attrs["step"], node.attrs["reverse"]
    clip, coupled = node.attrs.get("clip"), bool(node.attrs.get("input_forget", 0))
    times = [steps - 1 - step if rev else step for rev in reverse]
    width = block_width(hidden, ctx.lanes) if ctx.lanes > 1 else 1
    rows = _rows(batch)
    f32 = DType.float32
    r_const = node.inputs[2].const
    packed = None
    if r_const is not None and ctx.lanes > 1:
        packed = ctx.weight(_packed_weight(np.asarray(r_const), width), "rp")
    vec_loops: list[str] = []
    unrolled: list[str] = []

    def time_of(d: Expr) -> Expr:
        if dirs == 1 or times[0] == times[1]:
            return idx(times[0])
        return binop("add", idx(times[0]), binop("mul", d, idx(times[1] - times[0])))

    def weight(d: Expr, jb: Expr, k: Expr, g: int, c: Expr) -> Expr:
        if packed is not None:
            return packed.at([d, jb, k, idx(g), c])
        return r.at([d, binop("add", idx(g * hidden), binop("add", binop("mul", jb, idx(width)), c)), k])

    def clipped(v: Expr) -> Expr:
        return v if clip is None else minimum(maximum(v, const(-clip, f32)), const(clip, f32))

    def block(d: Expr, jb: Expr, b0: Expr) -> Stmt:
        acc = stack(ctx, f32, rows * GATES * width)

        def at(rr: Expr, g: int, c: Expr) -> Expr:
            return binop("add", binop("mul", rr, idx(GATES * width)), binop("add", idx(g * width), c))

        def loop(extent: int, body, hint: str, names: list[str]) -> Stmt:
            s = ctx.loop(extent, body, hint)
            if extent > 1 and isinstance(s, For):
                names.append(s.var.name)
            return s

        def per_gate(body) -> Stmt:
            return seq(*[loop(width, lambda c, g=g: body(g, c), "c", vec_loops) for g in range(GATES)])

        zero = loop(rows, lambda rr: per_gate(lambda g, c: Store(acc, at(rr, g, c), const(0, f32))), "zr", unrolled)
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
                base = binop("mul", d, idx(GATES * hidden))

                def gate(g: int) -> Expr:
                    pre = xw.at([time_of(d), b, binop("add", base, binop("add", idx(g * hidden), j))])
                    return add(Load(acc, at(rr, g, c)), pre)

                def peephole(g: int, cell: Expr) -> Expr:
                    return mul(peep.at([d, binop("add", idx(g * hidden), j)]), cell) if peep is not None else None

                def with_peep(v: Expr, g: int, cell: Expr | None) -> Expr:
                    term = peephole(g, cell) if cell is not None else None
                    return v if term is None else add(v, term)

                c_prev = ctx.let(state.at([idx(1), d, b, j]), "cp") if state is not None else None
                i = ctx.let(sigmoid(clipped(with_peep(gate(0), 0, c_prev))), "i")
                f = sub(const(1, f32), i) if coupled else sigmoid(clipped(with_peep(gate(2), 2, c_prev)))
                cand = mul(i, call("tanh", clipped(gate(3))))
                cell = ctx.let(add(mul(f, c_prev), cand) if c_prev is not None else cand, "cn")
                o = sigmoid(clipped(with_peep(gate(1), 1, cell)))
                h = mul(o, call("tanh", cell))
                return seq(emit(0, [idx(0), d, b, j], h), emit(0, [idx(1), d, b, j], cell))

            return loop(width, unit, "u", vec_loops)

        store = loop(rows, finish, "sr", unrolled)
        return Allocate(acc, seq(zero, main, store))

    body = ctx.loops(
        (dirs, hidden // width, batch // rows), lambda i: block(i[0], i[1], binop("mul", i[2], idx(rows))), "blk"
    )
    for name in unrolled:
        ctx.hints.append(Unroll(name))
    if ctx.lanes > 1:
        lanes = min(ctx.lanes, width)
        for name in vec_loops:
            if lanes >= 2:
                ctx.hints.append(Vectorize(name, lanes))
                if width // lanes > 1:
                    ctx.hints.append(Unroll(f"{name}.v"))
    return body
