"""The tiled-matmul GPU schedule: shared-memory tiles and a register tile per thread.

A contraction lowered for a scalar target is a plain nest (compiler/lower/contraction.py):
for every output element (batch..., i, j): `acc = 0; for k: acc += A(i, k) * B(k, j)`,
then the fused epilogue stores f(acc). This rule gives each block a BM x BN output tile
of one batch entry (256 threads, TM x TN outputs each), and walks K in steps of BK: the
block loads the A tile (BM x BK) and the B tile (BK x BN) into shared memory (consecutive
threads read consecutive k of A and consecutive j of B, zero outside the matrix), waits
at a barrier, accumulates from shared memory into registers, and waits again before the
next tile. Finally each thread runs the epilogue for its outputs inside the matrix.
With tensor cores (float32 by default, as onnxruntime's `use_tf32`; off with
`--target "cuda -fp32-exact"`) the 8 warps multiply the tiles with `mma.sync` TF32
(`WarpMma`, codegen/cuda_mma.py) and each thread's 16 outputs follow the C-fragment layout.

The operands are the two factors of the product as written: any expression of (i, k) for
A and of (k, j) for B (transposes, broadcasts and casts included).
"""

from __future__ import annotations

import math

from aic.codegen.cuda_mma import WarpMma
from aic.ir.dtypes import DType
from aic.ir.loop import (
    INDEX,
    Allocate,
    Barrier,
    Bin,
    Buffer,
    Const,
    Expr,
    For,
    ForKind,
    If,
    Let,
    Load,
    Scope,
    Seq,
    Stmt,
    Store,
    Var,
)
from aic.ir.loop_tools import exprs_of, map_expr, map_stmt_exprs, static_int, stmts_of, subst

from .schedule_gpu_grid import MAX_GRID_X, flat_index, grid_loops, parallel_chain

