"""Lowering of elementwise ops: arithmetic, math functions, activations, comparisons,
logic, Cast, Where, Clip. Each is a `compute` lowering over broadcast inputs."""

from __future__ import annotations

import math
from collections.abc import Callable

from aic.ir.dtypes import DType
from aic.ir.graph import Node
from aic.ir.loop import Bin, Cast, Expr, Unary
from aic.ir.loop_tools import binop, select

from .core import ComputeTensor, ConstTensor, LowerCtx, Tensor, broadcast_index, convert, node_error
from .mathx import (
    absolute,
    add,
    call,
    div,
    expm1,
    is_nan,
    k,
    lt,
    maximum,
    minimum,
    mul,
    neg,
    sigmoid,
    softplus,
    sub,
)
from .sizes import shape_of
from .table import alias, compute

ScalarFn = Callable[[LowerCtx, Node, list[Expr]], Expr]


def elementwise(*names: str, cheap: bool = False, operands: int | None = None):
    """Register `fn(ctx, node, args)`: output element i from the inputs' elements at broadcast(i).
    Only the first `operands` inputs are read (CastLike's second input only gives a type)."""

    def deco(fn: ScalarFn) -> ScalarFn:
        def lower(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
            ins = ins[:operands] if operands is not None else ins
            out = node.outputs[0].type
            shape = shape_of(out)

            def at(index: list[Expr]) -> Expr:
                args = [None if t is None else t.at(broadcast_index(index, t.shape)) for t in ins]
                return convert(fn(ctx, node, args), out.dtype)

            return [ComputeTensor(shape, out.dtype, at)]

        compute(*names, elementwise=True, cheap=cheap)(lower)
        return fn

    return deco


def _unary(fn: Callable[[Expr], Expr]) -> ScalarFn:
    return lambda ctx, node, args: fn(args[0])


# ---------------------------------------------------------------- arithmetic

for _name, _op in {"Add": "add", "Sub": "sub", "Mul": "mul", "And": "and", "Or": "or", "Xor": "xor"}.items():
    elementwise(_name)(lambda ctx, node, a, op=_op: binop(op, a[0], a[1]))
for _name, _op in {"BitwiseAnd": "and", "BitwiseOr": "or", "BitwiseXor": "xor"}.items():
    elementwise(_name)(lambda ctx, node, a, op=_op: Bin(op, a[0], a[1]))
for _name, _op in {
    "Equal": "eq",
    "Less": "lt",
    "LessOrEqual": "le",
    "Greater": "gt",
    "GreaterOrEqual": "ge",
}.items():
    elementwise(_name)(lambda ctx, node, a, op=_op: Bin(op, a[0], a[1]))

elementwise("Div")(lambda ctx, node, a: div(a[0], a[1]))
elementwise("Neg")(_unary(neg))
elementwise("Not", "BitwiseNot")(_unary(lambda x: Unary("not", x)))
elementwise("Abs")(_unary(absolute))
elementwise("Reciprocal")(_unary(lambda x: Bin("div", k(1, x), x)))
elementwise("Sigmoid")(_unary(sigmoid))
elementwise("IsNaN")(_unary(is_nan))

for _name, _fn in {
    "Exp": "exp",
    "Log": "log",
    "Sqrt": "sqrt",
    "Tanh": "tanh",
    "Erf": "erf",
    "Sin": "sin",
    "Cos": "cos",
    "Tan": "tan",
    "Asin": "asin",
    "Acos": "acos",
    "Atan": "atan",
    "Sinh": "sinh",
    "Cosh": "cosh",
    "Asinh": "asinh",
    "Acosh": "acosh",
    "Atanh": "atanh",
    "Floor": "floor",
    "Ceil": "ceil",
    "Round": "round",
}.items():
    elementwise(_name)(lambda ctx, node, a, fn=_fn: call(fn, a[0]))


@elementwise("Mod")
def _mod(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    a, b = (ctx.let(x) for x in args)
    if a.dtype.is_float:
        r = ctx.let(Bin("mod", a, b))
    else:
        zero = ctx.let(Bin("eq", b, k(0, b)))
        r = ctx.let(select(zero, k(0, a), Bin("mod", a, select(zero, k(1, b), b))))
    if node.attrs.get("fmod", 0) or not a.dtype.is_signed:
        return r
    # The sign of the divisor: shift a nonzero remainder whose sign differs from b's.
    fix = Bin("and", Bin("ne", r, k(0, r)), Bin("ne", lt(r, k(0, r)), lt(b, k(0, b))))
    return select(fix, add(r, b), r)


@elementwise("Pow")
def _pow(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x, y = args
    exponent = node.inputs[1].const if node.inputs[1] is not None else None
    if x.dtype.is_float and exponent is not None and exponent.size == 1:
        e = float(exponent.reshape(-1)[0])
        if e == 1.0:
            return x
        if e in (2.0, 3.0, 4.0):
            x = ctx.let(x)
            sq = mul(x, x)
            return sq if e == 2.0 else mul(sq, x) if e == 3.0 else mul(ctx.let(sq), ctx.let(sq))
        if e == 0.5:
            return call("sqrt", x)
    wide = DType.float64 if not x.dtype.is_float else x.dtype
    xf = x if x.dtype == wide else Cast(wide, x)
    yf = y if y.dtype == wide else Cast(wide, y)
    return call("pow", xf, yf)


@elementwise("BitShift")
def _bitshift(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x, y = (ctx.let(a) for a in args)
    bits = x.dtype.itemsize * 8
    valid = Bin("and", Bin("ge", y, k(0, y)), lt(y, k(bits, y)))
    amount = select(valid, y, k(0, y))
    if node.attrs["direction"] == "LEFT":
        return select(valid, Bin("shl", x, amount), k(0, x))
    fill = select(lt(x, k(0, x)), k(-1, x), k(0, x)) if x.dtype.is_signed else k(0, x)
    return select(valid, Bin("shr", x, amount), fill)


@elementwise("Max", "Min", "Sum", "Mean")
def _variadic(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    fn = {"Max": maximum, "Min": minimum, "Sum": add, "Mean": add}[node.op]
    acc = args[0]
    for a in args[1:]:
        acc = fn(acc, a)
    return Bin("div", acc, k(len(args), acc)) if node.op == "Mean" else acc


@elementwise("Where")
def _where(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    return select(args[0], args[1], args[2])


@elementwise("Sign")
def _sign(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    zero = mul(x, k(0, x)) if x.dtype.is_float else k(0, x)  # keeps NaN
    if not x.dtype.is_signed:
        return select(Bin("gt", x, k(0, x)), k(1, x), zero)
    return select(Bin("gt", x, k(0, x)), k(1, x), select(lt(x, k(0, x)), k(-1, x), zero))


@elementwise("IsInf")
def _isinf(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    pos = Bin("eq", x, k(math.inf, x)) if node.attrs.get("detect_positive", 1) else k(False, Bin("eq", x, x))
    negative = Bin("eq", x, k(-math.inf, x)) if node.attrs.get("detect_negative", 1) else k(False, pos)
    return binop("or", pos, negative)


# ---------------------------------------------------------------- casts


def cast_value(x: Expr, to: DType) -> Expr:
    """Convert an element to the compute type of `to` with aic's Cast rules (see ir/ops/cast.py)."""
    if x.dtype == to:
        return x
    if to == DType.bool:
        return Bin("ne", x, k(0, x))
    if x.dtype == DType.bool:
        one = convert(k(1, x), to)
        return select(x, one, k(0, one))
    if x.dtype.is_float and to.is_int:
        if to.itemsize < 4:
            return Cast(to, Cast(DType.int32, x))
        if not to.is_signed:
            signed = DType.int32 if to.itemsize == 4 else DType.int64
            half = 2.0 ** (to.itemsize * 8 - 1)
            wide = x if x.dtype == DType.float64 else Cast(DType.float64, x)
            low = Cast(to, Cast(signed, wide))
            high = Bin("xor", Cast(to, Cast(signed, sub(wide, k(half, wide)))), k(int(half), low))
            return select(Bin("ge", wide, k(half, wide)), high, low)
    return convert(x, to)


@elementwise("Cast", "CastLike", cheap=True, operands=1)
def _cast(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    return cast_value(args[0], node.outputs[0].type.dtype)


# ---------------------------------------------------------------- activations


@elementwise("Relu")
def _relu(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    return select(lt(x, k(0, x)), k(0, x), x)


@elementwise("LeakyRelu", "PRelu")
def _leaky(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    slope = args[1] if node.op == "PRelu" else k(node.attrs.get("alpha", 0.01), x)
    return select(lt(x, k(0, x)), mul(slope, x), x)


@elementwise("ThresholdedRelu")
def _thresholded(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    return select(Bin("gt", x, k(node.attrs.get("alpha", 1.0), x)), x, k(0, x))


@elementwise("Elu", "Selu")
def _elu(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    default = 1.0 if node.op == "Elu" else 1.67326319217681884765625
    alpha = k(node.attrs.get("alpha", default), x)
    y = select(Bin("gt", x, k(0, x)), x, mul(alpha, expm1(ctx, x)))
    if node.op == "Selu":
        y = mul(k(node.attrs.get("gamma", 1.05070102214813232421875), x), y)
    return y


@elementwise("Celu")
def _celu(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    alpha = k(node.attrs.get("alpha", 1.0), x)
    negative = minimum(k(0, x), mul(alpha, expm1(ctx, Bin("div", x, alpha))))
    return add(maximum(x, k(0, x)), negative)


def _hard_sigmoid(x: Expr, alpha: float, beta: float) -> Expr:
    y = add(mul(x, k(alpha, x)), k(beta, x))
    return minimum(maximum(y, k(0, x)), k(1, x))


@elementwise("HardSigmoid")
def _hardsigmoid(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    return _hard_sigmoid(args[0], node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5))


@elementwise("HardSwish")
def _hardswish(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    return mul(x, _hard_sigmoid(x, 1 / 6, 0.5))


@elementwise("Softplus")
def _softplus(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    return softplus(ctx, args[0])


@elementwise("Softsign")
def _softsign(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    return Bin("div", x, add(k(1, x), absolute(x)))


@elementwise("Mish")
def _mish(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    return mul(x, call("tanh", softplus(ctx, x)))


@elementwise("Swish")
def _swish(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    return mul(x, sigmoid(mul(k(node.attrs.get("alpha", 1.0), x), x)))


@elementwise("Gelu")
def _gelu(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = ctx.let(args[0])
    if node.attrs.get("approximate", "none") == "tanh":
        inner = mul(k(math.sqrt(2 / math.pi), x), add(x, mul(k(0.044715, x), mul(mul(x, x), x))))
        return mul(mul(k(0.5, x), x), add(k(1, x), call("tanh", inner)))
    return mul(mul(k(0.5, x), x), add(k(1, x), call("erf", mul(x, k(1 / math.sqrt(2), x)))))


@elementwise("Shrink")
def _shrink(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = args[0] if args[0].dtype.is_float else Cast(DType.float32, args[0])
    x = ctx.let(x)
    bias, lambd = k(node.attrs.get("bias", 0.0), x), k(node.attrs.get("lambd", 0.5), x)
    return select(lt(x, neg(lambd)), add(x, bias), select(Bin("gt", x, lambd), sub(x, bias), k(0, x)))


@elementwise("Clip")
def _clip(ctx: LowerCtx, node: Node, args: list[Expr]) -> Expr:
    x = args[0]
    lo, hi = [*args, None, None][1:3]
    if lo is not None:
        x = ctx.let(x)
        x = select(lt(x, lo), lo, x)
    if hi is not None:
        x = ctx.let(x)
        x = select(lt(hi, x), hi, x)
    return x


# ---------------------------------------------------------------- identity-like


@compute("Dropout", cheap=True)
def _dropout(ctx: LowerCtx, node: Node, ins: list[Tensor | None]) -> list[Tensor]:
    x = ins[0]
    if x is None:
        raise node_error(node, "missing input")
    return [x, ConstTensor(x.shape, DType.bool, True)][: len(node.outputs)]


alias("Identity")
