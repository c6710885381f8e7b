"""Four elements per thread with 16-byte accesses, for elementwise GPU launches.

`by_four(chain)` rewrites the innermost loop of an elementwise nest (compiler/schedule_gpu.py)
so each iteration handles four consecutive elements: loads that step by one element along that
loop and start at a multiple of 4 (for every value of the other loops) become one `VectorLoad`
into a 4-element stage, the body runs four times (unrolled) reading the stages, and its stores,
all such accesses, collect in stages written back by `VectorStore` (codegen/cuda_vector.py:
`float4`/`int4`/`uint4`). Other loads (broadcasts, strided or transposed reads) stay scalar.
First the innermost loops are merged into one flat loop while every store walks them as one
contiguous range (`_collapse`), so rows of any length give whole vectors of the flat range.
Applies when the (merged) loop's extent is a multiple of 4 (a constant), the other loops' strides
are multiples of 4 (constants, or products with such a constant factor: `16 * dim_seq`), every element type
involved is 4 bytes wide, the body only binds values and stores (no branches, loops or buffers), and no stored
buffer is also read. Buffers start 16-byte aligned (the arena and weights at multiples of 64; a buffer accessed
as vectors holds a multiple of 4 elements, so scan rows of it stay aligned; the runtime checks every
pointer a vector access uses before the launch).
"""

from __future__ import annotations

from aic.codegen.cuda_vector import LANES, VECTOR_TYPES, VectorLoad, VectorStore
from aic.ir.loop import INDEX, Allocate, Bin, Buffer, Const, Expr, For, ForKind, Let, Load, Scope, Seq, Stmt, Store, Var
from aic.ir.loop_printer import expr_text
from aic.ir.loop_tools import (
    binop,
    coefficient,
    exprs_of,
    map_expr,
    static_int,
    stmt_exprs,
    stmts_of,
    subst,
)


