"""Batch-norm and affine-constant folding into Conv, Gemm and MatMul."""

from __future__ import annotations

import numpy as np
import pytest
from aic.compiler.passes.fold_affine import fold_affine_constants
from aic.compiler.passes.fold_batchnorm import fold_batchnorm
from aic.ir import DType, GraphBuilder, TensorType

from .util import check_pass, ops

F32 = DType.float32


def _weights(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _bn_params(b, rng, channels):
    var = rng.random(channels).astype(np.float32) + 0.5
    return [b.const(_weights(rng, channels)) for _ in range(3)] + [b.const(var)]


def _linear(b, rng, kind, x, bias=True):
    """A Conv (x: [n,3,6,6]), Gemm or MatMul (x: [n,3]) with 4 output channels."""
    if kind == "Conv":
        inputs = [x, b.const(_weights(rng, 4, 3, 3, 3))] + ([b.const(_weights(rng, 4))] if bias else [])
        return b.op("Conv", *inputs, pads=[1, 1, 1, 1])
    if kind == "Gemm":
        inputs = [x, b.const(_weights(rng, 4, 3))] + ([b.const(_weights(rng, 1, 4))] if bias else [])
        return b.op("Gemm", *inputs, transB=1, alpha=0.5, beta=2.0)
    y = b.op("MatMul", x, b.const(_weights(rng, 3, 4)))
    return b.op("Add", y, b.const(_weights(rng, 4))) if bias else y


def _input(b, kind):
    return b.input("x", TensorType(F32, ("n", 3, 6, 6) if kind == "Conv" else ("n", 3)))


@pytest.mark.parametrize("kind", ["Conv", "Gemm", "MatMul"])
@pytest.mark.parametrize("bias", [True, False])
def test_batchnorm_folds_into_linear_op(kind, bias, rng):
    b = GraphBuilder()
    y = _linear(b, rng, kind, _input(b, kind), bias)
    out = b.op("Relu", b.op("BatchNormalization", y, *_bn_params(b, rng, 4), epsilon=1e-3))
    after = check_pass(b.build([out]), fold_batchnorm, rng, rtol=1e-4, atol=1e-5)
    expected = {"Conv": ["Conv"], "Gemm": ["Gemm"], "MatMul": ["MatMul", "Add"]}[kind]
    assert ops(after) == [*expected, "Relu"]


def test_batchnorm_after_shared_conv_is_decomposed(rng):
    b = GraphBuilder()
    y = _linear(b, rng, "Conv", _input(b, "Conv"))
    bn = b.op("BatchNormalization", y, *_bn_params(b, rng, 4))
    after = check_pass(b.build([bn, b.op("Relu", y)]), fold_batchnorm, rng, rtol=1e-4, atol=1e-5)
    assert ops(after) == ["Conv", "Mul", "Add", "Relu"]


@pytest.mark.parametrize("kind", ["Conv", "Gemm", "MatMul"])
def test_keras_style_affine_folds(kind, rng):
    b = GraphBuilder()
    y = _linear(b, rng, kind, _input(b, kind))
    shape = (4, 1, 1) if kind == "Conv" else (4,)
    scaled = b.op("Mul", b.const(_weights(rng, *shape)), y)
    shifted = b.op("Sub", b.op("Div", scaled, b.const(_weights(rng, *shape) + 3)), b.const(_weights(rng, *shape)))
    after = check_pass(b.build([b.op("Relu", shifted)]), fold_affine_constants, rng, rtol=1e-4, atol=1e-5)
    expected = {"Conv": ["Conv"], "Gemm": ["Gemm"], "MatMul": ["MatMul", "Add"]}[kind]
    assert ops(after) == [*expected, "Relu"]


def test_affine_constants_that_are_not_per_channel_stay(rng):
    b = GraphBuilder()
    y = _linear(b, rng, "Conv", _input(b, "Conv"))
    spatial = b.op("Mul", y, b.const(_weights(rng, 1, 6, 6)))
    wider = b.op("Add", spatial, b.const(_weights(rng, 1, 1, 4, 1, 1)))
    after = check_pass(b.build([wider]), fold_affine_constants, rng)
    assert ops(after) == ["Conv", "Mul", "Add"]


def test_bare_matmul_keeps_its_bias_add(rng):
    b = GraphBuilder()
    y = _linear(b, rng, "MatMul", _input(b, "MatMul"), bias=False)
    after = check_pass(b.build([b.op("Add", y, b.const(_weights(rng, 4)))]), fold_affine_constants, rng)
    assert ops(after) == ["MatMul", "Add"]


def test_shift_of_matmul_with_bias_merges_into_one_add(rng):
    b = GraphBuilder()
    y = _linear(b, rng, "MatMul", _input(b, "MatMul"))
    after = check_pass(b.build([b.op("Sub", b.const(_weights(rng, 4)), y)]), fold_affine_constants, rng)
    assert ops(after) == ["MatMul", "Add"]
