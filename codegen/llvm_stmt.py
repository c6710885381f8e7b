"""Loop IR statements -> LLVM IR control flow.

Loop kinds on the llvm target:
- SERIAL: a counted loop.
- UNROLLED: the body repeated once per iteration when the extent is a constant
  (at most MAX_UNROLL), else a counted loop.
- VECTORIZED: the body rendered once over vector lanes (see ir/loop_vectorize.py), else a
  counted loop, with the reason logged (logger "aic.codegen"; printed with AIC_DEBUG>=2).
- PARALLEL: the body is outlined into `<kernel>.par(closure, begin, end)` and run
  through the runtime's `aic_parallel_for(fn, closure, n)`; the closure is a struct
  of every variable and buffer pointer in scope.
- GPU bindings: an error.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from aic.ir.dtypes import DType
from aic.ir.loop import (
    INDEX,
    Allocate,
    Barrier,
    Buffer,
    Const,
    Expr,
    For,
    ForKind,
    If,
    Let,
    Prefetch,
    Scope,
    Seq,
    Stmt,
    Store,
)
from aic.ir.loop_vectorize import vector_reject_reason
from llvmlite import ir

from .llvm_expr import ExprEmitter, ModuleContext, VectorLanes
from .llvm_types import I32, I64, PTR, VOID, gep, lanes_of, splat, storage_type, value_type

log = logging.getLogger("aic.codegen")

MAX_UNROLL = 64


class StmtEmitter(ExprEmitter):
    """Renders a statement tree into one LLVM function."""

    def finish(self) -> None:
        """Close the function: allocas first, then the body."""
        self.alloca_builder.branch(self.fn.blocks[1])
        self.builder.ret_void()

    def emit_stmt(self, s: Stmt) -> None:
        match s:
            case Seq(stmts=stmts):
                for st in stmts:
                    self.emit_stmt(st)
            case Store(buffer=buf, index=i, value=v):
                self.store(buf, i, v)
            case Let(var=var, value=v, body=body):
                self.env[var] = self.emit(v)
                if self.vec is not None:
                    self.lets[var] = v
                self.emit_stmt(body)
                del self.env[var]
                self.lets.pop(var, None)
            case If():
                self.conditional(s)
            case For(kind=kind):
                self.loop(s, kind)
            case Allocate():
                self.allocate(s)
            case Barrier():
                pass  # only GPU threads need to meet
            case Prefetch(buffer=buf, index=i):
                self.prefetch(buf, i)
            case _:
                raise self.error(f"unknown statement {s!r}")

    # ------------------------------------------------------------ control flow

    def conditional(self, s: If) -> None:
        cond = self.emit(s.cond)
        if lanes_of(cond) > 1:
            self.masked(s, cond)
            return
        b = self.builder
        then_bb = self.fn.append_basic_block("then")
        else_bb = self.fn.append_basic_block("else") if s.orelse is not None else None
        done_bb = self.fn.append_basic_block("endif")
        b.cbranch(cond, then_bb, else_bb or done_bb)
        b.position_at_end(then_bb)
        self.emit_stmt(s.then)
        b.branch(done_bb)
        if else_bb is not None:
            b.position_at_end(else_bb)
            self.emit_stmt(s.orelse)
            b.branch(done_bb)
        b.position_at_end(done_bb)

    def masked(self, s: If, cond: ir.Value) -> None:
        """An If whose condition differs between lanes: both branches run under lane masks."""
        if self.vec is None:
            raise self.error("a vector condition outside a vectorized loop")
        b, outer = self.builder, self.mask
        cond = splat(b, cond, self.vec.lanes)
        self.mask = cond if outer is None else b.and_(outer, cond)
        self.emit_stmt(s.then)
        if s.orelse is not None:
            inverse = b.not_(cond)
            self.mask = inverse if outer is None else b.and_(outer, inverse)
            self.emit_stmt(s.orelse)
        self.mask = outer

    def loop(self, s: For, kind: ForKind) -> None:
        if kind.is_gpu:
            raise self.error(f"loop {s.var.name} is bound to {kind.value}; the llvm target runs no GPU loops")
        if kind is ForKind.PARALLEL:
            self.parallel(s)
        elif kind is ForKind.VECTORIZED:
            self.vectorized(s)
        elif kind is ForKind.UNROLLED and isinstance(s.extent, Const) and s.extent.value <= MAX_UNROLL:
            start = self.index(s.start, s.var.dtype)
            for i in range(int(s.extent.value)):
                self.env[s.var] = self.builder.add(start, ir.Constant(start.type, i))
                self.emit_stmt(s.body)
            self.env.pop(s.var, None)
        else:
            self.serial(s)

    def index(self, e: Expr, dt: DType) -> ir.Value:
        """A scalar loop bound as a value of the loop variable's dtype."""
        return self.cast(e.dtype, dt, self.emit(e))

    def counted_loop(
        self, name: str, lo: ir.Value, hi: ir.Value, signed: bool, body: Callable[[ir.Value], None]
    ) -> None:
        """for (i = lo; i < hi; i++) body(i)"""
        b = self.builder
        header = self.fn.append_basic_block(f"{name}.head")
        inside = self.fn.append_basic_block(f"{name}.body")
        done = self.fn.append_basic_block(f"{name}.end")
        entry = b.block
        b.branch(header)
        b.position_at_end(header)
        i = b.phi(lo.type, name)
        i.add_incoming(lo, entry)
        less = b.icmp_signed if signed else b.icmp_unsigned
        b.cbranch(less("<", i, hi), inside, done)
        b.position_at_end(inside)
        body(i)
        i.add_incoming(b.add(i, ir.Constant(lo.type, 1)), b.block)
        b.branch(header)
        b.position_at_end(done)

    def serial(self, s: For) -> None:
        start = self.index(s.start, s.var.dtype)
        end = self.builder.add(start, self.index(s.extent, s.var.dtype))

        def body(i: ir.Value) -> None:
            self.env[s.var] = i
            self.emit_stmt(s.body)

        self.counted_loop(s.var.name, start, end, s.var.dtype.is_signed, body)
        del self.env[s.var]

    def vectorized(self, s: For) -> None:
        lanes = s.extent.value if isinstance(s.extent, Const) else None
        reason = "its extent is not a constant" if lanes is None else vector_reject_reason(s.body, s.var, {})
        if reason is not None:
            message = f"kernel {self.where}: vectorized loop {s.var.name} rendered as a scalar loop: {reason}"
            log.debug(message)
            if int(os.environ.get("AIC_DEBUG", "0") or 0) >= 2:
                print(f"[aic.codegen] {message}", file=sys.stderr)
            self.serial(s)
            return
        b = self.builder
        base = self.index(s.start, s.var.dtype)
        steps = ir.Constant(value_type(s.var.dtype, lanes), list(range(lanes)))
        self.env[s.var] = b.add(splat(b, base, lanes), steps)
        self.vec, self.lets = VectorLanes(s.var, lanes, base), {}
        try:
            self.emit_stmt(s.body)
        finally:
            self.vec, self.lets = None, {}
            del self.env[s.var]

    def parallel(self, s: For) -> None:
        """Outline the body and run it through the runtime's thread pool."""
        b = self.builder
        start = self.index(s.start, INDEX)
        extent = self.index(s.extent, INDEX)
        names = list(self.env) + list(self.ptrs)
        values = [self.env[v] for v in self.env] + [self.ptrs[p] for p in self.ptrs] + [start]
        struct = ir.LiteralStructType([v.type for v in values])
        zero = ir.Constant(I32, 0)

        name = self.ctx.unique(f"{self.fn.name}.par")
        fn = ir.Function(self.ctx.module, ir.FunctionType(VOID, [PTR, I64, I64]), name)
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        sub = StmtEmitter(self.ctx, fn, self.where)
        closure, begin, end = fn.args
        unpacked = []
        for k, v in enumerate(values):
            field = gep(sub.builder, closure, [zero, ir.Constant(I32, k)], struct)
            unpacked.append(sub.builder.load(field, typ=v.type))
        for key, v in zip(names, unpacked):
            (sub.ptrs if key in self.ptrs else sub.env)[key] = v
        first = unpacked[-1]

        def body(i: ir.Value) -> None:
            sub.env[s.var] = sub.cast(INDEX, s.var.dtype, sub.builder.add(first, i))
            sub.emit_stmt(s.body)

        sub.counted_loop(s.var.name, begin, end, True, body)
        sub.finish()

        slot = self.alloca_builder.alloca(struct)
        for k, v in enumerate(values):
            field = gep(b, slot, [zero, ir.Constant(I32, k)], struct)
            b.store(v, field)
        run = self.ctx.declare("aic_parallel_for", VOID, [PTR, PTR, I64])
        b.call(run, [fn, slot, extent])

    # ------------------------------------------------------------ memory

    def prefetch(self, buf: Buffer, index: Expr) -> None:
        """llvm.prefetch of one element's line: a read, kept in all cache levels (locality 3), data."""
        i32 = ir.IntType(32)
        args = [self.element_ptr(buf, self.emit(index)), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        self.intrinsic("llvm.prefetch.p0", ir.VoidType(), args)

    def allocate(self, s: Allocate) -> None:
        buf = s.buffer
        if buf.scope is Scope.GLOBAL:
            raise self.error(f"buffer {buf.name} is allocated with global scope; only stack/shared scopes are local")
        if not isinstance(buf.size, int):
            raise self.error(f"local buffer {buf.name} has symbolic size {buf.size}")
        slot = self.alloca_builder.alloca(ir.ArrayType(storage_type(buf.dtype), buf.size))
        slot.align = 64
        self.ptrs[buf] = slot
        self.emit_stmt(s.body)
        del self.ptrs[buf]


def emit_function(ctx: ModuleContext, fn: ir.Function, where: str, params: dict[Buffer, ir.Value], body: Stmt) -> None:
    """Render `body` as the whole of `fn`, with `params` (Buffer -> argument) in scope."""
    em = StmtEmitter(ctx, fn, where)
    em.ptrs.update(params)
    em.emit_stmt(body)
    em.finish()
