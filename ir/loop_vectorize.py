"""Vectorization of loops, the one vectoriser of the loop IR.

- Explicit (a schedule's `Vectorize` record): `vectorize_loop` rewrites a loop's body over
  vector lanes, below.
- Implicit (a `For` of kind VECTORIZED, rendered by a target as one vector body with the loop
  variable as the lanes): `vector_reject_reason` says why a body cannot be rendered so, and the
  target renders such a loop as a scalar loop instead.

`vectorize_loop(for, lanes)` replaces `for v in n: body` by a loop over whole vectors,
where every expression depending on v becomes a `lanes`-wide vector (v itself is a
`Ramp`), and a scalar loop for the remainder. Accesses must be contiguous in v
(stride 1: one vector load/store) or independent of v (one scalar load, broadcast).
Gathers are not emitted: on the x86 cores measured, scalar loops beat them. Stores of stride s (2..MAX_INTERLEAVE)
that follow one another in a sequence and write s*v + c for every c < s (an upsampling's phases) are one store of
their values interleaved.
Stack buffers allocated inside the loop are expanded per lane (element e of lane l at
e*lanes + l), so a per-element accumulator becomes a vector accumulator. Anything else
(strided accesses, several lanes writing one element, conditions varying across lanes) raises
`ScheduleError` with the reason, and the caller keeps the scalar loop.

The lowering guarantees iterations of a loop it emits are independent, except through
such per-iteration stack buffers; that is what makes this rewrite sound.
"""

from __future__ import annotations

from dataclasses import replace

from .loop import (
    INDEX,
    Allocate,
    Barrier,
    Bin,
    Broadcast,
    Buffer,
    Call,
    Cast,
    Const,
    Expr,
    For,
    ForKind,
    If,
    Interleave,
    Let,
    Load,
    Prefetch,
    Ramp,
    Scope,
    Select,
    Seq,
    Stmt,
    Store,
    Unary,
    Var,
    children,
)
from .loop_tools import (
    binop,
    coefficient,
    depends_on,
    exprs_of,
    inline_lets,
    map_expr,
    seq,
    static_int,
    subst,
    subst_stmt,
)
from .schedule import ScheduleError

MAX_INTERLEAVE = 4  # stores of stride up to this many, one per phase, become one interleaved store


def vectorize_loop(loop: For, lanes: int) -> Stmt:
    """The loop as whole vectors of `lanes` and a scalar remainder loop (an extent known only at run
    time gets both, the vector loop running extent // lanes times)."""
    extent = static_int(loop.extent)
    if extent is None:
        return _vectorize_dynamic(loop, lanes)
    if extent < lanes:
        raise ScheduleError(f"loop {loop.var.name} has {extent} iterations, fewer than {lanes} lanes")
    if loop.kind is ForKind.PARALLEL or loop.kind.is_gpu:
        raise ScheduleError(f"loop {loop.var.name} is {loop.kind.value}")
    v = loop.var
    whole, rest = divmod(extent, lanes)
    outer = Var(f"{v.name}.v")
    base = loop.start if whole == 1 else binop("add", loop.start, binop("mul", outer, Const(lanes, INDEX)))
    body = _Vectorizer(v, base, lanes).stmt(loop.body)
    main = body if whole == 1 else For(outer, Const(whole, INDEX), body)
    if not rest:
        return main
    tail_var = Var(f"{v.name}.t")
    tail_start = binop("add", loop.start, Const(whole * lanes, INDEX))
    tail_body = subst_stmt(rename(loop.body, ".t"), {v: binop("add", tail_start, tail_var)})
    return seq(main, For(tail_var, Const(rest, INDEX), tail_body))


def _vectorize_dynamic(loop: For, lanes: int) -> Stmt:
    if loop.kind is ForKind.PARALLEL or loop.kind.is_gpu:
        raise ScheduleError(f"loop {loop.var.name} is {loop.kind.value}")
    v = loop.var
    outer = Var(f"{v.name}.v")
    base = binop("add", loop.start, binop("mul", outer, Const(lanes, INDEX)))
    main = For(outer, binop("div", loop.extent, Const(lanes, INDEX)), _Vectorizer(v, base, lanes).stmt(loop.body))
    tail_var = Var(f"{v.name}.t")
    done = binop("mul", binop("div", loop.extent, Const(lanes, INDEX)), Const(lanes, INDEX))
    tail_body = subst_stmt(rename(loop.body, ".t"), {v: binop("add", binop("add", loop.start, done), tail_var)})
    return seq(main, For(tail_var, binop("mod", loop.extent, Const(lanes, INDEX)), tail_body))


