"""The row-reduction GPU schedule: one block per row, block reductions with warp shuffles.

A lowered reduction kernel (softmax, layer norm, reduce ops, pooling over a big window)
is a parallel nest of rows whose body reduces serial loops into one-element stack
accumulators (`acc[0] = acc[0] + e`, `fma(x, y, acc[0])`, a select-max...), initialised
to the identity of their combining op. This rule binds the rows to blocks and strides
every row-level loop over the block's threads (thread t runs iterations t, t+T, ...);
after a loop, each accumulator it updated is combined across the block (`BlockReduce`,
codegen/cuda_reduce.py), so every thread sees the row's value. A row-level store to
global memory is made by thread 0. Stack arrays of the row (softmax's exponentials) stay
per thread: every loop touching one has the same extent and indexes it by its own
variable, so each thread reads back exactly the elements it wrote.

A row's loops may have run-time extents (a softmax over the sequence of a ranged model): the
strided loops then run ceil(n / threads) steps under `flat < n`, and the threads per block are
chosen for the opt size.

Anything else (a reused accumulator, a non-identity initial value, a barrier, a loop
inside a row-level condition) is left to the elementwise rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from aic.codegen.cuda_reduce import BlockReduce
from aic.ir.dtypes import DType
from aic.ir.loop import (
    INDEX,
    Allocate,
    Barrier,
    Bin,
    Buffer,
    Call,
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
from aic.ir.loop_tools import exprs_of, static_int, stmts_of

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

MIN_REDUCE = 32  # a row's reduction loops must be at least this long to give each row a block


class _Reject(Exception):
    pass


def row_reduction(part: Stmt, sizes: RunSizes | None = None) -> tuple[Stmt, str] | None:
    sizes = sizes or RunSizes()
    chain = parallel_chain(part)
    body = chain[-1].body if chain else part
    rows = extent_product(chain)
    most = sizes.upper(rows)
    if most is None or most < 1 or most > MAX_GRID_X:
        return None
    try:
        plan = _Plan(body, sizes)
    except _Reject:
        return None
    if plan.longest_reduction < MIN_REDUCE:
        return None
    threads = next(t for t in (32, 64, 128, 256) if t >= min(plan.longest, 256))
    scratch = {dt: Buffer(f"red_{dt.short}", dt, 32, Scope.SHARED) for dt in plan.acc_types()}

    def make(bx: Var, tx: Var) -> Stmt:
        inner = plan.rewrite(body, tx, threads, scratch)
        inner = bind_lets(flat_index(chain, bx), inner) if chain else inner
        for buf in scratch.values():
            inner = Allocate(buf, inner)
        return inner

    return grid_loops(rows, threads, make), "row-reduction"


def _loop_nest(loop: For, sizes: RunSizes) -> tuple[list[For], Stmt]:
    nest: list[For] = [loop]
    s = loop.body
    while isinstance(s, For) and _sized(s.extent, sizes) and not s.kind.is_gpu:
        nest.append(s)
        s = s.body
    return nest, s


def _sized(extent: Expr, sizes: RunSizes) -> bool:
    """Whether `extent` is a constant or an expression of the kernel's run-time sizes only."""
    return all(x in sizes.hi for x in exprs_of(extent) if isinstance(x, Var))


