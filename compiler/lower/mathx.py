"""Scalar math on loop-IR expressions: constants of a value's type, NaN-aware min/max,
accurate log1p/expm1, and the composite functions activations are built from."""

from __future__ import annotations

import math

from aic.ir.dtypes import DType
from aic.ir.loop import Bin, Call, Const, Expr, Unary
from aic.ir.loop_tools import binop, select

from .core import LowerCtx


def k(value: float | int | bool, like: Expr) -> Const:
    """A constant of `like`'s type."""
    dt = like.dtype
    if dt == DType.bool:
        return Const(bool(value), dt)
    return Const(float(value) if dt.is_float else int(value), dt)


def call(fn: str, *args: Expr) -> Expr:
    return Call(fn, tuple(args))


def add(a: Expr, b: Expr) -> Expr:
    return binop("add", a, b)


def sub(a: Expr, b: Expr) -> Expr:
    return binop("sub", a, b)


def mul(a: Expr, b: Expr) -> Expr:
    return binop("mul", a, b)


def div(a: Expr, b: Expr) -> Expr:
    """Division; integers truncate, and x / 0 gives 0 (onnxruntime would trap)."""
    if a.dtype.is_float:
        return Bin("div", a, b)
    zero = Bin("eq", b, k(0, b))
    return select(zero, k(0, a), Bin("div", a, select(zero, k(1, b), b)))


def lt(a: Expr, b: Expr) -> Expr:
    return Bin("lt", a, b)


def neg(a: Expr) -> Expr:
    return Unary("neg", a)


def maximum(a: Expr, b: Expr) -> Expr:
    """max(a, b); NaN in either gives NaN (numpy semantics, as every target implements Bin max)."""
    return Bin("max", a, b)


def minimum(a: Expr, b: Expr) -> Expr:
    return Bin("min", a, b)


def fast_max(a: Expr, b: Expr) -> Expr:
    """a > b ? a : b, one instruction on x86, for maxima whose NaN handling does not matter."""
    return select(Bin("gt", a, b), a, b)


def is_nan(a: Expr) -> Expr:
    return Bin("ne", a, a)


def absolute(a: Expr) -> Expr:
    if a.dtype.is_float:
        return call("abs", a)
    if not a.dtype.is_signed:
        return a
    return select(lt(a, k(0, a)), neg(a), a)


def exp(a: Expr) -> Expr:
    return call("exp", a)


def exp_nonpos(a: Expr) -> Expr:
    """e^a for a <= 0 (a softmax's scores minus their maximum): cheaper than `exp`, no overflow to handle;
    a positive `a` gives 1."""
    return call("exp_nonpos", a)


def log1p(ctx: LowerCtx, x: Expr) -> Expr:
    """log(1 + x) accurate for small x (Goldberg's correction)."""
    u = ctx.let(add(k(1, x), x))
    d = ctx.let(sub(u, k(1, x)))
    return select(Bin("eq", d, k(0, x)), x, mul(call("log", u), Bin("div", x, d)))


def expm1(ctx: LowerCtx, x: Expr) -> Expr:
    """exp(x) - 1 accurate for small x (Kahan's correction)."""
    u = ctx.let(exp(x))
    um1 = ctx.let(sub(u, k(1, x)))
    exact = select(Bin("eq", um1, k(-1, x)), k(-1, x), mul(um1, Bin("div", x, call("log", u))))
    return select(Bin("eq", u, k(1, x)), x, select(Bin("eq", u, k(math.inf, x)), u, exact))


def sigmoid(x: Expr) -> Expr:
    """1 / (1 + e^-x): a float intrinsic (float32 has its own cheaper e^-x, codegen/llvm_math.py)."""
    if x.dtype.is_float:
        return call("sigmoid", x)
    return Bin("div", k(1, x), add(k(1, x), exp(neg(x))))


def softplus(ctx: LowerCtx, x: Expr) -> Expr:
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))."""
    x = ctx.let(x)
    return add(maximum(x, k(0, x)), log1p(ctx, exp(neg(absolute(x)))))
