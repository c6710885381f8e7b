"""Transposes through reductions (into their axes), Pad and Concat."""

from __future__ import annotations

import numpy as np
import pytest
from aic.compiler.passes.simplify_chains import simplify_chains
from aic.compiler.passes.sink_layout import sink_layout
from aic.compiler.passes.sink_transpose import sink_transpose
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
    after = check_pass(_graph([0, 2, 3, 1], [1, 2], 0), sink_transpose, rng)
    assert ops(after) == ["ReduceMean", "Neg"]


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax"])
def test_reordered_kept_dims_keep_a_smaller_transpose(rng, op):
    after = check_pass(_graph([0, 3, 2, 1], [0], 0, op), sink_transpose, rng)
    assert ops(after) == [op, "Transpose", "Neg"]


def test_keepdims_moves_the_transpose_after(rng):
    after = check_pass(_graph([0, 3, 2, 1], [1], 1), sink_transpose, rng)
    assert ops(after) == ["ReduceMean", "Transpose", "Neg"]



def test_transpose_of_a_reshape_moving_unit_dims_is_a_reshape(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 6)))
    r = b.op("Reshape", x, b.const(np.asarray([2, 1, 1, 6], np.int64)))
    graph = b.build([b.op("Neg", b.op("Transpose", r, perm=[0, 3, 1, 2]))])
    after = check_pass(graph, lambda g: simplify_chains(sink_transpose(g)), rng)
    assert ops(after) == ["Reshape", "Neg"]


def test_reduction_stops_reading_a_shared_transpose(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 3, 4, 5)))
    t = b.op("Transpose", x, perm=[0, 2, 3, 1])
    y = b.op("ReduceMean", t, b.const(np.asarray([1, 2], np.int64)), keepdims=0)
    after = check_pass(b.build([y, t]), sink_transpose, rng)
    assert ops(after) == ["Transpose", "ReduceMean"]


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_transpose_sinks_through_pad_and_cancels(rng, mode):
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, (2, 3, 4, 5)))
    t = b.op("Transpose", x, perm=[0, 2, 3, 1])
    pads = b.const(np.asarray([0, 1, 2, 0, 0, 2, 1, 0], np.int64))
    padded = b.op("Pad", t, pads, mode=mode)
    graph = b.build([b.op("Transpose", padded, perm=[0, 3, 1, 2])])
    after = check_pass(graph, lambda g: simplify_chains(sink_transpose(g)), rng)
    assert ops(after) == ["Pad"]


def test_channel_concat_of_transposes(rng):
    b = GraphBuilder()
    x, y = b.input("x", TensorType(F32, (1, 3, 4, 5))), b.input("y", TensorType(F32, (1, 2, 4, 5)))
    to_nhwc = [0, 2, 3, 1]
    cat = b.op("Concat", b.op("Transpose", x, perm=to_nhwc), b.op("Transpose", y, perm=to_nhwc), axis=-1)
    graph = b.build([b.op("Transpose", cat, perm=[0, 3, 1, 2])])
    after = check_pass(graph, lambda g: simplify_chains(sink_transpose(g)), rng)
    assert ops(after) == ["Concat"]


def test_shared_transpose_is_copied_when_every_reader_moves_it(rng):
    """DenseNet: the concatenated features feed the next batch norm and the next concat."""
    b = GraphBuilder()
    x, y = b.input("x", TensorType(F32, (1, 3, 4, 5))), b.input("y", TensorType(F32, (1, 2, 4, 5)))
    to_nhwc, to_nchw = [0, 2, 3, 1], [0, 3, 1, 2]
    t = b.op("Transpose", x, perm=to_nhwc)
    scaled = b.op("Mul", t, b.const(rng.standard_normal(3).astype(np.float32)))
    cat = b.op("Concat", t, b.op("Transpose", y, perm=to_nhwc), axis=3)
    graph = b.build([b.op("Transpose", scaled, perm=to_nchw), b.op("Transpose", cat, perm=to_nchw)])
    after = check_pass(graph, lambda g: simplify_chains(sink_layout(sink_transpose(g))), rng)
    assert sorted(ops(after)) == ["Concat", "Mul"]