def rename(s: Stmt, suffix: str) -> Stmt:
    """A copy of `s` whose loop/let variables and stack buffers get `suffix` (names stay unique)."""
    vars_: dict[Var, Expr] = {}
    bufs: dict[Buffer, Buffer] = {}

    def walk(s: Stmt) -> Stmt:
        match s:
            case For(var=v):
                nv = Var(v.name + suffix, v.dtype, v.lanes)
                vars_[v] = nv
                return replace(s, var=nv, extent=ex(s.extent), start=ex(s.start), body=walk(s.body))
            case Let(var=v, value=val, body=body):
                nv = Var(v.name + suffix, v.dtype, v.lanes)
                value = ex(val)
                vars_[v] = nv
                return Let(nv, value, walk(body))
            case Allocate(buffer=b, body=body):
                bufs[b] = Buffer(b.name + suffix, b.dtype, b.size, b.scope)
                return Allocate(bufs[b], walk(body))
            case Store(buffer=b, index=i, value=val):
                return Store(bufs.get(b, b), ex(i), ex(val))
            case Prefetch(buffer=b, index=i):
                return Prefetch(bufs.get(b, b), ex(i))
            case If(cond=c, then=t, orelse=o):
                return If(ex(c), walk(t), walk(o) if o is not None else None)
            case Seq(stmts=stmts):
                return Seq([walk(x) for x in stmts])
        return s

    def ex(e: Expr) -> Expr:
        def fn(x: Expr) -> Expr | None:
            if isinstance(x, Var):
                return vars_.get(x)
            if isinstance(x, Load) and x.buffer in bufs:
                return Load(bufs[x.buffer], ex(x.index), x.lanes)
            return None

        return map_expr(e, fn)

    return walk(s)


