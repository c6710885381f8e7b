"""Applying schedule records to kernels, and the rule-based default schedule.

`apply(kernel, record)` is pure: it returns a new kernel whose loop named by the record
is transformed, and appends the record to ``kernel.attrs["schedule"]``. Directives
(`MicroKernel`, `CachePack`) were consumed by the lowering and are only recorded.

`default_schedule(kernel, target, hints)`: the lowering's own requests first (a
contraction asks for its micro-kernel's unroll/vectorize/parallel records), otherwise per
top-level loop nest: vectorize the innermost loop that allows it (walking outwards), then
fuse outer loops until there is enough parallel work and make that loop parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from aic.codegen.target import Target
from aic.ir.loop import (
    INDEX,
    Allocate,
    Bin,
    Broadcast,
    Buffer,
    Cast,
    Const,
    Expr,
    For,
    ForKind,
    If,
    Kernel,
    Let,
    Load,
    Ramp,
    Scope,
    Select,
    Seq,
    Stmt,
    Store,
    Var,
)
from aic.ir.loop_tools import (
    binop,
    coefficient,
    exprs_of,
    inline_lets,
    map_stmt,
    static_int,
    stmts_of,
    subst,
    subst_stmt,
)
from aic.ir.loop_vectorize import vectorize_loop
from aic.ir.schedule import (
    DIRECTIVES,
    Bind,
    Fuse,
    Parallel,
    Record,
    Reorder,
    ScheduleError,
    Split,
    Tile,
    Unroll,
    Vectorize,
)

PARALLEL_MIN_WORK = 1 << 15  # statement executions (a vector store counts its lanes) worth waking the threads for
PARALLEL_MIN_EXTENT = 16  # fuse outer loops until the parallel loop has this many iterations
MAX_UNROLL = 8  # a serial innermost loop this short is unrolled


def apply(kernel: Kernel, record: Record) -> Kernel:
    body = kernel.body if isinstance(record, DIRECTIVES) else _apply(kernel.body, record)
    attrs = {**kernel.attrs, "schedule": [*kernel.attrs.get("schedule", []), record]}
    return Kernel(kernel.name, kernel.params, body, attrs)


def apply_all(kernel: Kernel, records: list[Record]) -> Kernel:
    for r in records:
        kernel = apply(kernel, r)
    return kernel


def _apply(body: Stmt, r: Record) -> Stmt:
    match r:
        case Split(loop=name, factor=f):
            return _on_loop(body, name, lambda loop: _split(loop, f))
        case Fuse(outer=a, inner=b):
            return _on_loop(body, a, lambda loop: _fuse(loop, b))
        case Reorder(loops=names):
            return _on_loop(body, names[0], lambda loop: _reorder(loop, names), any_of=names)
        case Tile(x=x, y=y, fx=fx, fy=fy):
            for step in (Split(x, fx), Split(y, fy), Reorder((f"{x}.o", f"{y}.o", f"{x}.i", f"{y}.i"))):
                body = _apply(body, step)
            return body
        case Vectorize(loop=name, lanes=n):
            return _on_loop(body, name, lambda loop: vectorize_loop(loop, n))
        case Parallel(loop=name):
            return _on_loop(body, name, lambda loop: replace(loop, kind=ForKind.PARALLEL))
        case Unroll(loop=name):
            return _on_loop(body, name, lambda loop: replace(loop, kind=ForKind.UNROLLED))
        case Bind(loop=name, axis=axis):
            return _on_loop(body, name, lambda loop: replace(loop, kind=ForKind(axis)))
    raise ScheduleError(f"unknown schedule record {r!r}")


def _on_loop(body: Stmt, name: str, fn: Callable[[For], Stmt], any_of: tuple[str, ...] = ()) -> Stmt:
    """Rewrite the loop named `name` (the first of `any_of` met, for reorders) with `fn`."""
    names = set(any_of) or {name}
    found = []

    def at(s: Stmt) -> Stmt | None:
        if isinstance(s, For) and s.var.name in names and not found:
            found.append(s.var.name)
            return fn(s)
        return None

    out = map_stmt(body, at)
    if not found:
        raise ScheduleError(f"no loop named {name}")
    return out


def _extent(loop: For) -> int:
    e = static_int(loop.extent)
    if e is None:
        raise ScheduleError(f"loop {loop.var.name} has a dynamic extent")
    return e


def _split(loop: For, f: int) -> Stmt:
    n = _extent(loop)
    if f <= 0:
        raise ScheduleError(f"split factor {f} must be positive")
    v = loop.var
    outer, inner = Var(f"{v.name}.o"), Var(f"{v.name}.i")
    value = binop("add", loop.start, binop("add", binop("mul", outer, Const(f, INDEX)), inner))
    body = subst_stmt(loop.body, {v: value})
    if n % f:
        body = _guard(body, binop("lt", value, binop("add", loop.start, Const(n, INDEX))))
    inner_loop = For(inner, Const(f, INDEX), body, loop.kind)
    return For(outer, Const(-(-n // f), INDEX), inner_loop)


def _guard(body: Stmt, cond: Expr) -> Stmt:
    """`if cond: body`, sunk to the innermost body of a perfect nest so the nest stays perfect."""
    if isinstance(body, For):
        return replace(body, body=_guard(body.body, cond))
    return If(cond, body)


def _fuse(loop: For, inner_name: str) -> Stmt:
    inner = loop.body
    if not (isinstance(inner, For) and inner.var.name == inner_name):
        raise ScheduleError(f"loop {inner_name} is not directly inside {loop.var.name}")
    n_in = inner.extent  # a constant, or a run-time size
    fused = Var(f"{loop.var.name}.{inner_name}")
    env = {
        loop.var: binop("add", loop.start, binop("div", fused, n_in)),
        inner.var: binop("add", inner.start, binop("mod", fused, n_in)),
    }
    return For(fused, binop("mul", loop.extent, n_in), subst_stmt(inner.body, env))


def _reorder(loop: For, names: tuple[str, ...]) -> Stmt:
    chain: list[For] = []
    s: Stmt = loop
    while isinstance(s, For) and len(chain) < len(names):
        chain.append(s)
        s = s.body
    if sorted(lp.var.name for lp in chain) != sorted(names):
        raise ScheduleError(f"loops {list(names)} are not a perfect nest")
    by_name = {lp.var.name: lp for lp in chain}
    body = s
    for name in reversed(names):
        lp = by_name[name]
        body = For(lp.var, lp.extent, body, lp.kind, lp.start)
    return body


# ---------------------------------------------------------------- default rules


def default_schedule(kernel: Kernel, target: Target, hints: list[Record] | None = None) -> Kernel:
    """The kernel with rule-based records applied (listed in ``attrs["schedule"]``).

    The lowering's hints go first; one that does not apply (say, a vectorization over a
    strided operand) is skipped. The rules then cover the loops the hints left alone.
    A cuda kernel is left as lowered: compiler/schedule_gpu.py binds it to a grid later."""
    if target.kind == "cuda":
        return kernel
    for record in hints or []:
        try:
            kernel = apply(kernel, record)
        except ScheduleError:
            continue
    for nest in _top_loops(kernel.body):
        kernel = _vectorize_nest(kernel, nest, target)
    typical = {v: Const(n, INDEX) for v, n in kernel.attrs.get("typical_sizes", {}).items()}
    for nest in _top_loops(kernel.body):
        kernel = _parallelize_nest(kernel, nest, typical)
    return _unroll_small(kernel)


def _top_loops(s: Stmt) -> Iterator[For]:
    """Loops not nested in another loop."""
    match s:
        case For():
            yield s
        case Let(body=b) | Allocate(body=b):
            yield from _top_loops(b)
        case If(then=t, orelse=o):
            yield from _top_loops(t)
            if o is not None:
                yield from _top_loops(o)
        case Seq(stmts=stmts):
            for x in stmts:
                yield from _top_loops(x)


def _lanes(loop: For, target: Target) -> int:
    sizes = [x.buffer.dtype.itemsize for x in _accesses(loop)]
    return target.lanes(max(sizes, default=4))


def _accesses(s: Stmt) -> Iterator[Load | Store]:
    for st in stmts_of(s):
        if isinstance(st, Store):
            yield st
            exprs = [st.index, st.value]
        elif isinstance(st, For):
            exprs = [st.extent, st.start]
        elif isinstance(st, (Let, If)):
            exprs = [st.value if isinstance(st, Let) else st.cond]
        else:
            exprs = []
        for e in exprs:
            yield from (x for x in exprs_of(e) if isinstance(x, Load))


def _innermost_paths(loop: For) -> list[list[For]]:
    """Paths from `loop` down to each innermost loop (outermost first)."""
    inner = [x for x in stmts_of(loop.body) if isinstance(x, For)]
    if not inner:
        return [[loop]]
    direct = [x for x in inner if not any(x is not y and any(x is z for z in stmts_of(y.body)) for y in inner)]
    return [[loop, *p] for d in direct for p in _innermost_paths(d)]


def _vectorize_nest(kernel: Kernel, nest: For, target: Target) -> Kernel:
    for path in _innermost_paths(nest):
        for loop in reversed(path):
            if loop.kind is not ForKind.SERIAL:
                break
            extent = static_int(loop.extent)
            lanes = _lanes(loop, target)
            if extent is None:  # a run-time extent: whole vectors and a remainder
                extent = lanes if _of_sizes(loop.extent, kernel) else 0
            if extent < 4:
                continue
            if extent < lanes:
                lanes = extent  # one vector of the whole (short) loop
            while extent < lanes:
                lanes //= 2
            try:
                kernel = apply(kernel, Vectorize(loop.var.name, lanes))
                break
            except ScheduleError:
                continue
    return kernel


def _of_sizes(e: Expr, kernel: Kernel) -> bool:
    """Whether `e` is computed from the kernel's run-time sizes alone (compiler/lower/symbols.py)."""
    sizes = kernel.attrs.get("typical_sizes", {})
    return all(x in sizes for x in exprs_of(e) if isinstance(x, Var)) and not any(
        isinstance(x, Load) for x in exprs_of(e)
    )