def by_four(chain: list[For], sizes: frozenset[Var] = frozenset()) -> list[For] | None:
    """`chain` with its innermost loop taking four elements an iteration, or None where that does not apply;
    indices may use the loop variables and the run-time `sizes` (fixed for the launch)."""
    if any(not isinstance(s, (Let, Seq, Store)) for s in stmts_of(chain[-1].body)):
        return None
    chain = _collapse(chain)
    last = chain[-1]
    extent = static_int(last.extent)
    if extent is None or extent % LANES or static_int(last.start) != 0:
        return None
    body = last.body
    if any(not isinstance(s, (Let, Seq, Store)) for s in stmts_of(body)):
        return None
    stores = [s for s in stmts_of(body) if isinstance(s, Store)]
    loads = [x for e in stmt_exprs(body) for x in exprs_of(e) if isinstance(x, Load)]
    stored = {s.buffer for s in stores}
    if not stores or len(stored) != len(stores) or any(x.buffer in stored for x in loads):
        return None
    loop_vars = {lp.var for lp in chain}

    def whole_vector(buf: Buffer, index: Expr) -> bool:
        if buf.dtype not in VECTOR_TYPES or not {x for x in exprs_of(index) if isinstance(x, Var)} <= loop_vars | sizes:
            return False
        if not isinstance(buf.size, int) or buf.size % LANES:  # a scan row of such a buffer may start misaligned
            return False
        if coefficient(index, last.var) != 1:
            return False
        for lp in chain[:-1]:
            k = coefficient(index, lp.var)
            c = Const(k, INDEX) if k is not None else stride_of(index, lp.var)
            if c is None or not _multiple_of_lanes(c):
                return False
        return _multiple_of_lanes(subst(index, {v: Const(0, INDEX) for v in loop_vars}))

    if not all(whole_vector(s.buffer, s.index) and s.value.lanes == 1 for s in stores):
        return None
    q, lane = Var(f"{last.var.name}_4"), Var("lane")
    at_first = {last.var: Bin("mul", q, Const(LANES, INDEX))}
    staged: dict[str, tuple[Buffer, Load]] = {}
    for x in loads:
        key = f"{x.buffer.name}@{id(x.buffer)}[{expr_text(x.index)}]"
        if x.lanes == 1 and key not in staged and whole_vector(x.buffer, x.index):
            staged[key] = (Buffer(f"{x.buffer.name}_v", x.buffer.dtype, LANES, Scope.STACK), x)
    outs = {s.buffer: Buffer(f"{s.buffer.name}_v", s.buffer.dtype, LANES, Scope.STACK) for s in stores}

    def from_stage(e: Expr) -> Expr:
        def hit(x: Expr) -> Expr | None:
            if isinstance(x, Load):
                found = staged.get(f"{x.buffer.name}@{id(x.buffer)}[{expr_text(x.index)}]")
                if found is not None:
                    return Load(found[0], lane)
            return None

        return map_expr(e, hit)

    def to_stage(s: Stmt) -> Stmt:
        match s:
            case Store(buffer=buf, value=v):
                return Store(outs[buf], lane, from_stage(v))
            case Let(var=v, value=val, body=b):
                return Let(v, from_stage(val), to_stage(b))
            case Seq(stmts=xs):
                return Seq([to_stage(x) for x in xs])
        raise AssertionError(s)

    lanes = For(lane, Const(LANES, INDEX),
                Let(last.var, Bin("add", at_first[last.var], lane), to_stage(body)), ForKind.UNROLLED)  # fmt: skip
    inner: Stmt = Seq([
        *(VectorLoad(stage, x.buffer, subst(x.index, at_first)) for stage, x in staged.values()),
        lanes,
        *(VectorStore(s.buffer, subst(s.index, at_first), outs[s.buffer]) for s in stores),
    ])  # fmt: skip
    for stage in [*(st for st, _ in staged.values()), *outs.values()]:
        inner = Allocate(stage, inner)
    return [*chain[:-1], For(q, Const(extent // LANES, INDEX), inner)]


def _collapse(chain: list[For]) -> list[For]:
    """Merge the innermost two loops into one flat loop while every store walks them as one range
    (the outer loop's index coefficient is the inner's extent times the inner's), so rows shorter than
    a vector or of odd length still give whole vectors. Loads that walk the range too are indexed by
    the flat variable; any other use of the two variables reads them from it (div, mod)."""
    while len(chain) >= 2:
        merged = _merge_last_two(chain)
        if merged is None:
            break
        chain = merged
    return chain


def _merge_last_two(chain: list[For]) -> list[For] | None:
    outer, inner = chain[-2], chain[-1]
    n_out, n_in = static_int(outer.extent), static_int(inner.extent)
    if not n_out or not n_in or static_int(outer.start) != 0 or static_int(inner.start) != 0:
        return None
    loop_vars = {lp.var for lp in chain}

    def walks(index: Expr) -> bool:
        if not {x for x in exprs_of(index) if isinstance(x, Var)} <= loop_vars:
            return False
        ci, co = coefficient(index, inner.var), coefficient(index, outer.var)
        return ci is not None and co is not None and co == n_in * ci

    if not all(walks(s.index) for s in stmts_of(inner.body) if isinstance(s, Store)):
        return None
    v = Var(f"{outer.var.name}_{inner.var.name}")
    zero = {outer.var: Const(0, INDEX), inner.var: Const(0, INDEX)}

    def flat(index: Expr) -> Expr:  # c * outer + c_i * inner + rest == c_i * v + rest
        return Bin("add", subst(index, zero), Bin("mul", v, Const(coefficient(index, inner.var), INDEX)))

    def loads(e: Expr) -> Expr:
        return map_expr(e, lambda x: Load(x.buffer, flat(x.index), x.lanes)
                        if isinstance(x, Load) and walks(x.index) else None)  # fmt: skip

    def rewrite(s: Stmt) -> Stmt:
        match s:
            case Store(buffer=buf, index=i, value=val):
                return Store(buf, flat(i), loads(val))
            case Let(var=x, value=val, body=b):
                return Let(x, loads(val), rewrite(b))
            case Seq(stmts=xs):
                return Seq([rewrite(x) for x in xs])
        raise AssertionError(s)

    n = Const(n_in, INDEX)
    body = Let(outer.var, Bin("div", v, n), Let(inner.var, Bin("mod", v, n), rewrite(inner.body)))
    return [*chain[:-2], For(v, Const(n_out * n_in, INDEX), body)]


def stride_of(e: Expr, v: Var) -> Expr | None:
    """The c with e = c*v + (terms free of v), as an expression (of run-time sizes, in a ranged model),
    or None when e depends on v otherwise."""
    match e:
        case Var():
            return Const(1 if e is v else 0, INDEX)
        case Const():
            return Const(0, INDEX)
        case Bin(op="add" | "sub", a=a, b=b):
            ca, cb = stride_of(a, v), stride_of(b, v)
            return None if ca is None or cb is None else binop(e.op, ca, cb)
        case Bin(op="mul", a=a, b=b):
            ca, cb = stride_of(a, v), stride_of(b, v)
            if ca is None or cb is None or (static_int(ca) != 0 and static_int(cb) != 0):
                return None
            return binop("add", binop("mul", ca, b), binop("mul", a, cb))
    return None if any(x is v for x in exprs_of(e)) else Const(0, INDEX)


def _multiple_of_lanes(e: Expr) -> bool:
    """Whether the index expression `e` is a multiple of LANES for every value of its variables."""
    match e:
        case Const(value=n) if not isinstance(n, (bool, float)):
            return int(n) % LANES == 0
        case Bin(op="mul", a=a, b=b):
            return _multiple_of_lanes(a) or _multiple_of_lanes(b)
        case Bin(op="add" | "sub", a=a, b=b):
            return _multiple_of_lanes(a) and _multiple_of_lanes(b)
    return False