class _Vectorizer:
    def __init__(self, var: Var, base: Expr, lanes: int) -> None:
        self.var = var
        self.n = lanes
        self.coef: dict[Var, int | None] = {}  # Let-bound vector variables: affine coefficient in var
        self.vectors: dict[Var, Var] = {}  # Let variable -> its vector form
        self.lane0: dict[Var, Expr] = {var: base}  # affine variables -> their value in lane 0
        self.expanded: dict[Buffer, Buffer] = {}

    # -- analysis
    def varies(self, e: Expr) -> bool:
        return any(isinstance(x, Var) and (x is self.var or x in self.vectors) for x in exprs_of(e))

    def stride(self, index: Expr) -> int | None:
        return coefficient(index, self.var, self.coef)

    def first(self, e: Expr) -> Expr:
        """The scalar value of an affine expression in lane 0."""
        return subst(e, self.lane0)

    def widen(self, e: Expr) -> Expr:
        return e if e.lanes == self.n else Broadcast(e, self.n)

    # -- expressions
    def expr(self, e: Expr) -> Expr:
        match e:
            case Var():
                if e is self.var:
                    return Ramp(self.lane0[e], 1, self.n)
                return self.vectors.get(e, e)
            case Const():
                return e
            case Load(buffer=buf, index=i, lanes=1):
                return self.load(buf, i)
            case Bin(op=op, a=a, b=b):
                x, y = self.expr(a), self.expr(b)
                if x.lanes != y.lanes:
                    x, y = self.widen(x), self.widen(y)
                return Bin(op, x, y)
            case Unary(op=op, a=a):
                return Unary(op, self.expr(a))
            case Cast(dtype=dt, a=a):
                return Cast(dt, self.expr(a))
            case Select(cond=c, a=a, b=b):
                parts = [self.expr(c), self.expr(a), self.expr(b)]
                if any(p.lanes > 1 for p in parts):
                    parts = [self.widen(p) for p in parts]
                return Select(*parts)
            case Call(fn=fn, args=args):
                parts = [self.expr(a) for a in args]
                if any(p.lanes > 1 for p in parts):
                    parts = [self.widen(p) for p in parts]
                return Call(fn, tuple(parts))
        raise ScheduleError(f"cannot vectorize the expression {type(e).__name__} (already a vector?)")

    def load(self, buf: Buffer, i: Expr) -> Expr:
        if buf in self.expanded:
            if self.varies(i):
                raise ScheduleError(f"local buffer {buf.name} is indexed by the vectorized loop")
            return Load(self.expanded[buf], binop("mul", i, Const(self.n, INDEX)), self.n)
        if not self.varies(i):
            return Load(buf, i)
        i = self.within_blocks(i)
        s = self.stride(i)
        if s == 1:
            return Load(buf, self.start(i), self.n)
        raise ScheduleError(f"load from {buf.name} has stride {s if s is not None else '(non-affine)'}")

    def within_blocks(self, e: Expr) -> Expr:
        """`e` with (a + v) // m and (a + v) % m made affine where the n lanes are one block of m or part of one:
        v the vectorized variable, n <= m, a and v's first lane multiples of m (a blocked layout's channel c read
        as block c // m, lane c % m, by vectors of one block)."""
        base = self.lane0[self.var]

        def fn(x: Expr) -> Expr | None:
            if not (isinstance(x, Bin) and x.op in ("div", "mod") and isinstance(x.b, Const)):
                return None
            m = int(x.b.value)
            if m < self.n or coefficient(x.a, self.var, self.coef) != 1:
                return None
            rest = subst(x.a, {self.var: Const(0, INDEX)})
            if self.varies(rest) or not (_multiple(rest, m) and _multiple(base, m)):
                return None
            return Bin("div", binop("add", rest, base), x.b) if x.op == "div" else Bin("sub", self.var, base)

        return map_expr(e, fn)

    def start(self, index: Expr) -> Expr:
        """The first lane's value of a unit-stride index, a lane offset v - base from `within_blocks` as 0 (so the
        verifier need not prove base - base is 0)."""
        base = self.lane0[self.var]

        def fn(x: Expr) -> Expr | None:
            return Const(0, INDEX) if isinstance(x, Bin) and x.op == "sub" and x.a is self.var and x.b is base else None

        return self.first(map_expr(index, fn))

    # -- statements
    def stmt(self, s: Stmt) -> Stmt:
        match s:
            case Store(buffer=buf, index=i, value=val):
                return self.store(buf, i, val)
            case Let(var=v, value=val, body=body):
                value = self.expr(val)
                if value.lanes == 1:
                    return Let(v, value, self.stmt(body))
                nv = Var(v.name, v.dtype, self.n)
                self.vectors[v] = nv
                c = self.stride(val) if val.dtype == INDEX else None
                self.coef[v] = c
                if c is not None:
                    self.lane0[v] = self.first(val)
                return Let(nv, value, self.stmt(body))
            case For(var=u, extent=ext, body=body, kind=kind, start=start):
                if self.varies(ext) or self.varies(start):
                    raise ScheduleError(f"inner loop {u.name} has bounds varying across lanes")
                if kind is ForKind.PARALLEL:
                    raise ScheduleError(f"inner loop {u.name} is parallel")
                return For(u, ext, self.stmt(body), kind, start)
            case If(cond=c, then=t, orelse=o):
                if self.varies(c):
                    raise ScheduleError("a condition varies across lanes")
                return If(c, self.stmt(t), self.stmt(o) if o is not None else None)
            case Allocate(buffer=buf, body=body):
                if buf.scope is not Scope.STACK:
                    raise ScheduleError(f"cannot expand {buf.scope.value} buffer {buf.name} per lane")
                wide = Buffer(buf.name, buf.dtype, int(buf.size) * self.n, Scope.STACK)
                self.expanded[buf] = wide
                return Allocate(wide, self.stmt(body))
            case Seq(stmts=stmts):
                out: list[Stmt] = []
                while stmts:
                    grouped = self.interleaved(stmts)
                    if grouped is not None:
                        out.append(grouped)
                        stmts = stmts[len(grouped.value.parts):]
                    else:
                        out.append(self.stmt(stmts[0]))
                        stmts = stmts[1:]
                return Seq(out)
            case Barrier():
                return s
            case Prefetch(index=i) if not self.varies(i):
                return s
        raise ScheduleError(f"cannot vectorize the statement {type(s).__name__}")

    def interleaved(self, stmts: list[Stmt]) -> Store | None:
        """The first s of `stmts` as one store when they store (after the lets binding their values) to one buffer
        at s*v + c for c = c0 .. c0 + s-1, in any order: their values interleaved, stored from the least index."""
        head = _let_store(stmts[0])
        if head is None or head.buffer in self.expanded or not self.varies(head.index):
            return None
        s = self.stride(head.index)
        if s is None or not 2 <= s <= min(MAX_INTERLEAVE, len(stmts)):
            return None
        base, _ = _offset(head.index)
        phases: dict[int, Store] = {}
        for x in map(_let_store, stmts[:s]):
            if x is None or x.buffer is not head.buffer or self.stride(x.index) != s:
                return None
            at, c = _offset(x.index)
            if at != base:
                return None
            phases[c] = x
        low = min(phases)
        if sorted(phases) != list(range(low, low + s)):
            return None
        values = tuple(self.widen(self.expr(phases[c].value)) for c in sorted(phases))
        return Store(head.buffer, self.first(phases[low].index), Interleave(values))

    def store(self, buf: Buffer, i: Expr, val: Expr) -> Stmt:
        value = self.expr(val)
        if buf in self.expanded:
            if self.varies(i):
                raise ScheduleError(f"local buffer {buf.name} is indexed by the vectorized loop")
            return Store(self.expanded[buf], binop("mul", i, Const(self.n, INDEX)), self.widen(value))
        if not self.varies(i):
            if value.lanes > 1:
                raise ScheduleError(f"all lanes store to one element of {buf.name} (a reduction)")
            return Store(buf, i, value)
        i = self.within_blocks(i)
        s = self.stride(i)
        if s != 1:
            raise ScheduleError(f"store to {buf.name} has stride {s if s is not None else '(non-affine)'}")
        return Store(buf, self.start(i), self.widen(value))


