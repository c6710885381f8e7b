"""Binary and variadic elementwise ops, Pow and Where against onnxruntime, every ONNX dtype."""

import numpy as np
import pytest
from aic.ir import DType
from aic.ir.dtypes import ALL_TYPES, NUMERIC_TYPES
from aic.ir.ops import OPS

from tests.ops.elementwise_oracle import check, data


def _dtypes(op: str) -> list[DType]:
    return sorted(OPS[op].dtypes, key=lambda d: d.name)


def _cases(ops: list[str]) -> list:
    return [pytest.param(op, d, id=f"{op}-{d.name}") for op in ops for d in _dtypes(op)]


def _full(rng, dtype: DType, shape) -> np.ndarray:
    """Integers over the whole range of their type (to exercise wrap-around), floats as `data`."""
    return data(rng, dtype, shape, -(2**64), 2**64) if dtype.is_int else data(rng, dtype, shape)


def _nonzero(x: np.ndarray) -> np.ndarray:
    return np.where(x == 0, np.ones((), x.dtype), x)


@pytest.mark.parametrize("op,dtype", _cases(["Add", "Sub", "Mul"]))
def test_arithmetic(rng, op, dtype):
    check(op, {"a": _full(rng, dtype, (3, 5)), "b": _full(rng, dtype, (5,))})


@pytest.mark.parametrize("dtype", _dtypes("Div"), ids=lambda d: d.name)
def test_div(rng, dtype):
    a, b = data(rng, dtype, (4, 6), -50, 50), data(rng, dtype, (4, 6), -9, 9)
    check("Div", {"a": a, "b": b if dtype.is_float else _nonzero(b)})  # integer x / 0 traps in onnxruntime


@pytest.mark.parametrize("dtype", [DType.int8, DType.int16])
def test_div_truncates_and_wraps(dtype):
    low = np.iinfo(dtype.numpy).min  # onnxruntime traps on int32/int64 min / -1 (x86 idiv)
    a = np.array([-7, 7, -7, 7, low, low, 0], dtype.numpy)
    y = check("Div", {"a": a, "b": np.array([2, -2, -2, 2, -1, 3, -5], dtype.numpy)})[0]
    assert y[:4].tolist() == [-3, -3, 3, 3] and y[4] == low


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", _dtypes("Mod"), ids=lambda d: d.name)
def test_mod(rng, dtype, fmod):
    a, b = data(rng, dtype, (4, 6), -50, 50), data(rng, dtype, (4, 6), -9, 9)
    check("Mod", {"a": a, "b": b if dtype.is_float else _nonzero(b)}, {"fmod": fmod})


@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_special_values(fmod):
    a = np.array([-7, 7, -0.0, 0.0, np.inf, 1, -1, 1, np.nan, 5.5, -5.5, 5], np.float32)
    b = np.array([2, -2, 3, -3, 2, 0, np.inf, -np.inf, 1, np.inf, np.inf, np.nan], np.float32)
    check("Mod", {"a": a, "b": b}, {"fmod": fmod})


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", _dtypes("BitShift"), ids=lambda d: d.name)
def test_bitshift(rng, dtype, direction):
    bits = dtype.itemsize * 8
    x = _full(rng, dtype, (4, 8))
    shift = data(rng, dtype, (8,), -3, bits + 3)  # out-of-range shifts give the sign fill
    check("BitShift", {"x": x, "s": shift}, {"direction": direction})


@pytest.mark.parametrize("op,dtype", _cases(["BitwiseAnd", "BitwiseOr", "BitwiseXor"]))
def test_bitwise(rng, op, dtype):
    check(op, {"a": _full(rng, dtype, (3, 4)), "b": _full(rng, dtype, (1, 4))})


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic(rng, op):
    check(op, {"a": data(rng, DType.bool, (3, 4)), "b": data(rng, DType.bool, (4,))})


@pytest.mark.parametrize("op,dtype", _cases(["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"]))
def test_comparison(rng, op, dtype):
    a = data(rng, dtype, (4, 6), -3, 3)
    b = a.copy() if dtype is DType.bool else np.where(rng.random((4, 6)) < 0.3, a, data(rng, dtype, (4, 6), -3, 3))
    check(op, {"a": a, "b": b})


