"""Adjacent loops that every index walks as one range, merged into one loop, so that no index of a
tiled contraction divides by a run-time size (compiler/schedule_gpu_matmul.py).

In a model compiled for ranges of sizes, a matmul over x[batch, seq, K] has the M loops (batch, seq)
with a run-time inner extent; reading a tile row m back as (m / seq, m % seq) costs two 64-bit
divisions for every element of every tile load. When each access strides the outer loop by the
inner extent times its stride along the inner one (x[b*(seq*K) + s*K + k]: seq*K == seq * K), the two
loops are one loop of batch*seq iterations and each index becomes (the rest) + m*K. Only loops with
a run-time inner extent are merged (a constant divisor costs a multiply), and only where their
variables occur nowhere but in such indices.
"""

from __future__ import annotations

from collections import Counter

from aic.ir.loop import INDEX, Bin, Const, Expr, For, If, Let, Load, Seq, Stmt, Store, Var
from aic.ir.loop_tools import binop, exprs_of, map_expr, static_int, stmt_exprs, subst

from .schedule_gpu_vector import stride_of


def merge_walked(loops: list[For], exprs: list[Expr], stmt: Stmt) -> tuple[list[For], list[Expr], Stmt]:
    """`loops` (a nest, outermost first) with adjacent pairs merged where every use of their
    variables in `exprs` and `stmt` is an index walking them as one range; the rewritten expressions
    and statement."""
    merged = True
    while merged:
        merged = False
        for k in range(len(loops) - 1, 0, -1):
            outer, inner = loops[k - 1], loops[k]
            if static_int(inner.extent) is not None or static_int(outer.start) != 0 or static_int(inner.start) != 0:
                continue
            done = _merge(outer, inner, exprs, stmt)
            if done is not None:
                loop, exprs, stmt = done
                loops = [*loops[: k - 1], loop, *loops[k + 1 :]]
                merged = True
                break
    return loops, exprs, stmt


def _merge(outer: For, inner: For, exprs: list[Expr], stmt: Stmt) -> tuple[For, list[Expr], Stmt] | None:
    pair = {outer.var, inner.var}
    v = Var(f"{outer.var.name}_{inner.var.name}")
    walks = [True]

    def uses(e: Expr) -> bool:
        return any(isinstance(x, Var) and x in pair for x in exprs_of(e))

    def index(i: Expr) -> Expr:
        if not uses(i):
            return i
        so, si = stride_of(i, outer.var), stride_of(i, inner.var)
        if any(isinstance(x, Load) for x in exprs_of(i)) or so is None or si is None:
            walks[0] = False
            return i
        if _poly(so) is None or _poly(so) != _poly(binop("mul", inner.extent, si)):
            walks[0] = False
            return i
        return binop("add", subst(i, {outer.var: Const(0, INDEX), inner.var: Const(0, INDEX)}), binop("mul", v, si))

    def expr(e: Expr) -> Expr:
        return map_expr(e, lambda x: Load(x.buffer, index(x.index), x.lanes) if isinstance(x, Load) else None)

    def statement(s: Stmt) -> Stmt | None:
        match s:
            case Store(buffer=buf, index=i, value=val):
                return Store(buf, index(i), expr(val))
            case Let(var=x, value=val, body=b):
                body = statement(b)
                return None if body is None else Let(x, expr(val), body)
            case Seq(stmts=xs):
                parts = [statement(x) for x in xs]
                return None if any(p is None for p in parts) else Seq(parts)  # type: ignore[arg-type]
            case If(cond=c, then=t, orelse=o):
                then, orelse = statement(t), statement(o) if o is not None else None
                return None if then is None or (o is not None and orelse is None) else If(expr(c), then, orelse)
        return None

    new_exprs = [expr(e) for e in exprs]
    new_stmt = statement(stmt)
    if new_stmt is None or not walks[0] or any(uses(e) for e in [*new_exprs, *stmt_exprs(new_stmt)]):
        return None
    return For(v, binop("mul", outer.extent, inner.extent), Seq([])), new_exprs, new_stmt


def _poly(e: Expr) -> dict[tuple[int, ...], int] | None:
    """`e` as a polynomial in its variables (monomial: sorted variable ids -> coefficient), or None."""
    match e:
        case Const(value=n) if not isinstance(n, (bool, float)):
            return {(): int(n)} if n else {}
        case Var():
            return {(id(e),): 1}
        case Bin(op="add" | "sub", a=a, b=b):
            pa, pb = _poly(a), _poly(b)
            if pa is None or pb is None:
                return None
            sign = 1 if e.op == "add" else -1
            total = Counter(pa)
            for mono, c in pb.items():
                total[mono] += sign * c
            return {m: c for m, c in total.items() if c}
        case Bin(op="mul", a=a, b=b):
            pa, pb = _poly(a), _poly(b)
            if pa is None or pb is None:
                return None
            prod: Counter[tuple[int, ...]] = Counter()
            for ma, ca in pa.items():
                for mb, cb in pb.items():
                    prod[tuple(sorted(ma + mb))] += ca * cb
            return {m: c for m, c in prod.items() if c}
    return None