# ---------------------------------------------------------------- implicit vectorization (rendering)


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
            if coefficient(inline_lets(i, lets), var) == 0:
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
            if depends_on(inline_lets(start, lets), var) or depends_on(inline_lets(ext, lets), var):
                return "an inner loop's bounds depend on the lane"
            return vector_reject_reason(body, var, lets)
        case Allocate():
            return "it allocates a local buffer"
        case Barrier():
            return None
        case Prefetch(index=i):
            return _expr_reason(i) or ("a prefetch address depends on the lane" if depends_on(inline_lets(i, lets), var)
                                       else None)
    raise TypeError(f"unknown statement {s!r}")


def _let_store(s: Stmt) -> Store | None:
    """A store, or lets around one, as one store with the lets' values in place."""
    lets: dict[Var, Expr] = {}
    while isinstance(s, Let):
        lets[s.var] = s.value
        s = s.body
    if not isinstance(s, Store):
        return None
    return Store(s.buffer, inline_lets(s.index, lets), inline_lets(s.value, lets)) if lets else s


def _offset(e: Expr) -> tuple[Expr, int]:
    """An index as (base, c): e = base + c, c the sum of the constant terms of its additions."""
    if isinstance(e, Const) and e.dtype == INDEX:
        return Const(0, INDEX), int(e.value)
    if isinstance(e, Bin) and e.op == "add":
        (a, ca), (b, cb) = _offset(e.a), _offset(e.b)
        return binop("add", a, b), ca + cb
    return e, 0


def _multiple(e: Expr, m: int) -> bool:
    """Whether index expression `e` is a multiple of m whatever its variables (sums of products by multiples)."""
    match e:
        case Const(value=value):
            return int(value) % m == 0
        case Bin(op="add" | "sub", a=a, b=b):
            return _multiple(a, m) and _multiple(b, m)
        case Bin(op="mul", a=a, b=b):
            return _multiple(a, m) or _multiple(b, m)
    return False
