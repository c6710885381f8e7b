"""Tools over loop IR, the base every pass over it builds on:

- visiting: `children` (ir/loop.py), `exprs_of`, `stmts_of`;
- rewriting: `map_expr` (expressions, bottom-up), `map_stmt` (statements, top-down),
  `map_stmt_exprs` (every expression a statement holds); substitution `subst`, `subst_stmt`,
  `inline_lets`;
- simplification: `binop` and `select` build expressions with index arithmetic and boolean
  logic folded (only int64 and bool, whose results do not depend on the target);
- analysis: `coefficient` (affine strides), `depends_on`, `static_int`;
- `structural_key`: equality of kernels up to names.

Expressions are immutable, so every rewrite builds new trees. The evaluator is
ir/loop_eval.py, the verifier ir/loop_verify.py, the vectoriser ir/loop_vectorize.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from .dtypes import DType
from .loop import (
    INDEX,
    Allocate,
    Barrier,
    Bin,
    Broadcast,
    Call,
    Cast,
    Const,
    Expr,
    For,
    If,
    Interleave,
    Kernel,
    Let,
    Load,
    Prefetch,
    Ramp,
    Select,
    Seq,
    Stmt,
    Store,
    Unary,
    Var,
    children,
)

# ---------------------------------------------------------------- expression building with folding


def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _fold_int(op: str, a: int, b: int) -> int | bool | None:
    match op:
        case "add":
            return a + b
        case "sub":
            return a - b
        case "mul":
            return a * b
        case "div":
            return _c_div(a, b) if b else None
        case "mod":
            return a - b * _c_div(a, b) if b else None
        case "min":
            return min(a, b)
        case "max":
            return max(a, b)
        case "eq":
            return a == b
        case "ne":
            return a != b
        case "lt":
            return a < b
        case "le":
            return a <= b
        case "gt":
            return a > b
        case "ge":
            return a >= b
    return None


def _is(e: Expr, value: int) -> bool:
    return isinstance(e, Const) and not isinstance(e.value, bool) and e.value == value and e.lanes == 1


def binop(op: str, a: Expr, b: Expr) -> Expr:
    """`Bin(op, a, b)` with index arithmetic and boolean logic folded."""
    if a.dtype == INDEX and a.lanes == 1 and b.lanes == 1:
        if isinstance(a, Const) and isinstance(b, Const):
            folded = _fold_int(op, int(a.value), int(b.value))
            if folded is not None:
                return Const(folded, DType.bool) if isinstance(folded, bool) else Const(folded, INDEX)
        if op == "add":
            if _is(a, 0):
                return b
            if _is(b, 0):
                return a
            if isinstance(b, Const) and isinstance(a, Bin) and a.op == "add" and isinstance(a.b, Const):
                return binop("add", a.a, Const(a.b.value + b.value, INDEX))
        if op == "sub" and _is(b, 0):
            return a
        if op == "mul":
            if _is(a, 0) or _is(b, 0):
                return Const(0, INDEX)
            if _is(a, 1):
                return b
            if _is(b, 1):
                return a
        if op == "div" and _is(b, 1):
            return a
        if op == "div" and isinstance(b, Const) and b.value > 0 and isinstance(a, Bin) and a.op == "mul":
            if isinstance(a.b, Const) and a.b.value == b.value:
                return a.a  # (x * c) / c
            if isinstance(a.a, Const) and a.a.value == b.value:
                return a.b
        if op == "mod" and _is(b, 1):
            return Const(0, INDEX)
    if a.dtype == DType.bool and a.lanes == 1 and op in ("and", "or"):
        for x, y in ((a, b), (b, a)):
            if isinstance(x, Const):
                return y if bool(x.value) == (op == "and") else x
    return Bin(op, a, b)


def select(cond: Expr, a: Expr, b: Expr) -> Expr:
    if isinstance(cond, Const) and cond.lanes == 1:
        return a if cond.value else b
    return Select(cond, a, b)


# ---------------------------------------------------------------- substitution


def subst(e: Expr, env: dict[Var, Expr]) -> Expr:
    """Replace variables by expressions (folding index arithmetic on the way)."""
    if not env:
        return e
    return map_expr(e, lambda x: env.get(x) if isinstance(x, Var) else None)


def map_expr(e: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """Rebuild `e` bottom-up; `fn` may replace a node (returning None keeps it, rebuilt over new children)."""
    hit = fn(e)
    if hit is not None:
        return hit
    match e:
        case Var() | Const():
            return e
        case Bin(op=op, a=a, b=b):
            return binop(op, map_expr(a, fn), map_expr(b, fn))
        case Unary(op=op, a=a):
            return Unary(op, map_expr(a, fn))
        case Select(cond=c, a=a, b=b):
            return select(map_expr(c, fn), map_expr(a, fn), map_expr(b, fn))
        case Cast(dtype=dt, a=a):
            return Cast(dt, map_expr(a, fn))
        case Load(buffer=buf, index=i, lanes=n):
            return Load(buf, map_expr(i, fn), n)
        case Call(fn=name, args=args):
            return Call(name, tuple(map_expr(a, fn) for a in args))
        case Ramp(base=b, stride=s, lanes=n):
            return Ramp(map_expr(b, fn), s, n)
        case Broadcast(value=v, lanes=n):
            return Broadcast(map_expr(v, fn), n)
        case Interleave(parts=parts):
            return Interleave(tuple(map_expr(p, fn) for p in parts))
    raise TypeError(f"unknown expression {e!r}")


def subst_stmt(s: Stmt, env: dict[Var, Expr]) -> Stmt:
    return map_stmt_exprs(s, lambda e: subst(e, env))


def map_stmt(s: Stmt, fn: Callable[[Stmt], Stmt | None]) -> Stmt:
    """Rebuild `s` top-down: `fn` may replace a statement (returning None keeps it, over rewritten children)."""
    hit = fn(s)
    if hit is not None:
        return hit
    match s:
        case For(body=b):
            return replace(s, body=map_stmt(b, fn))
        case Let(var=v, value=val, body=b):
            return Let(v, val, map_stmt(b, fn))
        case Allocate(buffer=buf, body=b):
            return Allocate(buf, map_stmt(b, fn))
        case If(cond=c, then=t, orelse=o):
            return If(c, map_stmt(t, fn), map_stmt(o, fn) if o is not None else None)
        case Seq(stmts=stmts):
            return Seq([map_stmt(x, fn) for x in stmts])
    return s


def map_stmt_exprs(s: Stmt, fn: Callable[[Expr], Expr]) -> Stmt:
    """A copy of `s` with `fn` applied to every top-level expression it holds."""
    match s:
        case For():
            return replace(s, extent=fn(s.extent), start=fn(s.start), body=map_stmt_exprs(s.body, fn))
        case Store(buffer=buf, index=i, value=v):
            return Store(buf, fn(i), fn(v))
        case Prefetch(buffer=buf, index=i):
            return Prefetch(buf, fn(i))
        case Let(var=v, value=val, body=body):
            return Let(v, fn(val), map_stmt_exprs(body, fn))
        case Allocate(buffer=buf, body=body):
            return Allocate(buf, map_stmt_exprs(body, fn))
        case If(cond=c, then=t, orelse=o):
            return If(fn(c), map_stmt_exprs(t, fn), map_stmt_exprs(o, fn) if o is not None else None)
        case Seq(stmts=stmts):
            return Seq([map_stmt_exprs(x, fn) for x in stmts])
        case Barrier():
            return s
    raise TypeError(f"unknown statement {s!r}")


# ---------------------------------------------------------------- traversal


def stmt_exprs(s: Stmt) -> list[Expr]:
    """The top-level expressions `s` and its nested statements hold, in `map_stmt_exprs` order."""
    out: list[Expr] = []

    def visit(e: Expr) -> Expr:
        out.append(e)
        return e

    map_stmt_exprs(s, visit)
    return out


def exprs_of(e: Expr) -> Iterator[Expr]:
    """`e` and all its subexpressions, pre-order."""
    yield e
    for c in children(e):
        yield from exprs_of(c)


def stmts_of(s: Stmt) -> Iterator[Stmt]:
    """`s` and all nested statements, pre-order."""
    yield s
    match s:
        case For(body=b) | Let(body=b) | Allocate(body=b):
            yield from stmts_of(b)
        case If(then=t, orelse=o):
            yield from stmts_of(t)
            if o is not None:
                yield from stmts_of(o)
        case Seq(stmts=stmts):
            for x in stmts:
                yield from stmts_of(x)


def seq(*stmts: Stmt | None) -> Stmt:
    """A flattened sequence; a single statement stands for itself."""
    flat: list[Stmt] = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, Seq):
            flat.extend(s.stmts)
        else:
            flat.append(s)
    return flat[0] if len(flat) == 1 else Seq(flat)


def static_int(e: Expr) -> int | None:
    return int(e.value) if isinstance(e, Const) and e.lanes == 1 and not isinstance(e.value, bool) else None


# ---------------------------------------------------------------- affine analysis


def coefficient(e: Expr, v: Var, env: dict[Var, int | None] | None = None) -> int | None:
    """The constant c with e = c*v + (terms free of v), or None when e depends on v otherwise.

    `env` gives the coefficient of Let-bound variables (None: depends non-affinely)."""
    env = env or {}
    match e:
        case Var():
            if e is v:
                return 1
            return env.get(e, 0)
        case Const():
            return 0
        case Bin(op="add" | "sub", a=a, b=b):
            ca, cb = coefficient(a, v, env), coefficient(b, v, env)
            if ca is None or cb is None:
                return None
            return ca + cb if e.op == "add" else ca - cb
        case Bin(op="mul", a=a, b=b):
            ca, cb = coefficient(a, v, env), coefficient(b, v, env)
            if ca is None or cb is None:
                return None
            if ca == 0 and cb == 0:
                return 0
            if ca == 0 and isinstance(a, Const):
                return int(a.value) * cb
            if cb == 0 and isinstance(b, Const):
                return int(b.value) * ca
            return None
        case Bin(op="shl", a=a, b=Const(value=int(shift))):
            ca = coefficient(a, v, env)
            return None if ca is None else ca << shift
        case Unary(op="neg", a=a):
            ca = coefficient(a, v, env)
            return None if ca is None else -ca
        case Cast(dtype=dt, a=a) if dt.is_int and a.dtype.is_int and dt.itemsize >= a.dtype.itemsize:
            return coefficient(a, v, env)
    return 0 if all(_free_of(x, v, env) for x in exprs_of(e)) else None


def depends_on(e: Expr, v: Var) -> bool:
    """Whether `v` occurs in `e`."""
    return any(x is v for x in exprs_of(e))


def inline_lets(e: Expr, lets: dict[Var, Expr]) -> Expr:
    """`e` with Let-bound variables replaced by their values, recursively (nothing folded)."""
    match e:
        case Var():
            return inline_lets(lets[e], lets) if e in lets else e
        case Const():
            return e
        case Bin(op=op, a=a, b=b):
            return Bin(op, inline_lets(a, lets), inline_lets(b, lets))
        case Unary(op=op, a=a):
            return Unary(op, inline_lets(a, lets))
        case Cast(dtype=dt, a=a):
            return Cast(dt, inline_lets(a, lets))
        case Select(cond=c, a=a, b=b):
            return Select(inline_lets(c, lets), inline_lets(a, lets), inline_lets(b, lets))
        case Load(buffer=buf, index=i, lanes=n):
            return Load(buf, inline_lets(i, lets), n)
        case Call(fn=fn, args=args):
            return Call(fn, tuple(inline_lets(a, lets) for a in args))
        case Ramp(base=base, stride=st, lanes=n):
            return Ramp(inline_lets(base, lets), st, n)
        case Broadcast(value=x, lanes=n):
            return Broadcast(inline_lets(x, lets), n)
        case Interleave(parts=parts):
            return Interleave(tuple(inline_lets(p, lets) for p in parts))
    raise TypeError(f"unknown expression {e!r}")


def _free_of(x: Expr, v: Var, env: dict[Var, int | None]) -> bool:
    if not isinstance(x, Var):
        return True
    return x is not v and env.get(x, 0) == 0


# ---------------------------------------------------------------- structural equality


def structural_key(kernel: Kernel) -> tuple:
    """A hashable key equal for two kernels exactly when they compute the same thing: the same
    parameter types and sizes and the same loop IR, up to the names of the kernel, its variables
    and its buffers (numbered in order of appearance instead)."""
    names: dict[int, int] = {}

    def num(x: object) -> int:
        return names.setdefault(id(x), len(names))

    def ex(e: Expr) -> tuple:
        match e:
            case Var():
                return ("var", num(e), e.dtype.name, e.lanes)
            case Const(value=v):
                return ("const", type(v).__name__, repr(v), e.dtype.name, e.lanes)
            case Load(buffer=b, lanes=n):
                return ("load", num(b), n, ex(e.index))
            case Bin(op=op) | Unary(op=op):
                return (type(e).__name__, op, *(ex(c) for c in children(e)))
            case Cast(dtype=dt):
                return ("cast", dt.name, ex(e.a))
            case Call(fn=fn):
                return ("call", fn, *(ex(c) for c in children(e)))
            case Ramp(stride=st, lanes=n):
                return ("ramp", st, n, ex(e.base))
            case Broadcast(lanes=n):
                return ("broadcast", n, ex(e.value))
        return (type(e).__name__, *(ex(c) for c in children(e)))

    def st(s: Stmt) -> tuple:
        match s:
            case For(var=v, extent=n, start=a, body=b, kind=k):
                return ("for", num(v), k.value, ex(a), ex(n), st(b))
            case Store(buffer=buf, index=i, value=v):
                return ("store", num(buf), ex(i), ex(v))
            case Let(var=v, value=val, body=b):
                return ("let", num(v), v.dtype.name, v.lanes, ex(val), st(b))
            case Allocate(buffer=buf, body=b):
                return ("alloc", num(buf), buf.dtype.name, repr(buf.size), buf.scope.value, st(b))
            case If(cond=c, then=t, orelse=o):
                return ("if", ex(c), st(t), st(o) if o is not None else None)
            case Seq(stmts=stmts):
                return ("seq", *(st(x) for x in stmts))
            case Barrier():
                return ("barrier",)
            case Prefetch(buffer=buf, index=i):
                return ("prefetch", num(buf), ex(i))
        raise TypeError(f"unknown statement {s!r}")

    params = tuple((num(p), p.dtype.name, repr(p.size), p.scope.value) for p in kernel.params)
    return (params, st(kernel.body))
