"""A verifier of loop-IR kernels: types, bounds, parallel writes, barriers.

`verify_kernel(kernel, gpu=False)` raises `LoopVerifyError` naming the kernel and the
first problem found:

- types: every variable bound (by a loop or a `Let`) before use and every buffer a
  parameter or allocated around its use; indices, loop bounds integers; conditions bool;
  stored values of the buffer's element type, and lane counts that agree;
- bounds: every load and store provably inside its buffer, from the ranges of the loop
  variables, the conditions of enclosing `If`s (a guard `e < n` bounds `e` wherever it
  appears), and clamps (`min`, `max`, `select`) in the index. An index computed from loaded
  data that cannot be bounded so is returned, not refused (its kernel checks it at run time);
- parallel loops: a store to a buffer that outlives an iteration must be at an index
  that moves with the loop variable (affine: by at least the span one iteration writes),
  so no two iterations write the same element;
- barriers: only inside a GPU-bound loop, not under a condition that depends on a thread
  index, and never for a CPU target (`gpu=False`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .dtypes import DType
from .loop import (
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
)
from .loop_printer import expr_text
from .loop_tools import coefficient, exprs_of, stmts_of

INF = math.inf
Interval = tuple[float, float]
UNKNOWN: Interval = (-INF, INF)


class LoopVerifyError(ValueError):
    """A kernel breaks a rule of the loop IR."""


@dataclass
class _Scope:
    ranges: dict[Expr, Interval] = field(default_factory=dict)  # vars and guarded expressions
    buffers: set[int] = field(default_factory=set)
    thread_vars: set[Var] = field(default_factory=set)
    gpu_loops: int = 0
    divergent: bool = False  # under a condition that varies across GPU threads


class _Verifier:
    def __init__(self, kernel: Kernel, gpu: bool) -> None:
        self.kernel = kernel
        self.gpu = gpu
        self.unbounded: list[str] = []
        self.data: set[Expr] = set()  # Let variables whose value depends on loaded data

    def fail(self, what: str) -> LoopVerifyError:
        return LoopVerifyError(f"kernel {self.kernel.name}: {what}")

    # -- expressions
    def expr(self, e: Expr, sc: _Scope) -> None:
        for x in exprs_of(e):
            match x:
                case Var():
                    if x not in sc.ranges:
                        raise self.fail(f"variable {x.name} is used outside the loop or let binding it")
                case Load(buffer=b, index=i, lanes=n):
                    self.access("load from", b, i, n, sc)
                case Select(cond=c, a=a, b=b):
                    if c.dtype != DType.bool or a.dtype != b.dtype or a.lanes != b.lanes:
                        raise self.fail(f"select {expr_text(x)} mixes types or lanes")
                case Call(args=args) if any(a.lanes != args[0].lanes for a in args):
                    raise self.fail(f"call {expr_text(x)} mixes lane counts")
                case Interleave(parts=parts) if any(p.lanes != parts[0].lanes or p.dtype != parts[0].dtype
                                                    for p in parts):
                    raise self.fail(f"interleave {expr_text(x)} mixes types or lanes")
                case Ramp(base=b) if not b.dtype.is_int:
                    raise self.fail(f"ramp {expr_text(x)} over {b.dtype.name}")

    def access(self, what: str, b: Buffer, index: Expr, lanes: int, sc: _Scope) -> None:
        if id(b) not in sc.buffers:
            raise self.fail(f"{what} {b.name}, which is neither a parameter nor allocated here")
        if not index.dtype.is_int:
            raise self.fail(f"{what} {b.name} at index {expr_text(index)} of type {index.dtype.name}")
        lo, hi = self.interval(index, sc)
        if index.lanes == 1:
            hi += lanes - 1
        size = b.size if isinstance(b.size, int) else INF
        outside = lo < 0 or hi >= size
        if lo == -INF or hi == INF or (outside and any(isinstance(x, Load) or x in self.data for x in exprs_of(index))):
            self.unbounded.append(f"{what} {b.name}[{expr_text(index)}]")
            return
        if outside:
            shown = f"{int(lo)}..{int(hi)}"
            raise self.fail(f"{what} {b.name}[{expr_text(index)}] reaches elements {shown} of {size}")

    def interval(self, e: Expr, sc: _Scope) -> Interval:
        known = sc.ranges.get(e)
        if known is not None and not isinstance(e, Var):
            return _meet(known, self._interval(e, sc))
        return self._interval(e, sc)

    def _interval(self, e: Expr, sc: _Scope) -> Interval:
        match e:
            case Var():
                return sc.ranges.get(e, UNKNOWN)
            case Const(value=v):
                return (float(v), float(v)) if not isinstance(v, float) or math.isfinite(v) else UNKNOWN
            case Bin(op=op, a=a, b=b):
                return _bin_interval(op, self.interval(a, sc), self.interval(b, sc))
            case Unary(op="neg", a=a):
                lo, hi = self.interval(a, sc)
                return (-hi, -lo)
            case Cast(a=a) if e.dtype.is_int and a.dtype.is_int:
                return self.interval(a, sc)
            case Cast(a=a) if e.dtype.is_int and a.dtype == DType.bool:
                return (0, 1)
            case Select(a=a, b=b):
                (la, ha), (lb, hb) = self.interval(a, sc), self.interval(b, sc)
                return (min(la, lb), max(ha, hb))
            case Ramp(base=b, stride=s, lanes=n):
                lo, hi = self.interval(b, sc)
                return (lo + min(0, s * (n - 1)), hi + max(0, s * (n - 1)))
            case Broadcast(value=v):
                return self.interval(v, sc)
        if e.dtype == DType.bool:
            return (0, 1)
        return UNKNOWN

    # -- statements
    def stmt(self, s: Stmt, sc: _Scope) -> None:
        match s:
            case For(var=v, extent=n, start=a, body=b, kind=k):
                for x in (n, a):
                    self.expr(x, sc)
                    if not x.dtype.is_int or x.lanes != 1:
                        raise self.fail(f"loop {v.name} has a bound {expr_text(x)} that is not an integer")
                end = n.a if isinstance(n, Bin) and n.op == "sub" and n.b == a else Bin("add", a, n)  # a + (e - a)
                ranges = {**sc.ranges, v: (self.interval(a, sc)[0], self.interval(end, sc)[1] - 1)}
                if ranges[v][1] < ranges[v][0]:  # never runs (a run-time extent that is 0 at every size)
                    return
                inner = _Scope(ranges, sc.buffers, sc.thread_vars, sc.gpu_loops, sc.divergent)
                if k.is_gpu:
                    inner.gpu_loops += 1
                    if k.value.startswith("thread"):
                        inner.thread_vars = {*sc.thread_vars, v}
                if k is ForKind.PARALLEL:
                    self.parallel(s, sc)
                self.stmt(b, inner)
            case Store(buffer=buf, index=i, value=val):
                self.expr(i, sc)
                self.expr(val, sc)
                if val.dtype != buf.dtype:
                    raise self.fail(f"store of {val.dtype.name} {expr_text(val)} to {buf.dtype.name} buffer {buf.name}")
                if i.lanes not in (1, val.lanes):
                    raise self.fail(f"store to {buf.name}: {i.lanes} index lanes for {val.lanes} value lanes")
                self.access("store to", buf, i, val.lanes, sc)
            case Let(var=v, value=val, body=b):
                self.expr(val, sc)
                if val.dtype != v.dtype or val.lanes != v.lanes:
                    raise self.fail(f"let {v.name} binds {val.dtype.name} x{val.lanes} to a {v.dtype.name} x{v.lanes}")
                if any(isinstance(x, Load) or x in self.data for x in exprs_of(val)):
                    self.data.add(v)
                inner = _Scope({**sc.ranges, v: self.interval(val, sc)}, sc.buffers, sc.thread_vars, sc.gpu_loops,
                               sc.divergent)  # fmt: skip
                if self.varies(val, sc):
                    inner.thread_vars = {*sc.thread_vars, v}
                self.stmt(b, inner)
            case Allocate(buffer=buf, body=b):
                self.stmt(b, _Scope(sc.ranges, {*sc.buffers, id(buf)}, sc.thread_vars, sc.gpu_loops, sc.divergent))
            case If(cond=c, then=t, orelse=o):
                self.expr(c, sc)
                if c.dtype != DType.bool or c.lanes != 1:
                    raise self.fail(f"condition {expr_text(c)} is not one bool")
                divergent = sc.divergent or self.varies(c, sc)
                self.stmt(t, _Scope(_guarded(c, sc.ranges, self), sc.buffers, sc.thread_vars, sc.gpu_loops, divergent))
                if o is not None:
                    self.stmt(o, _Scope(sc.ranges, sc.buffers, sc.thread_vars, sc.gpu_loops, divergent))
            case Seq(stmts=stmts):
                for x in stmts:
                    self.stmt(x, sc)
            case Prefetch(buffer=buf, index=i):
                self.expr(i, sc)
                if i.lanes != 1:
                    raise self.fail(f"prefetch of {buf.name} with {i.lanes} index lanes")
                self.access("prefetch of", buf, i, 1, sc)
            case Barrier():
                if not self.gpu:
                    raise self.fail("a barrier in a kernel for a CPU target")
                if not sc.gpu_loops or sc.divergent:
                    raise self.fail("a barrier outside GPU-bound loops, or under a condition differing between threads")
            case _:
                raise self.fail(f"unknown statement {type(s).__name__}")

    def varies(self, e: Expr, sc: _Scope) -> bool:
        return any(isinstance(x, Var) and x in sc.thread_vars for x in exprs_of(e))

    def parallel(self, loop: For, sc: _Scope) -> None:
        """Stores in `loop` to buffers outliving one iteration must move with the loop variable."""
        local = {id(s.buffer) for s in stmts_of(loop.body) if isinstance(s, Allocate)}
        env: dict[Var, int | None] = {}
        for s in stmts_of(loop.body):
            if isinstance(s, Let):
                env[s.var] = coefficient(s.value, loop.var, env)
            if not isinstance(s, Store) or id(s.buffer) in local:
                continue
            c = coefficient(s.index, loop.var, env)
            depends = any(x is loop.var or env.get(x) != 0 for x in exprs_of(s.index) if isinstance(x, Var))
            if c == 0 or not depends:
                raise self.fail(f"iterations of parallel loop {loop.var.name} all store to {s.buffer.name}"
                                f"[{expr_text(s.index)}]")  # fmt: skip


def _meet(a: Interval, b: Interval) -> Interval:
    return (max(a[0], b[0]), min(a[1], b[1]))


def _guarded(c: Expr, ranges: dict[Expr, Interval], v: _Verifier) -> dict[Expr, Interval]:
    """`ranges` refined by knowing that `c` holds (conjunctions of comparisons with a bound)."""
    out = dict(ranges)
    parts = [c]
    while parts:
        x = parts.pop()
        if not isinstance(x, Bin):
            continue
        if x.op == "and":
            parts += [x.a, x.b]
            continue
        if x.op not in ("lt", "le", "gt", "ge") or not x.a.dtype.is_int:
            continue
        sc = _Scope(out)
        (la, ha), (lb, hb) = v.interval(x.a, sc), v.interval(x.b, sc)
        if x.op in ("lt", "le"):
            out[x.a] = _meet(out.get(x.a, UNKNOWN), (-INF, hb - (x.op == "lt")))
            out[x.b] = _meet(out.get(x.b, UNKNOWN), (la + (x.op == "lt"), INF))
        else:
            out[x.a] = _meet(out.get(x.a, UNKNOWN), (lb + (x.op == "gt"), INF))
            out[x.b] = _meet(out.get(x.b, UNKNOWN), (-INF, ha - (x.op == "gt")))
    return out


def _bin_interval(op: str, a: Interval, b: Interval) -> Interval:
    (la, ha), (lb, hb) = a, b
    match op:
        case "add":
            return (la + lb, ha + hb)
        case "sub":
            return (la - hb, ha - lb)
        case "mul":
            products = [x * y for x in (la, ha) for y in (lb, hb) if not (math.isinf(x) and y == 0)]
            products += [0] if any(math.isinf(x) for x in (la, ha, lb, hb)) and 0 in (la, ha, lb, hb) else []
            return (min(products), max(products)) if products else UNKNOWN
        case "min":
            return (min(la, lb), min(ha, hb))
        case "max":
            return (max(la, lb), max(ha, hb))
        case "div" if lb > 0:  # truncation toward zero
            quotients = [_trunc(x / y) for x in (la, ha) for y in (lb, hb)]
            return (min(quotients), max(quotients))
        case "mod" if lb > 0:
            if la >= 0:
                return (0, min(hb - 1, ha))
            return (-(hb - 1), hb - 1 if ha > 0 else 0)
        case "shr" if lb >= 0 and la >= 0:
            return (0, ha)
        case "and" if la >= 0 and lb >= 0:
            return (0, min(ha, hb))
    return UNKNOWN


def _trunc(x: float) -> float:
    return x if math.isinf(x) else float(math.trunc(x))


def verify_kernel(kernel: Kernel, gpu: bool = False) -> list[str]:
    """Check `kernel` (see the module docstring); return the accesses it could not bound."""
    v = _Verifier(kernel, gpu)
    buffers = {id(p) for p in kernel.params}
    if len(buffers) != len(kernel.params):
        raise v.fail("a buffer is passed twice among the parameters")
    v.stmt(kernel.body, _Scope({}, buffers))
    return v.unbounded