def _unroll_small(kernel: Kernel) -> Kernel:
    """Unroll serial loops of at most MAX_UNROLL iterations whose body has no loop (window taps, tails)."""
    for loop in [s for s in stmts_of(kernel.body) if isinstance(s, For)]:
        extent = static_int(loop.extent)
        inner = any(isinstance(x, For) for x in stmts_of(loop.body))
        if loop.kind is ForKind.SERIAL and extent is not None and extent <= MAX_UNROLL and not inner:
            kernel = apply(kernel, Unroll(loop.var.name))
    return kernel


def _work(s: Stmt, typical: dict[Var, Expr]) -> int:
    """The statements `s` runs (run-time sizes at their `typical` values, the opt of their range)."""
    match s:
        case For(body=b):
            return (_typical_extent(s, typical) or 1) * _work(b, typical)
        case Let(body=b) | Allocate(body=b):
            return 1 + _work(b, typical)
        case If(then=t, orelse=o):
            return 1 + _work(t, typical) + (_work(o, typical) if o is not None else 0)
        case Seq(stmts=stmts):
            return sum(_work(x, typical) for x in stmts)
        case Store(value=v):
            return v.lanes
    return 1


def _scatters(nest: For) -> bool:
    """Whether the nest stores at data-dependent positions (iterations may collide)."""
    loaded: set[Var] = set()

    def data(e: Expr) -> bool:
        return any(isinstance(x, Load) or (isinstance(x, Var) and x in loaded) for x in exprs_of(e))

    for s in stmts_of(nest):
        if isinstance(s, Let) and data(s.value):
            loaded.add(s.var)
        if isinstance(s, Store) and data(s.index):
            return True
    return False


