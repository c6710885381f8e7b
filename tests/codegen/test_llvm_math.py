"""Intrinsic calls against float64 numpy references: the float32 polynomials (exp, exp_nonpos, tanh,
erf, sigmoid; scalar and 8-lane), libm-backed functions in float32/float64, half-precision
inputs, and the integer forms (abs, pow)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from aic.ir.dtypes import DType
from aic.ir.loop import Buffer, Call, Const, For, ForKind, Load, Store, Var

from .util import Case, run_cases

REF = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "erf": np.vectorize(math.erf),
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "abs": np.abs, "floor": np.floor, "ceil": np.ceil, "round": np.round, "trunc": np.trunc,
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "exp_nonpos": lambda v: np.exp(np.minimum(v, 0)),
}  # fmt: skip
DOMAIN = {
    "log": (0.01, 50), "sqrt": (0, 50), "asin": (-1, 1), "acos": (-1, 1), "acosh": (1, 20), "atanh": (-0.99, 0.99),
    "exp": (-10, 10), "sinh": (-10, 10), "cosh": (-10, 10),
}  # fmt: skip


def call_case(name: str, fn: str, args: dict[Buffer, np.ndarray], out: Buffer) -> Case:
    i = Var("i")
    body = For(i, Const(int(out.size)), Store(out, i, Call(fn, tuple(Load(b, i) for b in args))))
    return Case(name, body, args, [out])


def unary_case(name: str, fn: str, dt: DType, data: np.ndarray, lanes: int = 1) -> Case:
    x, y, i = Buffer("x", dt, data.size), Buffer("y", dt, data.size), Var("i")
    if lanes == 1:
        body = For(i, Const(data.size), Store(y, i, Call(fn, (Load(x, i),))))
    else:
        v = Var("v")
        inner = For(v, Const(lanes), Store(y, i * lanes + v, Call(fn, (Load(x, i * lanes + v),))), ForKind.VECTORIZED)
        body = For(i, Const(data.size // lanes), inner)
    return Case(name, body, {x: data}, [y])


def ulp_error(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|got - ref| in units of float32 spacing at ref (0 where both agree, NaN/inf included)."""
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    ref = np.where(same, 1.0, ref)
    spacing = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    return np.where(same, 0.0, np.abs(got.astype(np.float64) - ref) / spacing)


@pytest.mark.parametrize("lanes", [1, 8])
def test_float32_polynomials(lanes, tmp_path):
    edge = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 88.72, 88.7229, -87.5, -103.9, -104.5, 1e-30, 0.4, 1.0, 4.0,
                     3.99, 0.3999, 1e-8, -1e-8, 20.0, -9.5, 1000.0, -1000.0, 0.5, -0.5], dtype=np.float32)  # fmt: skip
    wide = np.linspace(-110, 90, 8000, dtype=np.float32)
    fine = np.linspace(-5, 5, 8000, dtype=np.float32)
    data = np.concatenate([edge, wide, fine])
    cases = [unary_case(fn, fn, DType.float32, data, lanes) for fn in ("exp", "tanh", "erf")]
    results = run_cases(cases, tmp_path)
    x = data.astype(np.float64)
    with np.errstate(over="ignore"):
        exp_ulp = ulp_error(results["exp"][0], np.exp(x).astype(np.float32).astype(np.float64))
    normal = x > -87.3  # results above the smallest normal float32
    assert exp_ulp[normal].max() <= 2, f"exp: {exp_ulp[normal].max()} ulp"
    denormal = ~normal
    np.testing.assert_allclose(results["exp"][0][denormal], np.exp(x[denormal]), rtol=0, atol=3e-45)
    tanh_ulp = ulp_error(results["tanh"][0], np.tanh(x))
    assert tanh_ulp.max() <= 4, f"tanh: {tanh_ulp.max()} ulp at x={data[tanh_ulp.argmax()]}"
    erf = results["erf"][0].astype(np.float64)
    ref = REF["erf"](x)
    assert np.isnan(erf[4]) and np.isnan(results["tanh"][0][4]) and np.isnan(results["exp"][0][4])
    finite = ~np.isnan(x)
    assert np.abs(erf - ref)[finite].max() < 3e-7  # 5 float32 spacings below 1
    small = finite & (np.abs(x) < 1) & (x != 0)
    assert (np.abs(erf - ref)[small] / np.abs(ref[small])).max() < 3e-7


@pytest.mark.parametrize("lanes", [1, 8])
def test_float32_tanh_dense(lanes, tmp_path):
    """The rational tanh over a dense sweep: within 5 ulp (the worst lanes sit near |x| = 7, results a few
    ulp below 1), odd, exactly +-1 from |x| = 9 and x itself for tiny x."""
    data = np.concatenate([np.linspace(-10, 10, 400_000, dtype=np.float32),
                           np.geomspace(1e-30, 10, 20_006, dtype=np.float32), np.array([np.inf, -np.inf], np.float32)])
    got = run_cases([unary_case("tanh", "tanh", DType.float32, data, lanes)], tmp_path)["tanh"][0]
    err = ulp_error(got, np.tanh(data.astype(np.float64)))
    assert err.max() <= 5, f"tanh: {err.max()} ulp at x={data[err.argmax()]}"
    np.testing.assert_array_equal(got[:400_000], -got[:400_000][::-1])
    assert (np.abs(got[np.abs(data) >= 9]) == 1).all() and got[400_000] == np.float32(1e-30)


