"""The kernel calls of a compiled program, with cost estimates, for profiles and reports.

One record per kernel call in `kernel_calls` order (the numbering the profiling hooks of
the entry function use): the kernel's name, the fused group it computes, an estimate of
its floating-point operations and its compulsory memory traffic.

- flops: float arithmetic in the kernel's loop IR (add, sub, mul, div, min, max: 1; fma: 2;
  other intrinsics: 1; the int8 dot products dot4 / dot2 / dotw / dot4sat: 2 per product) times lanes
  times the trip counts of the enclosing loops. Both arms
  of a conditional count, so padded or guarded code counts as executed.
- bytes: the size of every distinct buffer the call reads or writes, once: the traffic a
  kernel cannot avoid, the x-axis of a roofline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from aic.ir.loop import (
    Allocate,
    Bin,
    Call,
    Const,
    Expr,
    For,
    If,
    Kernel,
    Let,
    Program,
    Seq,
    Stmt,
    Store,
    children,
    kernel_calls,
)

from .storage import nbytes

_ARITH = frozenset({"add", "sub", "mul", "div", "min", "max"})


@dataclass(frozen=True)
class KernelRecord:
    """One kernel call of a program."""

    kernel: str
    group: str
    flops: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def kernel_table(program: Program) -> list[KernelRecord]:
    """The kernel calls of `program`, in program order (control-flow bodies included)."""
    flops: dict[int, int] = {}
    records = []
    for call in kernel_calls(program.calls):
        if id(call.kernel) not in flops:
            flops[id(call.kernel)] = kernel_flops(call.kernel)
        traffic = sum(nbytes(b) for b in {id(b): b for b in call.args}.values())
        group = call.attrs.get("group") or call.kernel.name
        records.append(KernelRecord(call.kernel.name, group, flops[id(call.kernel)], traffic))
    return records


def kernel_flops(kernel: Kernel) -> int:
    """Estimated floating-point operations of one call of `kernel`."""
    return _stmt_flops(kernel.body)


def _stmt_flops(stmt: Stmt | None) -> int:
    match stmt:
        case For(extent=extent, body=body):
            trips = extent.value if isinstance(extent, Const) else 1
            return int(trips) * _stmt_flops(body)
        case Store(index=index, value=value):
            return _expr_flops(index) + _expr_flops(value)
        case Let(value=value, body=body):
            return _expr_flops(value) + _stmt_flops(body)
        case Allocate(body=body):
            return _stmt_flops(body)
        case If(then=then, orelse=orelse):
            return _stmt_flops(then) + _stmt_flops(orelse)
        case Seq(stmts=stmts):
            return sum(_stmt_flops(s) for s in stmts)
    return 0


_BYTE_DOTS = {"dot4": 4, "dot2": 2, "dotw": 2, "dot4sat": 4}  # products per lane


def _expr_flops(e: Expr) -> int:
    """Arithmetic operations of `e`: float ops, and the multiply-adds of the int8 dot products (2 each)."""
    own = 0
    if isinstance(e, Call) and e.fn in _BYTE_DOTS:
        own = e.lanes * 2 * _BYTE_DOTS[e.fn]
    elif e.dtype.is_float:
        if isinstance(e, Bin) and e.op in _ARITH:
            own = e.lanes
        elif isinstance(e, Call):
            own = e.lanes * (2 if e.fn == "fma" else 1)
    return own + sum(_expr_flops(c) for c in children(e))