def _independent(loop: For) -> bool:
    """Whether the iterations of `loop` touch disjoint memory, so they may run at once.

    Every store must go to a buffer allocated inside the loop, or to a global buffer at
    an index that depends on the loop variable (directly or through a `Let`); a buffer
    stored in the loop may only be read back at an index it is stored at. A reduction
    over the loop (an accumulator allocated outside it) fails the test."""
    local = {s.buffer for s in stmts_of(loop.body) if isinstance(s, Allocate)}
    varying: set[Var] = {loop.var}
    stored: dict[Buffer, list[Expr]] = {}
    for s in stmts_of(loop.body):
        if isinstance(s, Let) and any(x in varying for x in exprs_of(s.value)):
            varying.add(s.var)
        if isinstance(s, Store) and s.buffer not in local:
            if s.buffer.scope is not Scope.GLOBAL or not any(x in varying for x in exprs_of(s.index)):
                return False
            stored.setdefault(s.buffer, []).append(s.index)
    reread = {ld.buffer for ld in _accesses(loop) if isinstance(ld, Load) and ld.buffer in stored}
    return all(
        _sliced(loop, b) for b in reread if any(ld.index not in stored[b] for ld in _accesses(loop) if ld.buffer is b)
    )


Interval = tuple[int, int]


def _sliced(loop: For, buffer: Buffer) -> bool:
    """Whether every access to `buffer` in `loop` stays in its iteration's own slice [c v, c v + c) (v the loop
    variable, c > 0 the same coefficient for all): a scratch region per iteration (a padded copy of one
    channel block, written and then read through a window), which iterations can use at once."""
    lets = {s.var: s.value for s in stmts_of(loop.body) if isinstance(s, Let)}
    ranges: dict[Var, Interval] = {}
    for inner in (s for s in stmts_of(loop.body) if isinstance(s, For)):
        start, extent = _interval(inner.start, ranges), static_int(inner.extent)
        if start is None or extent is None or extent < 1:
            return False
        ranges[inner.var] = (start[0], start[1] + extent - 1)
    slices = set()
    for access in _accesses(loop):
        if access.buffer is not buffer:
            continue
        lanes = access.lanes if isinstance(access, Load) else access.value.lanes
        index = inline_lets(access.index, lets)
        c = coefficient(index, loop.var)
        rest = _interval(subst(index, {loop.var: Const(0, index.dtype)}), ranges)
        if c is None or c <= 0 or rest is None or rest[0] < 0 or rest[1] + (lanes if index.lanes == 1 else 1) > c:
            return False
        slices.add(c)
    return len(slices) == 1