@pytest.mark.parametrize("lanes", [1, 8, 16, 32, 64])
def test_float32_sigmoid(lanes, tmp_path):
    """Within 3 ulp where the result is a normal float32, within 6.1e-39 below; NaN stays NaN; exactly 1/2 at
    0 and 1 from 17 up (whole 16-lane vectors on AVX-512: `vscalefps`, the reciprocal estimate and a Newton step,
    32 and 64 lanes by 16)."""
    edge = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 87.0, 87.5, -87.0, -87.5, -88.0, -88.5, -103.9, -104.5,
                     1e-30, -1e-30, 16.0, 17.0, -16.0, 1000.0, -1000.0, 0.5, -0.5, 3.0e38, -3.0e38], np.float32)
    data = np.concatenate([edge, np.linspace(-110, 110, 16000, dtype=np.float32),
                           np.linspace(-4, 4, 8040, dtype=np.float32)])  # whole vectors of 64
    got = run_cases([unary_case("sigmoid", "sigmoid", DType.float32, data, lanes)], tmp_path)["sigmoid"][0]
    x = data.astype(np.float64)
    with np.errstate(over="ignore"):
        ref = 1 / (1 + np.exp(-x))
    assert np.isnan(got[4]) and got[2] == 1.0 and 0 <= got[3] < 6.1e-39 and got[0] == 0.5 and got[16] == 1.0
    finite = np.isfinite(x)
    normal = finite & (ref >= np.finfo(np.float32).tiny)
    err = ulp_error(got[normal], ref[normal])
    assert err.max() <= 3, f"sigmoid: {err.max()} ulp at x={data[normal][err.argmax()]}"
    np.testing.assert_allclose(got[finite & ~normal], ref[finite & ~normal], rtol=0, atol=6.1e-39)


@pytest.mark.parametrize("lanes", [1, 8])
def test_float32_exp_nonpos(lanes, tmp_path):
    """e^min(x, 0): within 2 ulp down to -87, exactly 0 below (where e^x < 1.7e-38), 1 for x >= 0, NaN stays NaN."""
    edge = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5.0, 3.0e38, -86.9, -87.0, -87.01, -104.0, -1e-30, -1e-8,
                     -0.5, -3.0e38, -20.0], np.float32)  # fmt: skip
    data = np.concatenate([edge, np.linspace(-100, 0, 16000, dtype=np.float32),
                           np.linspace(-4, 0, 8000, dtype=np.float32)])
    got = run_cases([unary_case("e", "exp_nonpos", DType.float32, data, lanes)], tmp_path)["e"][0]
    x = data.astype(np.float64)
    ref = np.exp(np.minimum(x, 0)).astype(np.float32).astype(np.float64)
    assert np.isnan(got[4]) and (got[[0, 1, 2, 5, 6]] == 1).all() and got[3] == 0
    inside = ~np.isnan(x) & (x >= -87)
    err = ulp_error(got[inside], ref[inside])
    assert err.max() <= 2, f"exp_nonpos: {err.max()} ulp at x={data[inside][err.argmax()]}"
    assert (got[x < -87] == 0).all()


@pytest.mark.parametrize("dt", [DType.float32, DType.float64, DType.float16], ids=lambda d: d.name)
def test_intrinsics(dt, rng, tmp_path):
    cases, inputs = [], {}
    for fn in REF:
        lo, hi = DOMAIN.get(fn, (-3, 3))
        data = rng.uniform(lo, hi, 64).astype(dt.numpy)
        data[:4] = np.array([lo, hi, 2.5, -2.5]).clip(lo, hi)
        inputs[fn] = data
        cases.append(unary_case(fn, fn, dt, data, lanes=8 if fn in ("sin", "floor", "erf") else 1))
    pa, pb, pc, py = (Buffer(n, dt, 16) for n in "abcy")
    base, expo, third = (rng.uniform(0.5, 3, 16).astype(dt.numpy) for _ in range(3))
    cases.append(call_case("pow", "pow", {pa: base, pb: expo}, py))
    cases.append(call_case("fma", "fma", {pa: base, pb: expo, pc: third}, py))
    results = run_cases(cases, tmp_path)
    rtol = {DType.float64: 1e-13, DType.float32: 2e-6, DType.float16: 1e-3}[dt]
    for fn, data in inputs.items():
        ref = REF[fn](data.astype(np.float64))
        np.testing.assert_allclose(results[fn][0].astype(np.float64), ref, rtol=rtol, atol=rtol, err_msg=fn)
    b64, e64, c64 = (v.astype(np.float64) for v in (base, expo, third))
    np.testing.assert_allclose(results["pow"][0].astype(np.float64), b64**e64, rtol=rtol)
    np.testing.assert_allclose(results["fma"][0].astype(np.float64), b64 * e64 + c64, rtol=rtol)


def test_integer_intrinsics(tmp_path):
    a, b, y = Buffer("a", DType.int32, 8), Buffer("b", DType.int32, 8), Buffer("y", DType.int32, 8)
    ua, uy = Buffer("ua", DType.uint8, 8), Buffer("uy", DType.uint8, 8)
    av = np.array([-5, 3, 0, -(2**31), 7, -1, 2, 10], dtype=np.int32)
    base = np.array([-5, 3, 0, 7, 7, -1, 2, 10], dtype=np.int32)
    expo = np.array([2, 3, 5, 0, 2, 3, 10, 1], dtype=np.int32)
    cases = [
        call_case("abs", "abs", {a: av}, y),
        call_case("pow", "pow", {a: base, b: expo}, y),
        call_case("uabs", "abs", {ua: np.arange(250, 258) % 256}, uy),
    ]
    results = run_cases(cases, tmp_path)
    np.testing.assert_array_equal(results["abs"][0], np.abs(av))  # INT_MIN stays INT_MIN, as in numpy
    np.testing.assert_array_equal(results["pow"][0], base.astype(np.int64) ** expo)
    np.testing.assert_array_equal(results["uabs"][0], np.arange(250, 258) % 256)