def _reduce_op(value: Expr, acc: Load) -> str | None:
    """The combining op of an accumulator update `acc[0] = value`, or None."""

    def free(e: Expr) -> bool:
        return all(x != acc for x in exprs_of(e))

    match value:
        case Bin(op=op, a=a, b=b) if op in ("add", "mul", "max", "min"):
            if (a == acc and free(b)) or (b == acc and free(a)):
                return op
        case Call(fn="fma", args=(x, y, c)) if c == acc and free(x) and free(y):
            return "add"
        case Select(cond=Bin(op=cmp, a=p, b=q), a=x, b=y) if cmp in ("lt", "le", "gt", "ge"):
            other = [e for e in (p, q, x, y) if e != acc]
            if len(other) == 2 and other[0] == other[1] and free(other[0]) and acc in (p, q) and acc in (x, y):
                picks = []
                for av, ev in ((1.0, 2.0), (2.0, 1.0)):
                    env = {True: av, False: ev}
                    pv, qv = env[p == acc], env[q == acc]
                    take = {"lt": pv < qv, "le": pv <= qv, "gt": pv > qv, "ge": pv >= qv}[cmp]
                    picks.append(env[x == acc] if take else env[y == acc])
                if picks == [2.0, 2.0]:
                    return "max"
                if picks == [1.0, 1.0]:
                    return "min"
    return None


def _is_identity(op: str, value: Expr, dt: DType) -> bool:
    if not isinstance(value, Const):
        return False
    v = value.value
    if op == "add":
        return v == 0
    if op == "mul":
        return v == 1
    if dt.is_float:
        return v == (-math.inf if op == "max" else math.inf)
    info = np.iinfo(dt.numpy)
    return v == (info.min if op == "max" else info.max)


