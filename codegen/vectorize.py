"""Analysis for rendering a vectorized loop as one vector body.

A `For` of kind VECTORIZED over `v` with a constant extent n is rendered once with
`v` bound to the vector start + <0..n-1>: every expression depending on `v` becomes
an n-lane vector. A load or store whose index is affine in `v` with stride 1 is a
contiguous vector access; other strides gather or scatter. Bodies this scheme
cannot express (allocations, nested parallel loops, explicit vectors, several lanes
writing one element) are rendered as scalar loops instead, and the reason is logged.
"""

from __future__ import annotations

from aic.ir.loop import (
    Allocate,
    Barrier,
    Bin,
    Broadcast,
    Call,
    Cast,
    Const,
    Expr,
    For,
    ForKind,
    If,
    Let,
    Load,
    Ramp,
    Select,
    Seq,
    Stmt,
    Store,
    Unary,
    Var,
    children,
)


def depends_on(e: Expr, var: Var) -> bool:
    return e is var or any(depends_on(c, var) for c in children(e))


def substitute(e: Expr, mapping: dict[Var, Expr]) -> Expr:
    """`e` with each Var in `mapping` replaced by its expression (recursively)."""
    match e:
        case Var():
            return substitute(mapping[e], mapping) if e in mapping else e
        case Const():
            return e
        case Bin(op=op, a=a, b=b):
            return Bin(op, substitute(a, mapping), substitute(b, mapping))
        case Unary(op=op, a=a):
            return Unary(op, substitute(a, mapping))
        case Cast(dtype=dt, a=a):
            return Cast(dt, substitute(a, mapping))
        case Select(cond=c, a=a, b=b):
            return Select(substitute(c, mapping), substitute(a, mapping), substitute(b, mapping))
        case Load(buffer=buf, index=i, lanes=n):
            return Load(buf, substitute(i, mapping), n)
        case Call(fn=fn, args=args):
            return Call(fn, tuple(substitute(a, mapping) for a in args))
        case Ramp(base=base, stride=s, lanes=n):
            return Ramp(substitute(base, mapping), s, n)
        case Broadcast(value=v, lanes=n):
            return Broadcast(substitute(v, mapping), n)
    raise TypeError(f"unknown expression {e!r}")


def affine_stride(e: Expr, var: Var) -> int | None:
    """The constant c with e = c*var + (terms free of var), or None if e is not of that form."""
    if not depends_on(e, var):
        return 0
    match e:
        case Var():
            return 1
        case Bin(op="add" | "sub", a=a, b=b):
            sa, sb = affine_stride(a, var), affine_stride(b, var)
            if sa is None or sb is None:
                return None
            return sa + sb if e.op == "add" else sa - sb
        case Bin(op="mul", a=a, b=Const(value=int(c))) | Bin(op="mul", a=Const(value=int(c)), b=a):
            s = affine_stride(a, var)
            return None if s is None else s * c
        case Bin(op="shl", a=a, b=Const(value=int(c))):
            s = affine_stride(a, var)
            return None if s is None else s << c
        case Unary(op="neg", a=a):
            s = affine_stride(a, var)
            return None if s is None else -s
        case Cast(dtype=dt, a=a) if dt.is_int and a.dtype.is_int and dt.itemsize >= a.dtype.itemsize:
            return affine_stride(a, var)
    return None


def _expr_reason(e: Expr) -> str | None:
    if isinstance(e, (Ramp, Broadcast)) or e.lanes != 1:
        return "the body already uses vector expressions"
    for c in children(e):
        reason = _expr_reason(c)
        if reason:
            return reason
    return None


def vector_reject_reason(s: Stmt, var: Var, lets: dict[Var, Expr]) -> str | None:
    """Why `s` cannot be rendered with `var` as vector lanes, or None if it can."""
    match s:
        case Store(index=i, value=v):
            reason = _expr_reason(i) or _expr_reason(v)
            if reason:
                return reason
            if affine_stride(substitute(i, lets), var) == 0:
                return f"a store to {s.buffer.name} writes the same element from every lane"
            return None
        case Let(var=x, value=v, body=body):
            return _expr_reason(v) or vector_reject_reason(body, var, {**lets, x: v})
        case If(cond=c, then=t, orelse=o):
            return (
                _expr_reason(c)
                or vector_reject_reason(t, var, lets)
                or (vector_reject_reason(o, var, lets) if o is not None else None)
            )
        case Seq(stmts=stmts):
            return next((r for st in stmts if (r := vector_reject_reason(st, var, lets))), None)
        case For(kind=kind, start=start, extent=ext, body=body):
            if kind not in (ForKind.SERIAL, ForKind.UNROLLED):
                return f"it contains a {kind.value} loop"
            if depends_on(substitute(start, lets), var) or depends_on(substitute(ext, lets), var):
                return "an inner loop's bounds depend on the lane"
            return vector_reject_reason(body, var, lets)
        case Allocate():
            return "it allocates a local buffer"
        case Barrier():
            return None
    raise TypeError(f"unknown statement {s!r}")