BM, BN, BK = 64, 64, 16  # block tile and K step
TM, TN = 4, 4  # outputs per thread: (BM / TM) * (BN / TN) = 256 threads
THREADS = (BM // TM) * (BN // TN)
MIN_SIZE = 16  # M, N and K at least this big


def tiled_matmul(part: Stmt, tensor_cores: bool = True) -> tuple[Stmt, str] | None:
    chain = parallel_chain(part)
    if len(chain) < 2:
        return None
    found = _match(chain[-1].body)
    if found is None:
        return None
    acc, k_loop, ea, eb, epilogue = found
    iv, jv, kv = chain[-2].var, chain[-1].var, k_loop.var
    if any(x is jv for x in exprs_of(ea)) or any(x is iv for x in exprs_of(eb)):
        return None
    m, n, k = (static_int(x.extent) or 0 for x in (chain[-2], chain[-1], k_loop))
    if min(m, n, k) < MIN_SIZE or any(not _zero(x.start) for x in (*chain, k_loop)):
        return None
    batch = chain[:-2]
    tiles_m, tiles_n = -(-m // BM), -(-n // BN)
    blocks = math.prod(static_int(lp.extent) or 1 for lp in batch) * tiles_m * tiles_n
    if blocks > MAX_GRID_X:
        return None
    dt = acc.dtype
    mma = tensor_cores and dt is DType.float32

    def body(bx: Var, tx: Var) -> Stmt:
        tile = Var("tile")
        tm, tn = Var("tm"), Var("tn")
        a_s = Buffer("a_tile", dt, BM * BK, Scope.SHARED)
        b_s = Buffer("b_tile", dt, BK * BN, Scope.SHARED)
        regs = Buffer("acc", dt, TM * TN, Scope.STACK)
        ty, tx16 = Var("ty"), Var("tx16")
        kt = Var("kt")
        zero = Const(0.0, dt)

        def c(v: int) -> Const:
            return Const(v, INDEX)

        def add(a: Expr, b: Expr) -> Expr:
            return Bin("add", a, b)

        def mul(a: Expr, b: Expr) -> Expr:
            return Bin("mul", a, b)

        def load_tile(buf: Buffer, rows: int, cols: int, value_at, inside) -> Stmt:
            """Fill buf (row-major rows x cols, stored k-major) cooperatively: element e -> (row, col)."""
            e, r, q, lv = Var("e"), Var("r"), Var("q"), Var("l")
            per = rows * cols // THREADS
            where, value = value_at(r, q)
            stmt = If(inside(r, q), Store(buf, where, value), Store(buf, where, zero))
            stmt = Let(r, Bin("div", e, c(cols)), Let(q, Bin("mod", e, c(cols)), stmt))
            return For(lv, c(per), Let(e, add(mul(lv, c(THREADS)), tx), stmt), ForKind.UNROLLED)

        # A tile: (ii, kk) with kk fastest (coalesced along k); stored As[kk * BM + ii]
        def a_value(ii: Var, kk: Var) -> tuple[Expr, Expr]:
            i, kx = add(mul(tm, c(BM)), ii), add(mul(kt, c(BK)), kk)
            return add(mul(kk, c(BM)), ii), subst(ea, {iv: i, kv: kx})

        def a_inside(ii: Var, kk: Var) -> Expr:
            i, kx = add(mul(tm, c(BM)), ii), add(mul(kt, c(BK)), kk)
            return Bin("and", Bin("lt", i, c(m)), Bin("lt", kx, c(k)))

        # B tile: (kk, jj) with jj fastest (coalesced along j); stored Bs[kk * BN + jj]
        def b_value(kk: Var, jj: Var) -> tuple[Expr, Expr]:
            j, kx = add(mul(tn, c(BN)), jj), add(mul(kt, c(BK)), kk)
            return add(mul(kk, c(BN)), jj), subst(eb, {jv: j, kv: kx})

        def b_inside(kk: Var, jj: Var) -> Expr:
            j, kx = add(mul(tn, c(BN)), jj), add(mul(kt, c(BK)), kk)
            return Bin("and", Bin("lt", j, c(n)), Bin("lt", kx, c(k)))

        kk, r, q = Var("kk"), Var("r"), Var("q")
        slot = add(mul(r, c(TN)), q)
        fma = Store(
            regs,
            slot,
            add(
                Load(regs, slot),
                mul(
                    Load(a_s, add(add(mul(kk, c(BM)), mul(ty, c(TM))), r)),
                    Load(b_s, add(add(mul(kk, c(BN)), mul(tx16, c(TN))), q)),
                ),
            ),
        )
        compute: Stmt = For(kk, c(BK), For(r, c(TM), For(q, c(TN), fma, ForKind.UNROLLED), ForKind.UNROLLED))
        if mma:
            compute = WarpMma(regs, a_s, b_s, BK)
        k_steps = For(kt, c(-(-k // BK)), Seq([
            load_tile(a_s, BM, BK, a_value, a_inside),
            load_tile(b_s, BK, BN, b_value, b_inside),
            Barrier(),
            compute,
            Barrier(),
        ]))  # fmt: skip
        i_out, j_out = add(add(mul(tm, c(BM)), mul(ty, c(TM))), r), add(add(mul(tn, c(BN)), mul(tx16, c(TN))), q)
        if mma:  # the mma.sync C fragment of lane tx: n-tile r, element q (codegen/cuda_mma.py)
            warp, lane = Bin("div", tx, c(32)), Bin("mod", tx, c(32))
            row = add(add(mul(Bin("div", warp, c(2)), c(16)), Bin("div", lane, c(4))), mul(Bin("div", q, c(2)), c(8)))
            col = add(add(mul(Bin("mod", warp, c(2)), c(32)), mul(r, c(8))),
                      add(mul(Bin("mod", lane, c(4)), c(2)), Bin("mod", q, c(2))))  # fmt: skip
            i_out, j_out = add(mul(tm, c(BM)), row), add(mul(tn, c(BN)), col)
        finish = map_stmt_exprs(epilogue, lambda e: _replace_acc(e, acc, Load(regs, slot)))
        finish = Let(iv, i_out, Let(jv, j_out, finish))
        store = For(r, c(TM), For(q, c(TN), If(Bin("and", Bin("lt", i_out, c(m)), Bin("lt", j_out, c(n))), finish)))
        init = For(r, c(TM), For(q, c(TN), Store(regs, slot, zero), ForKind.UNROLLED), ForKind.UNROLLED)
        inner: Stmt = Seq([init, k_steps, store])
        inner = Allocate(a_s, Allocate(b_s, Allocate(regs, inner)))
        inner = Let(ty, Bin("div", tx, c(BN // TN)), Let(tx16, Bin("mod", tx, c(BN // TN)), inner))
        inner = Let(tn, Bin("mod", tile, c(tiles_n)), Let(tm, Bin("div", tile, c(tiles_n)), inner))
        per_batch = tiles_m * tiles_n
        inner = Let(tile, Bin("mod", bx, c(per_batch)), inner)
        if batch:
            b = Var("batch")
            lets = flat_index(batch, b)
            for var, value in reversed(lets):
                inner = Let(var, value, inner)
            inner = Let(b, Bin("div", bx, c(per_batch)), inner)
        return inner

    return grid_loops(blocks, THREADS, body), "tiled-matmul-tf32" if mma else "tiled-matmul"


def _zero(e: Expr) -> bool:
    return isinstance(e, Const) and e.value == 0


def _replace_acc(e: Expr, acc: Buffer, value: Expr) -> Expr:
    return map_expr(e, lambda x: value if isinstance(x, Load) and x.buffer is acc else None)


def _match(body: Stmt) -> tuple[Buffer, For, Expr, Expr, Stmt] | None:
    """(acc, the k loop, A factor, B factor, the epilogue) of `alloc acc; acc = 0; for k: acc += A * B; ...`."""
    if not isinstance(body, Allocate) or body.buffer.size != 1 or body.buffer.scope is not Scope.STACK:
        return None
    acc = body.buffer
    if acc.dtype not in (DType.float32, DType.float64) or not isinstance(body.body, Seq):
        return None
    stmts = body.body.stmts
    if len(stmts) < 3 or not isinstance(stmts[0], Store) or not isinstance(stmts[1], For):
        return None
    init, loop = stmts[0], stmts[1]
    if init.buffer is not acc or not (isinstance(init.value, Const) and init.value.value == 0):
        return None
    update = loop.body
    if not (isinstance(update, Store) and update.buffer is acc and isinstance(update.value, Bin)):
        return None
    v = update.value
    if v.op != "add" or not (isinstance(v.a, Load) and v.a.buffer is acc):
        return None
    if not isinstance(v.b, Bin) or v.b.op != "mul":
        return None
    ea, eb = v.b.a, v.b.b
    if any(isinstance(x, Load) and x.buffer is acc for x in (*exprs_of(ea), *exprs_of(eb))):
        return None
    epilogue = Seq(stmts[2:]) if len(stmts) > 3 else stmts[2]
    if any(isinstance(x, (For, Barrier, Allocate)) for x in stmts_of(epilogue)):
        return None
    return acc, loop, ea, eb, epilogue