class _Plan:
    """Checks a row body and remembers what the rewrite needs."""

    def __init__(self, body: Stmt, sizes: RunSizes) -> None:
        self.sizes = sizes
        allocs = [s.buffer for s in stmts_of(body) if isinstance(s, Allocate)]
        self.accs = {b for b in allocs if b.scope is Scope.STACK and b.size == 1}
        self.arrays = {b for b in allocs if b.scope is Scope.STACK and b.size != 1}
        self.ops: dict[Buffer, str] = {}
        self.inits: dict[Buffer, Expr] = {}
        self.updated_in: dict[Buffer, int] = {}
        self.array_extent: dict[Buffer, Expr] = {}
        self.longest = 0
        self.longest_reduction = 0
        self.loops = 0
        self._check_row(body)
        for acc, op in self.ops.items():
            if acc not in self.inits or not _is_identity(op, self.inits[acc], acc.dtype):
                raise _Reject
            if acc.dtype is DType.bool:
                raise _Reject

    def acc_types(self) -> set[DType]:
        return {_reg_dtype(a.dtype) for a in self.ops}

    # -- analysis
    def _check_row(self, s: Stmt) -> None:
        match s:
            case Let(body=b) | Allocate(body=b):
                self._check_row(b)
            case Seq(stmts=stmts):
                for x in stmts:
                    self._check_row(x)
            case Store(buffer=buf, value=v):
                if buf in self.accs:
                    if buf in self.inits or buf in self.updated_in:
                        raise _Reject  # one initial value, then one reducing loop
                    self.inits[buf] = v
                elif buf.scope is not Scope.GLOBAL:
                    raise _Reject
            case If():
                if any(isinstance(x, (For, Barrier)) for x in stmts_of(s)):
                    raise _Reject
                if any(isinstance(x, Store) and x.buffer.scope is not Scope.GLOBAL for x in stmts_of(s)):
                    raise _Reject
            case For():
                self._check_loop(s)
            case _:
                raise _Reject

    def _check_loop(self, loop: For) -> None:
        nest, inner = _loop_nest(loop, self.sizes)
        n = extent_product(nest)
        typical = self.sizes.typical(n)
        if not typical or not self.sizes.upper(n) or not all(_sized(lp.extent, self.sizes) for lp in nest):
            raise _Reject
        self.loops += 1
        self.longest = max(self.longest, typical)
        loop_vars = {lp.var for lp in nest}
        reduces = False
        for s in stmts_of(inner):
            if isinstance(s, Barrier) or (isinstance(s, For) and s.kind.is_gpu):
                raise _Reject
            if isinstance(s, Store):
                if s.buffer in self.accs:
                    op = _reduce_op(s.value, Load(s.buffer, Const(0, INDEX)))
                    if op is None or not (isinstance(s.index, Const) and s.index.value == 0):
                        raise _Reject
                    if self.updated_in.get(s.buffer, self.loops) != self.loops or self.ops.get(s.buffer, op) != op:
                        raise _Reject
                    self.ops[s.buffer], self.updated_in[s.buffer] = op, self.loops
                    reduces = True
                elif s.buffer in self.arrays:
                    self._check_array(s.buffer, s.index, nest, n)
                elif s.buffer.scope is Scope.GLOBAL and not any(x in loop_vars for x in exprs_of(s.index)):
                    raise _Reject  # iterations would store to the same element
        for e in _exprs_in(inner):
            if isinstance(e, Load) and e.buffer in self.arrays:
                self._check_array(e.buffer, e.index, nest, n)
            if isinstance(e, Load) and e.buffer in self.accs and not _stores_to(inner, e.buffer):
                raise _Reject  # a row value read in a loop must be that loop's accumulator
        if reduces:
            self.longest_reduction = max(self.longest_reduction, typical)

    def _check_array(self, buf: Buffer, index: Expr, nest: list[For], n: Expr) -> None:
        if len(nest) != 1 or index is not nest[0].var or self.array_extent.get(buf, n) != n:
            raise _Reject
        self.array_extent[buf] = n

    # -- rewrite
    def rewrite(self, s: Stmt, tx: Var, threads: int, scratch: dict[DType, Buffer]) -> Stmt:
        match s:
            case Let(var=v, value=val, body=b):
                return Let(v, val, self.rewrite(b, tx, threads, scratch))
            case Allocate(buffer=buf, body=b):
                return Allocate(buf, self.rewrite(b, tx, threads, scratch))
            case Seq(stmts=stmts):
                return Seq([self.rewrite(x, tx, threads, scratch) for x in stmts])
            case Store(buffer=buf) if buf.scope is Scope.GLOBAL:
                return If(Bin("eq", tx, Const(0, INDEX)), s)
            case If() if any(isinstance(x, Store) for x in stmts_of(s)):
                return If(Bin("eq", tx, Const(0, INDEX)), s)
            case For():
                return self._strided(s, tx, threads, scratch)
        return s

    def _strided(self, loop: For, tx: Var, threads: int, scratch: dict[DType, Buffer]) -> Stmt:
        nest, inner = _loop_nest(loop, self.sizes)
        n = extent_product(nest)
        it, flat = Var(f"{loop.var.name}.it"), Var(f"{loop.var.name}.f")
        body: Stmt = bind_lets(flat_index(nest, flat), inner)
        if static_int(n) is None or static_int(n) % threads:
            body = If(Bin("lt", flat, n), body)
        body = Let(flat, Bin("add", Bin("mul", it, Const(threads, INDEX)), tx), body)
        out: list[Stmt] = [For(it, ceil_div(n, threads), body, ForKind.SERIAL)]
        updated = {s.buffer for s in stmts_of(inner) if isinstance(s, Store) and s.buffer in self.ops}
        for acc in sorted(updated, key=lambda b: b.name):
            out.append(BlockReduce(acc, self.ops[acc], scratch[_reg_dtype(acc.dtype)]))
        return Seq(out) if len(out) > 1 else out[0]


def _stores_to(s: Stmt, buf: Buffer) -> bool:
    return any(isinstance(x, Store) and x.buffer is buf for x in stmts_of(s))


def _reg_dtype(dt: DType) -> DType:
    return DType.float32 if dt in (DType.float16, DType.bfloat16) else dt


def _exprs_in(s: Stmt) -> Iterator[Expr]:
    for x in stmts_of(s):
        match x:
            case Store(index=i, value=v):
                yield from exprs_of(i)
                yield from exprs_of(v)
            case Let(value=v):
                yield from exprs_of(v)
            case If(cond=c):
                yield from exprs_of(c)
            case For(extent=e, start=st):
                yield from exprs_of(e)
                yield from exprs_of(st)
