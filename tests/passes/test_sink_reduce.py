"""Transposes read by reductions fold into the reduction axes."""

from __future__ import annotations

import numpy as np
import pytest
from aic.compiler.passes.sink_reduce import sink_reduce
from aic.ir import DType, GraphBuilder, TensorType

from .util import check_pass, ops

F32 = DType.float32


def _graph(perm: list[int], axes: list[int], keepdims: int, op: str = "ReduceMean"):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 3, 4, 5)))
    t = b.op("Transpose", x, perm=perm)
    y = b.op(op, t, b.const(np.asarray(axes, np.int64)), keepdims=keepdims)
    return b.build([b.op("Neg", y)])


def test_global_pooling_of_nchw_data_needs_no_transpose(rng):
    after = check_pass(_graph([0, 2, 3, 1], [1, 2], 0), sink_reduce, rng)
    assert ops(after) == ["ReduceMean", "Neg"]


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax"])
def test_reordered_kept_dims_keep_a_smaller_transpose(rng, op):
    after = check_pass(_graph([0, 3, 2, 1], [0], 0, op), sink_reduce, rng)
    assert ops(after) == [op, "Transpose", "Neg"]


def test_keepdims_moves_the_transpose_after(rng):
    after = check_pass(_graph([0, 2, 3, 1], [1, -1], 1), sink_reduce, rng)
    assert ops(after) == ["ReduceMean", "Transpose", "Neg"]


def test_shared_transpose_is_kept(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 3, 4, 5)))
    t = b.op("Transpose", x, perm=[0, 2, 3, 1])
    y = b.op("ReduceMean", t, b.const(np.asarray([1, 2], np.int64)), keepdims=0)
    after = check_pass(b.build([y, t]), sink_reduce, rng)
    assert ops(after) == ["Transpose", "ReduceMean"]
