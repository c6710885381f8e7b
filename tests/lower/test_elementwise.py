"""Elementwise lowerings, evaluated in loop IR by the loop evaluator, against onnxruntime."""

import numpy as np
import pytest

from tests.lower.lower_util import check_lowered

rng = np.random.default_rng(0)


def f(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def ints(lo: int, hi: int, shape: tuple[int, ...], dtype=np.int32) -> np.ndarray:
    return rng.integers(lo, hi, shape).astype(dtype)


CASES = [
    ("Add", {"a": f(2, 3, 20), "b": f(20)}, {}),
    ("Sub", {"a": f(3, 1), "b": f(1, 4)}, {}),
    ("Mul", {"a": ints(-50, 50, (3, 4), np.int8), "b": ints(-50, 50, (4,), np.int8)}, {}),
    ("Div", {"a": ints(-20, 20, (3, 4)), "b": ints(1, 5, (3, 4))}, {}),
    ("Div", {"a": f(3, 4), "b": f(3, 4)}, {}),
    ("Mod", {"a": ints(-20, 20, (3, 4)), "b": ints(-5, 5, (3, 4)) | 1}, {}),
    ("Mod", {"a": f(3, 4), "b": f(3, 4)}, {"fmod": 1}),
    ("Pow", {"a": np.abs(f(3, 4)), "b": f(3, 4)}, {}),
    ("Max", {"a": f(3, 4), "b": f(4), "c": f(3, 1)}, {}),
    ("Min", {"a": ints(-9, 9, (3, 4), np.int64), "b": ints(-9, 9, (4,), np.int64)}, {}),
    ("Sum", {"a": f(3, 4), "b": f(4), "c": f(3, 4)}, {}),
    ("Mean", {"a": f(3, 4), "b": f(4)}, {}),
    ("Where", {"c": rng.random((3, 4)) > 0.5, "a": f(3, 4), "b": f(4)}, {}),
    ("Cast", {"x": f(3, 4, scale=100)}, {"to": 6}),
    ("Cast", {"x": f(3, 4, scale=100)}, {"to": 3}),
    ("Cast", {"x": f(3, 4)}, {"to": 10}),
    ("Cast", {"x": f(3, 4)}, {"to": 9}),
    ("Cast", {"x": rng.random((3, 4)) > 0.5}, {"to": 1}),
    ("Clip", {"x": f(3, 4), "lo": np.array(-0.5, np.float32), "hi": np.array(0.5, np.float32)}, {}),
    ("Clip", {"x": ints(-9, 9, (3, 4)), "lo": np.array(-2, np.int32)}, {}),
    ("Relu", {"x": f(2, 3, 20)}, {}),
    ("LeakyRelu", {"x": f(3, 4)}, {"alpha": 0.2}),
    ("PRelu", {"x": f(3, 4), "s": f(4)}, {}),
    ("Elu", {"x": f(3, 4)}, {}),
    ("Selu", {"x": f(3, 4)}, {}),
    ("Celu", {"x": f(3, 4)}, {"alpha": 2.0}),
    ("ThresholdedRelu", {"x": f(3, 4)}, {}),
    ("HardSigmoid", {"x": f(3, 4, scale=4)}, {}),
    ("HardSwish", {"x": f(3, 4, scale=4)}, {}),
    ("Softplus", {"x": f(3, 4, scale=30)}, {}),
    ("Softsign", {"x": f(3, 4)}, {}),
    ("Mish", {"x": f(3, 4)}, {}),
    ("Gelu", {"x": f(3, 4)}, {}),
    ("Gelu", {"x": f(3, 4)}, {"approximate": "tanh"}),
    ("Shrink", {"x": f(3, 4)}, {"lambd": 0.3, "bias": 0.1}),
    ("Sigmoid", {"x": f(3, 4, scale=10)}, {}),
    ("Tanh", {"x": f(3, 4)}, {}),
    ("Erf", {"x": f(3, 4)}, {}),
    ("Exp", {"x": f(3, 4)}, {}),
    ("Log", {"x": np.abs(f(3, 4)) + 0.1}, {}),
    ("Sqrt", {"x": np.abs(f(3, 4))}, {}),
    ("Reciprocal", {"x": f(3, 4)}, {}),
    ("Tan", {"x": f(3, 4)}, {}),
    ("Acosh", {"x": np.abs(f(3, 4)) + 1.5}, {}),
    ("Floor", {"x": f(3, 4, scale=3)}, {}),
    ("Round", {"x": np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.4, 2.6], np.float32)}, {}),
    ("Sign", {"x": f(3, 4)}, {}),
    ("Abs", {"x": ints(-5, 5, (3, 4), np.int8)}, {}),
    ("Neg", {"x": ints(-5, 5, (3, 4))}, {}),
    ("IsInf", {"x": np.array([np.inf, -np.inf, 1, np.nan], np.float32)}, {"detect_negative": 0}),
    ("IsNaN", {"x": np.array([np.inf, -np.inf, 1, np.nan], np.float32)}, {}),
    ("Not", {"x": rng.random((3, 4)) > 0.5}, {}),
    ("And", {"a": rng.random((3, 4)) > 0.5, "b": rng.random((4,)) > 0.5}, {}),
    ("Equal", {"a": ints(0, 3, (3, 4), np.int64), "b": ints(0, 3, (4,), np.int64)}, {}),
    ("Less", {"a": f(3, 4), "b": f(4)}, {}),
    ("GreaterOrEqual", {"a": ints(0, 3, (3, 4)), "b": ints(0, 3, (3, 4))}, {}),
    ("BitShift", {"a": ints(0, 100, (5,), np.uint32), "b": ints(0, 5, (5,), np.uint32)}, {"direction": "LEFT"}),
    ("BitShift", {"a": ints(0, 100, (5,), np.uint8), "b": ints(0, 5, (5,), np.uint8)}, {"direction": "RIGHT"}),
    ("BitwiseXor", {"a": ints(0, 100, (5,)), "b": ints(0, 100, (5,))}, {}),
]


@pytest.mark.parametrize(("op", "inputs", "attrs"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_elementwise(op, inputs, attrs):
    check_lowered(op, inputs, attrs)


def test_swish():
    check_lowered("Swish", {"x": f(3, 4)}, {"alpha": 1.5}, opset=24)


def test_float16_rounds_like_onnxruntime():
    x = f(4, 5).astype(np.float16)
    check_lowered("Mul", {"a": x, "b": x}, rtol=1e-3, atol=1e-3)
