"""The tiled-contraction GPU schedule: matrix products and convolutions (implicit GEMM) through
shared-memory tiles, on tensor cores or with a register tile per thread.

A contraction lowered for a scalar target is a plain nest (compiler/lower/contraction.py,
compiler/lower/conv.py): for every output element `acc = 0; for k...: acc += A * B`, then the
fused epilogue stores f(acc). This rule reads that nest as C[M, N] = A[M, K] x B[K, N] per batch
entry (`match_gemm`): output loops whose variable only A uses are M (a convolution's image and
output pixels), those only B uses are N (its output channels), those both use are batch; the
reduction loops, flattened, are K (input channels x kernel taps). A guard on the product (a
convolution's zero padding, `select(inside, x * w, 0)`) goes with the factor whose variables it
reads, so the im2col gather, padding included, happens while loading A's tile. A grouped
convolution's output channel, which A uses only as its group, is split into (group: batch,
channel of the group: N).

Each block computes a BM x BN output tile of one batch entry (256 threads) and walks K in steps
of BK: the block loads the A tile (BM x BK) and the B tile (BK x BN) into shared memory (zero
outside the matrix; consecutive threads take consecutive elements along whichever axis the
factor's loads step by one element, so global reads coalesce), waits at a barrier, multiplies the
tiles and waits again before the next step. With tensor cores (float32 by default, as onnxruntime's
`use_tf32`; off with `--target "cuda -fp32-exact"`) the 8 warps multiply with `mma.sync` TF32
(`WarpMma`, codegen/cuda_mma.py) and each thread's 16 outputs follow the C-fragment layout;
otherwise each thread accumulates a TM x TN register tile from shared memory. Factors that are both
float16 (or both bfloat16) widened to float32 are kept 16-bit in the tiles and always multiplied on
tensor cores (m16n8k16, exact products, float32 accumulation). Finally each
thread runs the epilogue for its outputs inside the matrix, with every output loop variable
rebound from the output's (row, column).

In a model compiled for ranges of sizes, M, N, K and the batch may be run-time sizes: the tile
counts, the K steps and the edge checks are then expressions of them (the edge tiles already
zero-fill), and whether a product is big enough to tile is decided at the opt sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from aic.codegen.cuda_mma import MMA_KINDS, WarpMma, pair_slot
from aic.ir.dtypes import DType
from aic.ir.loop import (
    INDEX,
    Allocate,
    Barrier,
    Bin,
    Buffer,
    Cast,
    Const,
    Expr,
    For,
    ForKind,
    If,
    Let,
    Load,
    Scope,
    Select,
    Seq,
    Stmt,
    Store,
    Var,
)
from aic.ir.loop_tools import binop, coefficient, exprs_of, map_expr, map_stmt_exprs, static_int, stmts_of, subst

from .schedule_gpu_grid import (
    MAX_GRID_X,
    RunSizes,
    bind_lets,
    ceil_div,
    extent_product,
    flat_index,
    grid_loops,
    parallel_chain,
)
from .schedule_gpu_merge import merge_walked

BM, BN, BK = 64, 64, 16  # block tile and K step
TM, TN = 4, 4  # outputs per thread: (BM / TM) * (BN / TN) = 256 threads
THREADS = (BM // TM) * (BN // TN)
MIN_SIZE = 16  # M, N and K at least this big


@dataclass(frozen=True)
class Gemm:
    """A contraction nest read as batched C[M, N] = A[M, K] x B[K, N]; each axis is a list of
    loops of the nest, outermost first (flattened row-major)."""

    acc: Buffer
    batch: list[For]
    ms: list[For]
    ns: list[For]
    ks: list[For]
    a: Expr  # of the M, K and batch variables
    b: Expr  # of the K, N and batch variables
    epilogue: Stmt  # reads acc; may use every output loop variable
    guarded: bool  # a factor carries a bounds check (a convolution's padding)

    @property
    def extents(self) -> tuple[Expr, Expr, Expr]:
        """M, N and K (constants, or expressions of run-time sizes)."""
        return extent_product(self.ms), extent_product(self.ns), extent_product(self.ks)

    @property
    def sizes(self) -> tuple[int | None, ...]:
        """M, N and K where they are constants (None: a run-time size)."""
        return tuple(static_int(e) for e in self.extents)


def match_gemm(part: Stmt) -> Gemm | None:
    """`part` as a GEMM, or None when it is not a plain contraction nest."""
    chain = parallel_chain(part)
    found = _match(chain[-1].body) if chain else None
    if found is None:
        return None
    acc, ks, ea, eb, guard, epilogue = found
    nest = {lp.var for lp in [*chain, *ks]}
    if any(x in nest for lp in ks for e in (lp.extent, lp.start) for x in exprs_of(e)):
        return None  # K must not depend on the output element (a triangular nest)
    for loop in chain:
        split = _split_groups(loop, ea, eb, guard, epilogue)
        if split is not None:
            at = chain.index(loop)
            chain = [*chain[:at], *split[0], *chain[at + 1:]]
            ea, eb, guard, epilogue = split[1:]
    in_a = {x for x in exprs_of(ea) if isinstance(x, Var)}
    in_b = {x for x in exprs_of(eb) if isinstance(x, Var)}
    batch = [lp for lp in chain if lp.var in in_a and lp.var in in_b]
    ns = [lp for lp in chain if lp.var in in_b and lp.var not in in_a]
    ms = [lp for lp in chain if lp.var not in in_b] or [For(Var("row"), Const(1, INDEX), Seq([]))]  # a GEMV: M = 1
    if not ns:
        return None
    if guard is not None:
        used = {x for x in exprs_of(guard) if isinstance(x, Var)}
        zero = Const(0.0, ea.dtype)
        if not used & {lp.var for lp in ns}:
            ea = Select(guard, ea, zero)
        elif not used & {lp.var for lp in ms}:
            eb = Select(guard, eb, Const(0.0, eb.dtype))
        else:
            return None
    ms, (ea,), epilogue = merge_walked(ms, [ea], epilogue)  # no division by run-time sizes in the indices
    ns, (eb,), epilogue = merge_walked(ns, [eb], epilogue)
    return Gemm(acc, batch, ms, ns, ks, ea, eb, epilogue, guard is not None)


def tiled_matmul(part: Stmt, tensor_cores: bool = True, sizes: RunSizes | None = None,
                 split: tuple[int, Buffer] | None = None) -> tuple[Stmt, str] | None:
    """The block/thread-bound tiled GEMM of `part` and its rule name, or None (not a GEMM, or M, N
    or K below MIN_SIZE at the opt sizes). With `split` = (S, workspace), K steps are cut into S
    slices, one per block (the slice is the outermost grid index), and each block stores its float32
    partial tile at workspace[slice, batch, i, j] instead of running the epilogue (split-K,
    compiler/schedule_gpu_splitk.py)."""
    sizes = sizes or RunSizes()
    g = match_gemm(part)
    if g is None:
        return None
    m, n, k = g.extents
    if split is None and any((sizes.typical(e) or 0) < MIN_SIZE for e in (m, n, k)):
        return None  # (split-K takes a GEMV's single row too: its weight reads coalesce in the tiles)
    tiles_n = ceil_div(n, BN)
    per_batch = binop("mul", ceil_div(m, BM), tiles_n)
    blocks = binop("mul", extent_product(g.batch), per_batch)
    slices, workspace = split or (1, None)
    one_slice, blocks = blocks, binop("mul", blocks, Const(slices, INDEX))
    if (sizes.upper(blocks) or MAX_GRID_X + 1) > MAX_GRID_X:
        return None
    dt = g.acc.dtype
    halves = _half_factors(g) if dt is DType.float32 else None  # exact products: also with -fp32-exact
    mma = halves is not None or (tensor_cores and dt is DType.float32)
    ea, eb = halves or (g.a, g.b)
    tile_dt = ea.dtype  # float32, or 16-bit tiles for m16n8k16
    a_m_fast = _steps_by_one(g.a, g.ms[-1].var)  # else consecutive threads walk A along k
    b_k_fast = _steps_by_one(g.b, g.ks[-1].var, g.ns[-1].var)  # else along n

    def c(v: int | Expr) -> Expr:
        return v if isinstance(v, Expr) else Const(v, INDEX)

    def add(a: Expr, b: Expr) -> Expr:
        return Bin("add", a, b)

    def mul(a: Expr, b: Expr) -> Expr:
        return Bin("mul", a, b)

    def slot_of(kk: Expr, ii: Expr, width: int) -> Expr:  # k-major; 16-bit tiles interleave pairs of k
        return pair_slot(kk, ii, width) if halves else add(mul(kk, c(width)), ii)

    def body(bx: Var, tx: Var) -> Stmt:
        tile, tm, tn, kt = Var("tile"), Var("tm"), Var("tn"), Var("kt")
        sl, b = Var("slice"), Var("batch")
        a_s = Buffer("a_tile", tile_dt, BM * BK, Scope.SHARED)
        b_s = Buffer("b_tile", tile_dt, BK * BN, Scope.SHARED)
        regs = Buffer("acc", dt, TM * TN, Scope.STACK)
        ty, tx16 = Var("ty"), Var("tx16")
        zero = Const(0.0, dt)

        def load_tile(buf: Buffer, outer: int, inner: int, fill) -> Stmt:
            """Fill `buf` cooperatively: element e of the tile is (e / inner, e % inner);
            fill(outer index, inner index) -> (the shared index, the value, whether it is inside)."""
            e, r, q, lv = Var("e"), Var("r"), Var("q"), Var("l")
            where, value, inside = fill(r, q)
            stmt: Stmt = If(inside, Store(buf, where, value), Store(buf, where, Const(0.0, buf.dtype)))
            stmt = Let(r, Bin("div", e, c(inner)), Let(q, Bin("mod", e, c(inner)), stmt))
            return For(lv, c(outer * inner // THREADS), Let(e, add(mul(lv, c(THREADS)), tx), stmt), ForKind.UNROLLED)

        def a_fill(ii: Var, kk: Var) -> tuple[Expr, Expr, Expr]:  # stored at slot_of(kk, ii, BM)
            i, kx = add(mul(tm, c(BM)), ii), add(mul(kt, c(BK)), kk)
            env = dict(flat_index(g.ms, i) + flat_index(g.ks, kx))
            return slot_of(kk, ii, BM), subst(ea, env), Bin("and", Bin("lt", i, c(m)), Bin("lt", kx, c(k)))

        def b_fill(kk: Var, jj: Var) -> tuple[Expr, Expr, Expr]:  # stored at slot_of(kk, jj, BN)
            j, kx = add(mul(tn, c(BN)), jj), add(mul(kt, c(BK)), kk)
            env = dict(flat_index(g.ns, j) + flat_index(g.ks, kx))
            return slot_of(kk, jj, BN), subst(eb, env), Bin("and", Bin("lt", j, c(n)), Bin("lt", kx, c(k)))

        load_a = (load_tile(a_s, BK, BM, lambda kk, ii: a_fill(ii, kk)) if a_m_fast
                  else load_tile(a_s, BM, BK, a_fill))  # fmt: skip
        load_b = (load_tile(b_s, BN, BK, lambda jj, kk: b_fill(kk, jj)) if b_k_fast
                  else load_tile(b_s, BK, BN, b_fill))  # fmt: skip
        kk, r, q = Var("kk"), Var("r"), Var("q")
        slot = add(mul(r, c(TN)), q)
        if mma:
            compute: Stmt = WarpMma(regs, a_s, b_s, BK)
        else:
            product = mul(Load(a_s, add(add(mul(kk, c(BM)), mul(ty, c(TM))), r)),
                          Load(b_s, add(add(mul(kk, c(BN)), mul(tx16, c(TN))), q)))  # fmt: skip
            fma = Store(regs, slot, add(Load(regs, slot), product))
            compute = For(kk, c(BK), For(r, c(TM), For(q, c(TN), fma, ForKind.UNROLLED), ForKind.UNROLLED))
        step = Seq([load_a, load_b, Barrier(), compute, Barrier()])
        k_steps = (For(kt, ceil_div(k, BK), step) if workspace is None
                   else _slice_steps(kt, sl, ceil_div(k, BK), slices, step))  # fmt: skip
        i_out, j_out = add(add(mul(tm, c(BM)), mul(ty, c(TM))), r), add(add(mul(tn, c(BN)), mul(tx16, c(TN))), q)
        if mma:  # the mma.sync C fragment of lane tx: n-tile r, element q (codegen/cuda_mma.py)
            warp, lane = Bin("div", tx, c(32)), Bin("mod", tx, c(32))
            row = add(add(mul(Bin("div", warp, c(2)), c(16)), Bin("div", lane, c(4))), mul(Bin("div", q, c(2)), c(8)))
            col = add(add(mul(Bin("mod", warp, c(2)), c(32)), mul(r, c(8))),
                      add(mul(Bin("mod", lane, c(4)), c(2)), Bin("mod", q, c(2))))  # fmt: skip
            i_out, j_out = add(mul(tm, c(BM)), row), add(mul(tn, c(BN)), col)
        iv, jv = Var("i"), Var("j")
        if workspace is None:
            finish = map_stmt_exprs(g.epilogue, lambda e: _replace_acc(e, g.acc, Load(regs, slot)))
            finish = bind_lets(flat_index(g.ms, iv) + flat_index(g.ns, jv), finish)
        else:  # the partial tile of this K slice, whole (batch, M, N) matrices one after another
            matrix = add(mul(sl, extent_product(g.batch)), b if g.batch else c(0))
            finish = Store(workspace, add(mul(add(mul(matrix, c(m)), iv), c(n)), jv), Load(regs, slot))
        finish = If(Bin("and", Bin("lt", iv, c(m)), Bin("lt", jv, c(n))), finish)
        store = For(r, c(TM), For(q, c(TN), Let(iv, i_out, Let(jv, j_out, finish))))
        init = For(r, c(TM), For(q, c(TN), Store(regs, slot, zero), ForKind.UNROLLED), ForKind.UNROLLED)
        inner: Stmt = Allocate(a_s, Allocate(b_s, Allocate(regs, Seq([init, k_steps, store]))))
        inner = Let(ty, Bin("div", tx, c(BN // TN)), Let(tx16, Bin("mod", tx, c(BN // TN)), inner))
        inner = Let(tn, Bin("mod", tile, c(tiles_n)), Let(tm, Bin("div", tile, c(tiles_n)), inner))
        rest = bx if workspace is None else Var("rest")  # the block's index within its K slice
        inner = Let(tile, Bin("mod", rest, c(per_batch)), inner)
        if g.batch:
            inner = Let(b, Bin("div", rest, c(per_batch)), bind_lets(flat_index(g.batch, b), inner))
        if workspace is not None:
            inner = Let(sl, Bin("div", bx, c(one_slice)), Let(rest, Bin("mod", bx, c(one_slice)), inner))
        return inner

    single = len(g.ks) == 1 and not g.guarded
    rule = "tiled-matmul" if single else "implicit-gemm"
    kind = MMA_KINDS.get(tile_dt.name, "tf32")
    rule = f"{rule}-{kind}" if mma else rule
    return grid_loops(blocks, THREADS, body), f"{rule}-splitk{slices}" if workspace is not None else rule


def _slice_steps(kt: Var, sl: Var, steps: Expr, slices: int, body: Stmt) -> Stmt:
    """The K steps `kt` of the block's slice `sl` of `steps` cut into `slices`
    slices of ceil(steps / slices) steps, the last one shorter (none left: no step)."""
    per = ceil_div(steps, slices)
    first = Bin("mul", sl, per)
    kq = Var("kq")
    if static_int(steps) is not None and static_int(steps) % slices == 0:
        count: Expr = per
    else:
        count = Bin("max", Const(0, INDEX), Bin("min", per, Bin("sub", steps, first)))
    return For(kq, count, Let(kt, Bin("add", first, kq), body))


def _half_factors(g: Gemm) -> tuple[Expr, Expr] | None:
    """A and B as 16-bit values when both are float16 (or both bfloat16) widened to float32 (a
    padding guard kept, its zero in the 16-bit type), for tiles of 16-bit values; else None."""

    def narrow(e: Expr) -> Expr | None:
        if isinstance(e, Cast) and e.a.dtype.name in MMA_KINDS:
            return e.a
        if isinstance(e, Select) and isinstance(e.b, Const) and e.b.value == 0:
            inner = narrow(e.a)
            return None if inner is None else Select(e.cond, inner, Const(0.0, inner.dtype))
        return None

    a, b = narrow(g.a), narrow(g.b)
    if a is None or b is None or a.dtype is not b.dtype:
        return None
    return a, b


def _split_groups(loop: For, ea: Expr, eb: Expr, guard: Expr | None, epilogue: Stmt):
    """A grouped convolution's output channel v reaches A only as its group v / c: split its loop
    into (group, channel of the group), so the group becomes a batch axis and the channel an N axis.
    Returns the two loops and the rewritten factors, guard and epilogue, or None."""
    v, extent = loop.var, static_int(loop.extent)

    def group_of(x: Expr) -> bool:
        return isinstance(x, Bin) and x.op == "div" and x.a is v and isinstance(x.b, Const)

    divisors = {int(x.b.value) for x in exprs_of(ea) if group_of(x)}
    if len(divisors) != 1 or not extent or static_int(loop.start) != 0:
        return None
    (c,) = divisors
    if c <= 1 or extent % c:
        return None
    g, j = Var(f"{v.name}_g"), Var(f"{v.name}_c")
    whole = Bin("add", Bin("mul", g, Const(c, INDEX)), j)

    def rewrite(e: Expr) -> Expr:
        return subst(map_expr(e, lambda x: g if group_of(x) and int(x.b.value) == c else None), {v: whole})

    loops = [For(g, Const(extent // c, INDEX), Seq([])), For(j, Const(c, INDEX), Seq([]))]
    return (loops, rewrite(ea), rewrite(eb), rewrite(guard) if guard is not None else None,
            map_stmt_exprs(epilogue, rewrite))  # fmt: skip


def _steps_by_one(e: Expr, fast: Var, other: Var | None = None) -> bool:
    """Whether every load of `e` moves by one element along `fast` (and not along `other`); clamps
    of an index, as a padded window has, are read as their first operand. (A convolution's input
    steps by one along both the output column and the kernel column: the output column, along M,
    gives the longer runs.)"""

    def unclamped(x: Expr) -> Expr:
        return map_expr(x, lambda y: unclamped(y.a) if isinstance(y, Bin) and y.op in ("min", "max") else None)

    loads = [x for x in exprs_of(e) if isinstance(x, Load)]
    strides = [(coefficient(unclamped(x.index), fast), other and coefficient(unclamped(x.index), other))
               for x in loads]  # fmt: skip
    return bool(strides) and all(sf == 1 and so != 1 for sf, so in strides)


def _replace_acc(e: Expr, acc: Buffer, value: Expr) -> Expr:
    return map_expr(e, lambda x: value if isinstance(x, Load) and x.buffer is acc else None)


def _match(body: Stmt) -> tuple[Buffer, list[For], Expr, Expr, Expr | None, Stmt] | None:
    """(acc, the k loops, A factor, B factor, a guard or None, the epilogue) of
    `alloc acc; acc = 0; for k...: acc += [select(guard,] A * B [, 0)]; ...`."""
    if not isinstance(body, Allocate) or body.buffer.size != 1 or body.buffer.scope is not Scope.STACK:
        return None
    acc = body.buffer
    if acc.dtype not in (DType.float32, DType.float64) or not isinstance(body.body, Seq):
        return None
    stmts = body.body.stmts
    if len(stmts) < 3 or not isinstance(stmts[0], Store) or not isinstance(stmts[1], For):
        return None
    init, update = stmts[0], stmts[1]
    if init.buffer is not acc or not (isinstance(init.value, Const) and init.value.value == 0):
        return None
    ks: list[For] = []
    while isinstance(update, For):
        if update.kind not in (ForKind.SERIAL, ForKind.UNROLLED):
            return None
        ks.append(update)
        update = update.body
    if not (isinstance(update, Store) and update.buffer is acc and isinstance(update.value, Bin)):
        return None
    v = update.value
    if v.op != "add" or not (isinstance(v.a, Load) and v.a.buffer is acc):
        return None
    term, guard = v.b, None
    if isinstance(term, Select) and isinstance(term.b, Const) and term.b.value == 0:
        term, guard = term.a, term.cond
    if not isinstance(term, Bin) or term.op != "mul":
        return None
    ea, eb = term.a, term.b
    if any(isinstance(x, Load) and x.buffer is acc for x in (*exprs_of(v.b),)):
        return None
    epilogue = Seq(stmts[2:]) if len(stmts) > 3 else stmts[2]
    if any(isinstance(x, (For, Barrier, Allocate)) for x in stmts_of(epilogue)):
        return None
    return acc, ks, ea, eb, guard, epilogue
