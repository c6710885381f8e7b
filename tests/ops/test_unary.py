"""Unary elementwise ops against onnxruntime, every ONNX dtype, special values, odd shapes."""

import numpy as np
import pytest
from aic.ir import DType
from aic.ir.ops import OPS

from tests.ops.elementwise_oracle import check, data

FLOAT_MATH = [
    "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan",
    "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Erf", "Tanh", "Sigmoid", "IsNaN", "IsInf",
]  # fmt: skip
DOMAIN = {
    "Log": (0, 8),
    "Sqrt": (0, 8),
    "Tan": (-1.2, 1.2),  # away from the poles, where float64 checked via float32 inputs is ill-conditioned
    "Asin": (-1, 1),
    "Acos": (-1, 1),
    "Atanh": (-0.99, 0.99),
    "Acosh": (1.1, 8),
}


def _dtypes(op: str) -> list[DType]:
    return sorted(OPS[op].dtypes, key=lambda d: d.name)


def _cases(ops: list[str]) -> list:
    return [pytest.param(op, d, id=f"{op}-{d.name}") for op in ops for d in _dtypes(op)]


@pytest.mark.parametrize("op,dtype", _cases(FLOAT_MATH))
def test_float_math(rng, op, dtype):
    low, high = DOMAIN.get(op, (-4, 4))
    check(op, {"x": data(rng, dtype, (3, 7), low, high)})


@pytest.mark.parametrize("op,dtype", _cases(["Abs", "Neg", "Sign"]))
def test_signed_math(rng, op, dtype):
    x = data(rng, dtype, (3, 7), -100, 100)
    if dtype.is_int:  # the minimum value wraps around in Abs and Neg
        x.reshape(-1)[:2] = [np.iinfo(dtype.numpy).min, np.iinfo(dtype.numpy).max]
    if op == "Sign" and dtype is DType.float16:  # onnxruntime's float16 Sign alone maps NaN to 0; aic keeps NaN
        x[np.isnan(x)] = 1
    check(op, {"x": x})


@pytest.mark.parametrize("dtype", _dtypes("Round"), ids=lambda d: d.name)
def test_round_half_to_even(dtype):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.49, 2.51, 1e4 + 0.5, np.nan, np.inf, -0.0], dtype.numpy)
    y = check("Round", {"x": x})[0]
    np.testing.assert_array_equal(y[:6].astype(np.float64), [0, 2, 2, -0, -2, -2])


@pytest.mark.parametrize("neg,pos", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_isinf_attrs(neg, pos):
    x = np.array([np.inf, -np.inf, np.nan, 1.0, -1e38], np.float32)
    y = check("IsInf", {"x": x}, {"detect_negative": neg, "detect_positive": pos})[0]
    assert y.tolist() == [bool(pos), bool(neg), False, False, False]


@pytest.mark.parametrize("dtype", _dtypes("BitwiseNot"), ids=lambda d: d.name)
def test_bitwise_not(rng, dtype):
    check("BitwiseNot", {"x": data(rng, dtype, (4, 5), -(2**62), 2**62)})


def test_not(rng):
    check("Not", {"x": data(rng, DType.bool, (4, 5))})


@pytest.mark.parametrize("dtype", _dtypes("Identity"), ids=lambda d: d.name)
def test_identity(rng, dtype):
    check("Identity", {"x": data(rng, dtype, (2, 3))})


SHAPES = [(), (0,), (2, 0, 3), (1,), (1, 1, 1), (2, 3, 4, 5)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("op,dtype", [("Exp", DType.float32), ("Abs", DType.int32), ("Not", DType.bool)])
def test_shapes(rng, op, dtype, shape):
    y = check(op, {"x": data(rng, dtype, shape, special=False)})[0]
    assert y.shape == shape


def test_erf_values():
    x = np.array([-3, -1, -0.5, 0, 1e-4, 0.5, 1, 2, 3, 6], np.float32)
    check("Erf", {"x": x})