def _interval(e: Expr, ranges: dict[Var, Interval]) -> Interval | None:
    """The values integer expression `e` takes with the variables in `ranges` (None: unknown)."""
    match e:
        case Const(value=int(v)) if not isinstance(v, bool):
            return (v, v)
        case Var():
            return ranges.get(e)
        case Cast(a=a) if e.dtype.is_int and a.dtype.is_int:
            return _interval(a, ranges)
        case Broadcast(value=x):
            return _interval(x, ranges)
        case Ramp(base=b, stride=st, lanes=n):
            r = _interval(b, ranges)
            return None if r is None else (r[0] + min(0, st * (n - 1)), r[1] + max(0, st * (n - 1)))
        case Select(a=a, b=b):
            ra, rb = _interval(a, ranges), _interval(b, ranges)
            return None if ra is None or rb is None else (min(ra[0], rb[0]), max(ra[1], rb[1]))
        case Bin(op="add" | "sub" | "mul" | "min" | "max" | "div" | "mod" as op, a=a, b=b):
            ra, rb = _interval(a, ranges), _interval(b, ranges)
            if ra is None or rb is None:
                return None
            (la, ha), (lb, hb) = ra, rb
            if op == "add":
                return (la + lb, ha + hb)
            if op == "sub":
                return (la - hb, ha - lb)
            if op in ("mul", "min", "max"):
                fn = {"mul": lambda x, y: x * y, "min": min, "max": max}[op]
                values = [fn(x, y) for x in (la, ha) for y in (lb, hb)]
                return (min(values), max(values))
            if lb <= 0 or la < 0:  # div/mod by a positive number of a non-negative one only
                return None
            return (la // hb, ha // lb) if op == "div" else (0, min(ha, hb - 1))
    return None


def _typical_extent(loop: For, typical: dict[Var, Expr]) -> int | None:
    return static_int(subst(loop.extent, typical))


def _parallelize_nest(kernel: Kernel, nest: For, typical: dict[Var, Expr]) -> Kernel:
    busy = any(isinstance(s, For) and s.kind is ForKind.PARALLEL for s in stmts_of(nest))
    if _work(nest, typical) < PARALLEL_MIN_WORK or busy or _scatters(nest) or not _independent(nest):
        return kernel
    loop, name = nest, nest.var.name
    while (
        (_typical_extent(loop, typical) or 0) < PARALLEL_MIN_EXTENT
        and isinstance(loop.body, For)
        and loop.body.kind is ForKind.SERIAL
        and _typical_extent(loop.body, typical) is not None
        and _independent(loop.body)
    ):
        kernel = apply(kernel, Fuse(name, loop.body.var.name))
        name = f"{name}.{loop.body.var.name}"
        loop = next(x for x in stmts_of(kernel.body) if isinstance(x, For) and x.var.name == name)
    if (_typical_extent(loop, typical) or 0) < 2:
        if static_int(loop.extent) is None and _of_sizes(loop.extent, kernel):  # a run-time size 1 at opt: inside it
            for inner in list(_top_loops(loop.body)):
                kernel = _parallelize_nest(kernel, inner, typical)
        return kernel
    return apply(kernel, Parallel(name))