VARIADIC_SHAPES = [[(3, 4)], [(3, 4), (4,)], [(2, 1, 4), (3, 1), ()], [(0, 2), (1, 2), (2,)]]


@pytest.mark.parametrize("shapes", VARIADIC_SHAPES, ids=str)
@pytest.mark.parametrize("op,dtype", _cases(["Max", "Min", "Sum", "Mean"]))
def test_variadic(rng, op, dtype, shapes):
    inputs = {f"x{i}": data(rng, dtype, s, -100, 100) for i, s in enumerate(shapes)}
    check(op, inputs)


def test_max_min_propagate_nan():
    a = np.array([np.nan, 1, 2, -0.0, np.inf], np.float32)
    b = np.array([1, np.nan, 3, 1, -np.inf], np.float32)
    assert np.isnan(check("Max", {"a": a, "b": b})[0][:2]).all()
    assert np.isnan(check("Min", {"a": a, "b": b})[0][:2]).all()


POW_BASES = sorted(OPS["Pow"].dtypes, key=lambda d: d.name)
POW_EXPONENTS = sorted(NUMERIC_TYPES, key=lambda d: d.name)


@pytest.mark.parametrize("exponent", POW_EXPONENTS, ids=lambda d: d.name)
@pytest.mark.parametrize("base", POW_BASES, ids=lambda d: d.name)
def test_pow(rng, base, exponent):
    x = data(rng, base, (3, 6), -6, 6)
    y = data(rng, exponent, (6,), -3, 4)  # negative int exponents truncate, 0 ** -1 overflows
    check("Pow", {"x": x, "e": y})


def test_pow_integer_overflow_and_fractions():
    x = np.array([2, -3, 0, 5, 7, -2, 1, -1, 3], np.int32)
    check("Pow", {"x": x, "e": np.array([3, 2, -1, -1, 0, 3, -3, -3, 30], np.int64)})
    check("Pow", {"x": x, "e": np.array([0.5, 2, -1, 2.7, 1.5, 0.5, -3, -3, 20.2], np.float32)})
    check("Pow", {"x": np.array([3, 10, 2], np.int64), "e": np.array([39, 19, 63], np.int32)})


@pytest.mark.parametrize("dtype", sorted(ALL_TYPES, key=lambda d: d.name), ids=lambda d: d.name)
def test_where(rng, dtype):
    cond = data(rng, DType.bool, (3, 1, 4))
    check("Where", {"c": cond, "a": data(rng, dtype, (2, 1)), "b": data(rng, dtype, (4,))}, keep=["c"])


BROADCAST = [
    ((), ()),
    ((2, 3), ()),
    ((), (4,)),
    ((0, 3), (1, 3)),
    ((2, 0), (1,)),
    ((2, 1, 4), (3, 1)),
    ((1, 5), (4, 1)),
    ((2, 3, 4, 5), (3, 1, 5)),
]


@pytest.mark.parametrize("sa,sb", BROADCAST, ids=str)
@pytest.mark.parametrize("op,dtype", [("Add", DType.float32), ("Mul", DType.int64), ("Less", DType.float32)])
def test_broadcast(rng, op, dtype, sa, sb):
    y = check(op, {"a": data(rng, dtype, sa, special=False), "b": data(rng, dtype, sb, special=False)})[0]
    assert y.shape == np.broadcast_shapes(sa, sb)


@pytest.mark.parametrize("sc,sa,sb", [((), (2,), (3, 1)), ((0, 1), (1, 4), ()), ((2, 1, 1), (3, 1), (4,))], ids=str)
def test_where_broadcast(rng, sc, sa, sb):
    inputs = {"c": data(rng, DType.bool, sc), "a": data(rng, DType.float32, sa), "b": data(rng, DType.float32, sb)}
    assert check("Where", inputs)[0].shape == np.broadcast_shapes(sc, sa, sb)
