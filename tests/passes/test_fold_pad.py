"""Zero padding folded into the convolution that reads it."""

from __future__ import annotations

import numpy as np
import pytest
from aic.compiler.passes.fold_pad import fold_pad
from aic.ir import DType, GraphBuilder, TensorType

from .util import check_pass, ops

F32 = DType.float32

@pytest.mark.parametrize("auto_pad", ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"])
def test_zero_pad_folds_into_conv(rng, auto_pad):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (1, 3, 9, 8)))
    padded = b.op("Pad", x, b.const(np.asarray([0, 0, 1, 0, 0, 0, 0, 2], np.int64)))
    w = b.const(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    pads = {"pads": [1, 0, 0, 1]} if auto_pad == "NOTSET" else {}
    y = b.op("Conv", padded, w, auto_pad=auto_pad, strides=[2, 2], **pads)
    after = check_pass(b.build([y]), fold_pad, rng)
    assert ops(after) == ["Conv"]


def test_non_zero_pad_stays(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (1, 3, 9, 8)))
    padded = b.op("Pad", x, b.const(np.asarray([0, 0, 1, 1, 0, 0, 1, 1], np.int64)), b.const(np.float32(1)))
    y = b.op("Conv", padded, b.const(rng.standard_normal((4, 3, 3, 3)).astype(np.float32)))
    after = check_pass(b.build([y]), fold_pad, rng)
    assert ops(after) == ["Pad", "Conv"]


def test_zero_pad_of_a_channels_last_input_folds_through_the_transpose(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (1, 9, 8, 3)))
    padded = b.op("Pad", x, b.const(np.asarray([0, 3, 2, 0, 0, 3, 1, 0], np.int64)))
    nchw = b.op("Transpose", padded, perm=[0, 3, 1, 2])
    y = b.op("Conv", nchw, b.const(rng.standard_normal((4, 3, 7, 7)).astype(np.float32)), strides=[2, 2])
    after = check_pass(b.build([y]), fold_pad, rng)
    assert ops(after) == ["Transpose", "Conv"]
