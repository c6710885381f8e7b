"""Transpose/Reshape sinking through elementwise ops and cancelling."""

from __future__ import annotations

import numpy as np
from aic.compiler.passes.sink_layout import sink_layout
from aic.ir import DType, GraphBuilder, TensorType

from .util import check_pass, ops

F32 = DType.float32
NHWC = [0, 2, 3, 1]
NCHW = [0, 3, 1, 2]


def test_transpose_relu_inverse_transpose_cancels(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, ("n", 3, 4, 5)))
    t = b.op("Transpose", b.op("Neg", x), perm=NHWC)
    y = b.op("Transpose", b.op("Sigmoid", b.op("Relu", t)), perm=NCHW)
    after = check_pass(b.build([b.op("Neg", y)]), sink_layout, rng)
    assert ops(after) == ["Neg", "Relu", "Sigmoid", "Neg"]


def test_binary_op_of_two_transposes(rng):
    b = GraphBuilder()
    x, y = b.input("x", TensorType(F32, ("n", 3, 4, 5))), b.input("y", TensorType(F32, ("n", 3, 4, 5)))
    s = b.op("Add", b.op("Transpose", x, perm=NHWC), b.op("Transpose", y, perm=NHWC))
    after = check_pass(b.build([b.op("Relu", s)]), sink_layout, rng)
    assert ops(after) == ["Add", "Relu", "Transpose"]
    assert after.outputs[0].type.shape == ("n", 4, 5, 3)


def test_constants_are_permuted(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 3, 4, 5)))
    t = b.op("Transpose", x, perm=NHWC)
    scaled = b.op("Mul", t, b.const(rng.standard_normal((5, 3)).astype(np.float32)))
    clipped = b.op("Clip", scaled, b.const(np.float32(-0.5)), b.const(np.float32(0.5)))
    after = check_pass(b.build([b.op("Transpose", clipped, perm=NCHW)]), sink_layout, rng)
    assert ops(after) == ["Mul", "Clip"]


def test_transpose_with_other_readers_or_broadcast_stays(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 3, 4)))
    t = b.op("Transpose", x, perm=[0, 2, 1])
    shared = b.op("Relu", t)
    wider = b.op("Add", b.op("Transpose", b.op("Neg", x), perm=[0, 2, 1]), b.const(np.zeros((5, 1, 1, 1), np.float32)))
    after = check_pass(b.build([shared, t, wider]), sink_layout, rng)
    assert ops(after).count("Transpose") == 2


def test_reshape_sinks_and_cancels(rng):
    b = GraphBuilder()
    x, y = b.input("x", TensorType(F32, ("batch", 12))), b.input("y", TensorType(F32, ("batch", 12)))
    shape = b.const(np.array([0, 3, 4], np.int64))
    s = b.op("Mul", b.op("Reshape", x, shape), b.op("Reshape", y, shape))
    back = b.op("Reshape", b.op("Add", b.op("Exp", s), b.const(np.float32(1))), b.const(np.array([0, 12], np.int64)))
    after = check_pass(b.build([back]), sink_layout, rng)
    assert ops(after) == ["Mul", "Exp", "Add"]


def test_batchnorm_is_not_sunk_through(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 3, 3)))
    t = b.op("Transpose", x, perm=[0, 2, 1])
    params = [b.const(np.full(3, v, np.float32)) for v in (1.0, 0.0, 0.0, 1.0)]
    after = check_pass(b.build([b.op("BatchNormalization", t, *params)]), sink_layout, rng)
    assert ops(after) == ["Transpose", "BatchNormalization"]
