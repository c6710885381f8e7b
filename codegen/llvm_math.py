"""Intrinsic math calls (loop IR `Call`) -> LLVM IR.

Choices:
- sqrt, abs, floor, ceil, trunc, round (half to even), fma map to LLVM intrinsics that
  are single vector instructions on x86 and aarch64.
- exp, tanh and erf in float32 (also float16/bfloat16, which compute in float32) are
  polynomials written here in LLVM IR, so they vectorize: the libm calls LLVM would
  otherwise emit run one lane at a time. Max errors against float64: exp 1 ulp,
  tanh 5 ulp (0.7 on average), erf 1e-7 absolute / 2e-7 relative (coefficients fitted by
  least squares on float64 references). tanh and erf are x * P(x^2) / Q(x^2): no exponential.
- exp_nonpos (e^min(x, 0), a softmax's shifted scores) in float32 is the bounded exp below on x clamped
  to [-87, 0] (0 below -87): no overflow or range fix-ups, half of exp's instructions, 2 ulp.
- sigmoid in float32 is 1 / (1 + e^-x) with its own e^-x: the argument clamped to [-87, 88], so one
  power-of-two factor scales it and no overflow or NaN fix-ups are needed (SiLU's cost is this
  function), and the reciprocal an x86 estimate refined by one Newton step (`Poly.reciprocal`); max error
  about 3 ulp for x >= -87, and below that 0 to within 6e-39. With AVX-512 on 16 lanes: the same with
  `vscalefps` and a degree-6 polynomial (`sigmoid_scalef_f32`, 3.2 ulp), a third fewer instructions. Other float
  types: 1 / (1 + exp(-x)). erf's e^(-x^2) (argument in [-16, 0]) uses the same bounded exp.
- Polynomials are evaluated by Estrin's scheme with a Horner tail (`Poly.estrin`): these functions
  are latency-bound in activation epilogues, and the tail keeps Horner's rounding error.
- Everything else (log, pow, trig, hyperbolic, float64 exp/tanh/erf) calls libm: LLVM
  intrinsics where they exist, else the libm function by name; vectors call it lane by lane.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aic.ir.dtypes import DType
from aic.ir.loop import Call
from llvmlite import ir

from .llvm_int8 import emit_byte_dot
from .llvm_types import F32, I1, I32, concat, constant, elem_type, lane_mask, lanes_of, mangle, splat, vec

if TYPE_CHECKING:
    from .llvm_expr import ExprEmitter

_NATIVE = {"sqrt": "sqrt", "abs": "fabs", "floor": "floor", "ceil": "ceil", "trunc": "trunc", "round": "roundeven"}
_LLVM_LIBM = {"exp", "log", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "pow"}
_LIBM_ONLY = {"erf", "asinh", "acosh", "atanh"}

_ERF_P = (
    -1.3668564946556216e-08,
    4.7809185161895584e-06,
    0.00038270550430752337,
    0.0038395079318434,
    0.054332710802555084,
    0.18470872938632965,
    1.128379225730896,
)  # erf(x) = x * P(x^2) / Q(x^2) on |x| <= 4, a rational least-squares fit (error 1.5e-9 in float64)
_ERF_Q = (
    6.401291466318071e-05,
    0.0013095929753035307,
    0.015453516505658627,
    0.11382593214511871,
    0.4970273971557617,
    1.0,
)
_EXP_NEG = (
    0.0013836835409366418,
    -0.008374824183932027,
    0.04166822620305679,
    -0.1666642007052515,
    0.499999920749927,
    -1.0000000363450718,
    1.0000000005546161,
)  # e^-r, highest power first, on |r| <= ln2/2: a relative minimax fit of e^r (1.9e-9 in float64), odd terms negated
_TANH_P = (
    -1.2665986315330002e-11,
    3.121710534514932e-08,
    2.8272961571929045e-05,
    0.0038815594743937254,
    0.13690492510795593,
    1.0,
)  # tanh(x) = x * P(x^2) / Q(x^2) on |x| <= 9, a rational relative least-squares fit (4.2e-9 in float64)
_TANH_Q = (1.3058337344773463e-06, 0.0003961908514611423, 0.027294322848320007, 0.47023826837539673, 1.0)


def emit_call(em: ExprEmitter, e: Call) -> ir.Value:
    dt, fn = e.dtype, e.fn
    args = [em.emit(a) for a in e.args]
    n = max(lanes_of(a) for a in args)
    if fn in ("dot4", "dot2", "dotw", "dot4sat"):  # bytes or int16 pairs in int32 / int16 lanes: no conversion
        return emit_byte_dot(em, fn, *(splat(em.builder, v, n) for v in args))
    args = [em.cast(a.dtype, dt, splat(em.builder, v, n)) for a, v in zip(e.args, args)]
    if not dt.is_float:
        return _int_call(em, fn, dt, args)
    x = args[0]
    t = x.type
    if fn in _NATIVE:
        return em.intrinsic(f"llvm.{_NATIVE[fn]}.{mangle(t)}", t, args)
    if fn == "fma":
        return em.intrinsic(f"llvm.fma.{mangle(t)}", t, args)
    if fn == "sigmoid":
        if elem_type(t) == F32:
            p = Poly(em, n)
            return sigmoid_scalef_f32(p, x) if p.avx512 else sigmoid_f32(p, x)
        one = constant(dt, 1.0, n)
        e = em.intrinsic(f"llvm.exp.{mangle(t)}", t, [em.builder.fneg(x)])
        return em.builder.fdiv(one, em.builder.fadd(one, e))
    if fn == "exp_nonpos":
        if elem_type(t) == F32:
            return exp_nonpos_f32(Poly(em, n), x)
        x = em.builder.select(em.builder.fcmp_ordered(">", x, constant(dt, 0.0, n)), constant(dt, 0.0, n), x)
        return em.intrinsic(f"llvm.exp.{mangle(t)}", t, [x])
    if elem_type(t) == F32 and fn in ("exp", "tanh", "erf"):
        return {"exp": exp_f32, "tanh": tanh_f32, "erf": erf_f32}[fn](Poly(em, n), x)
    if fn in _LLVM_LIBM:
        return em.intrinsic(f"llvm.{fn}.{mangle(t)}", t, args)
    if fn in _LIBM_ONLY:
        return _libm_lanes(em, fn + ("f" if elem_type(t) == F32 else ""), args)
    raise em.error(f"intrinsic {fn} is not supported on {dt.name}")


def _int_call(em: ExprEmitter, fn: str, dt: DType, args: list[ir.Value]) -> ir.Value:
    x = args[0]
    if fn == "abs":
        if not dt.is_signed:
            return x
        return em.intrinsic(f"llvm.abs.{mangle(x.type)}", x.type, [x, ir.Constant(I1, 0)])
    if fn in ("floor", "ceil", "round", "trunc"):
        return x
    if fn == "pow":  # through float64, exact for results below 2**53
        wide = [em.cast(dt, DType.float64, a) for a in args]
        return em.cast(DType.float64, dt, em.intrinsic(f"llvm.pow.{mangle(wide[0].type)}", wide[0].type, wide))
    raise em.error(f"intrinsic {fn} is not defined on {dt.name}")


def _libm_lanes(em: ExprEmitter, name: str, args: list[ir.Value]) -> ir.Value:
    """Call a libm function lane by lane."""
    b, t = em.builder, args[0].type
    scalar = elem_type(t)
    fn = em.ctx.declare(name, scalar, [scalar] * len(args))
    if not isinstance(t, ir.VectorType):
        return b.call(fn, args)
    out = ir.Constant(t, ir.Undefined)
    for lane in range(t.count):
        i = ir.Constant(I32, lane)
        out = b.insert_element(out, b.call(fn, [b.extract_element(a, i) for a in args]), i)
    return out


class Poly:
    """Small helpers for float32 polynomial code over `lanes` lanes."""

    def __init__(self, em: ExprEmitter, lanes: int) -> None:
        self.em, self.b, self.lanes = em, em.builder, lanes
        self.t = vec(F32, lanes)
        self.it = vec(I32, lanes)

    def c(self, value: float) -> ir.Value:
        return constant(DType.float32, value, self.lanes)

    def ci(self, value: int) -> ir.Value:
        return constant(DType.int32, value, self.lanes)

    def call(self, name: str, *args: ir.Value) -> ir.Value:
        return self.em.intrinsic(f"llvm.{name}.{mangle(self.t)}", self.t, list(args))

    def muladd(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        return self.call("fmuladd", a, b, c)

    @property
    def avx512(self) -> bool:
        """Whole 16-lane vectors on an AVX-512 target: `vscalefps` and `vrcp14ps` exist."""
        return self.lanes % 16 == 0 and "avx512f" in self.em.ctx.features

    def zmm(self, name: str, args: list[ir.Value], tail: list[ir.Value]) -> ir.Value:
        """An AVX-512 intrinsic on <16 x float> `args` (then the scalar `tail` arguments), applied to each 16
        lanes of a wider vector (a tile row's epilogue vector)."""
        t16 = vec(F32, 16)
        if self.lanes == 16:
            return self.em.intrinsic(name, t16, [*args, *tail])
        parts = []
        for first in range(0, self.lanes, 16):
            lanes = lane_mask(range(first, first + 16))
            parts.append(self.em.intrinsic(name, t16, [*(self.b.shuffle_vector(a, a, lanes) for a in args), *tail]))
        return concat(self.b, parts)

    def scalef(self, a: ir.Value, n: ir.Value) -> ir.Value:
        """a * 2^floor(n) in one instruction (`vscalefps`, AVX-512): 0 or inf past the exponent range."""
        mask, rounding = ir.Constant(ir.IntType(16), -1), ir.Constant(I32, 4)  # all lanes, the current rounding
        return self.zmm("llvm.x86.avx512.mask.scalef.ps.512", [a, n, a], [mask, rounding])

    def reciprocal(self, d: ir.Value) -> ir.Value:
        """1 / d for d >= 1 (or NaN). With AVX-512, whole 16-lane vectors: the 14-bit estimate `vrcp14ps` and one
        Newton step, r (2 - d r), within 3 ulp (exact at 1/2 and 1): a 16-lane `vdivps` issues once every 5-6
        cycles on Zen 4 and bounded SiLU epilogues. Elsewhere the division: AVX2's 12-bit `vrcpps` after one step
        is off by an ulp at 1/2 and 1."""
        if not self.avx512:
            return self.b.fdiv(self.c(1.0), d)
        r = self.zmm("llvm.x86.avx512.rcp14.ps.512", [d, self.c(0.0)],
                     [ir.Constant(ir.IntType(16), -1)])
        return self.b.fmul(r, self.muladd(self.b.fneg(d), r, self.c(2.0)))

    def horner(self, coeffs: Sequence[float], x: ir.Value) -> ir.Value:
        p = self.c(coeffs[0])
        for k in coeffs[1:]:
            p = self.muladd(p, x, self.c(k))
        return p

    def estrin(self, coeffs: Sequence[float], x: ir.Value, tail: int = 2) -> ir.Value:
        """The polynomial of `horner` (coefficients highest first) with its high-order part by Estrin's
        scheme (pairs of terms joined by x^2, x^4, ...: a dependent chain about log2(degree) long
        instead of degree) and the last `tail` steps by Horner's, which keep its rounding error."""
        head = [self.c(k) for k in reversed(coeffs[:len(coeffs) - tail])]  # lowest first
        power = x
        while len(head) > 1:
            pairs = [head[i:i + 2] for i in range(0, len(head), 2)]
            head = [self.muladd(pair[1], power, pair[0]) if len(pair) == 2 else pair[0] for pair in pairs]
            if len(head) > 1:
                power = self.b.fmul(power, power)
        p = head[0]
        for k in coeffs[len(coeffs) - tail:]:
            p = self.muladd(p, x, self.c(k))
        return p

    def lt(self, a: ir.Value, value: float) -> ir.Value:
        return self.b.fcmp_ordered("<", a, self.c(value))

    def ge(self, a: ir.Value, value: float) -> ir.Value:
        return self.b.fcmp_ordered(">=", a, self.c(value))


def exp_f32(p: Poly, x: ir.Value) -> ir.Value:
    """e^x = 2^k * e^r with k = round(x / ln2), |r| <= ln2/2; e^r by its degree-7 Taylor polynomial."""
    b = p.b
    xc = b.select(p.ge(x, 89.0), p.c(89.0), x)
    xc = b.select(p.lt(xc, -104.0), p.c(-104.0), xc)  # NaN passes through both
    k = p.call("roundeven", b.fmul(xc, p.c(1.4426950408889634)))
    r = p.muladd(k, p.c(-0.693359375), xc)  # ln2 split in two: the first part times k is exact
    r = p.muladd(k, p.c(2.12194440e-4), r)
    er = p.estrin([1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1.0, 1.0], r)
    ki = b.fptosi(b.select(b.fcmp_unordered("uno", k, k), p.c(0.0), k), p.it)  # k is in [-150, 129] or NaN
    k1 = b.ashr(ki, p.ci(1))  # 2^k as two factors so k in [-150, 129] stays in the exponent range
    k2 = b.sub(ki, k1)
    s1 = b.bitcast(b.shl(b.add(k1, p.ci(127)), p.ci(23)), p.t)
    s2 = b.bitcast(b.shl(b.add(k2, p.ci(127)), p.ci(23)), p.t)
    y = b.fmul(b.fmul(er, s1), s2)
    y = b.select(p.ge(x, 88.72283935546875), p.c(float("inf")), y)
    return b.select(p.lt(x, -104.0), p.c(0.0), y)


def exp_nonpos_f32(p: Poly, x: ir.Value) -> ir.Value:
    """e^min(x, 0) for a softmax's shifted scores: `exp_bounded_f32` on x clamped to [-87, 0], 0 below -87
    (e^-87 is 1.6e-38); no overflow or range fix-ups, about half the instructions of `exp_f32`."""
    b = p.b
    t = b.select(p.ge(x, 0.0), p.c(0.0), x)
    t = b.select(p.lt(t, -87.0), p.c(-87.0), t)  # NaN passes both
    return b.select(p.lt(x, -87.0), p.c(0.0), exp_bounded_f32(p, t))


def sigmoid_f32(p: Poly, x: ir.Value) -> ir.Value:
    """1 / (1 + e^-x), -x clamped to [-87, 88] (a NaN passes the clamps) for `exp_bounded_f32`."""
    b = p.b
    t = b.fneg(x)
    t = b.select(p.ge(t, 88.0), p.c(88.0), t)
    t = b.select(p.lt(t, -87.0), p.c(-87.0), t)
    return p.reciprocal(b.fadd(p.c(1.0), exp_bounded_f32(p, t, tail=1)))


def sigmoid_scalef_f32(p: Poly, x: ir.Value) -> ir.Value:
    """1 / (1 + e^-x) on AVX-512 in about 17 instructions instead of 24: e^-x = 2^n e^-r with n = round(-x / ln2)
    and r = x + n ln2 (x clamped to [-88, 87]: past it the result is already 6e-39 or 1), e^-r by a degree-6
    minimax polynomial (Horner), 2^n applied by `vscalefps` instead of exponent-bit arithmetic and a multiply;
    max error 3.2 ulp against float64 (a float32 simulation over [-88, 88])."""
    b = p.b
    xc = b.select(p.lt(x, -88.0), p.c(-88.0), x)
    xc = b.select(p.ge(xc, 87.0), p.c(87.0), xc)  # NaN passes both
    shifter = p.c(12582912.0)  # 1.5 * 2^23: adding it rounds to an integer
    n = b.fsub(p.muladd(xc, p.c(-1.4426950408889634), shifter), shifter)
    r = p.muladd(n, p.c(0.693359375), xc)  # ln2 split in two: the first part times n is exact
    r = p.muladd(n, p.c(-2.12194440e-4), r)
    return p.reciprocal(b.fadd(p.c(1.0), p.scalef(p.horner(_EXP_NEG, r), n)))


def exp_bounded_f32(p: Poly, t: ir.Value, tail: int = 2) -> ir.Value:
    """e^t for t in [-87, 88] (or NaN): 2^k * e^r, k = round(t / ln2) by adding 1.5 * 2^23 (k then sits
    in the low mantissa bits, so no float-to-int conversion, defined for NaN), 2^k a normal float (one
    factor, no clamps or overflow fix-ups), e^r by its degree-7 Taylor polynomial (`tail` as in estrin)."""
    b = p.b
    shifter = p.c(12582912.0)  # 1.5 * 2^23
    kf = p.muladd(t, p.c(1.4426950408889634), shifter)
    k = b.fsub(kf, shifter)
    r = p.muladd(k, p.c(-0.693359375), t)  # ln2 split in two: the first part times k is exact
    r = p.muladd(k, p.c(2.12194440e-4), r)
    er = p.estrin([1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1.0, 1.0], r, tail)
    ki = b.sub(b.bitcast(kf, p.it), b.bitcast(shifter, p.it))
    return b.fmul(er, b.bitcast(b.shl(b.add(ki, p.ci(127)), p.ci(23)), p.t))


def _odd_rational(p: Poly, x: ir.Value, bound: float, num: Sequence[float], den: Sequence[float],
                  poly: Callable[[Sequence[float], ir.Value], ir.Value]) -> ir.Value:
    """x * num(x^2) / den(x^2) with x clamped to [-bound, bound] and the result kept in [-1, 1]: one division
    and two short polynomials (`poly`: Poly.horner or Poly.estrin) for every lane; NaN passes the clamps."""
    b = p.b
    xc = b.select(p.ge(x, bound), p.c(bound), x)
    xc = b.select(p.lt(xc, -bound), p.c(-bound), xc)
    z = b.fmul(xc, xc)
    y = b.fdiv(b.fmul(xc, poly(num, z)), poly(den, z))
    y = b.select(p.ge(y, 1.0), p.c(1.0), y)
    return b.select(p.lt(y, -1.0), p.c(-1.0), y)


def tanh_f32(p: Poly, x: ir.Value) -> ir.Value:
    """A rational function on [-9, 9] (tanh(9) rounds to 1 in float32), no exponential."""
    return _odd_rational(p, x, 9.0, _TANH_P, _TANH_Q, p.horner)


def erf_f32(p: Poly, x: ir.Value) -> ir.Value:
    """A rational function on [-4, 4] (erf(4) rounds to 1 in float32)."""
    return _odd_rational(p, x, 4.0, _ERF_P, _ERF_Q, p.estrin)
