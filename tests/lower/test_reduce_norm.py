"""Reductions, normalizations and the softmax family in loop IR, against onnxruntime."""

import numpy as np
import pytest

from tests.lower.lower_util import check_lowered

rng = np.random.default_rng(2)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


@pytest.mark.parametrize("op", REDUCE)
@pytest.mark.parametrize(("shape", "axes", "keepdims"), [((3, 40), [1], 1), ((5, 3, 4), [0, 2], 0), ((2, 3), [], 1)])
def test_reduce(op, shape, axes, keepdims):
    x = np.abs(f(*shape)) + 0.5 if op == "ReduceLogSum" else f(*shape)
    consts = {"a": i64(*axes)} if axes else None
    check_lowered(op, {"x": x}, {"keepdims": keepdims}, initializers=consts, input_names=["x", "a"] if axes else None,
                  rtol=1e-5, atol=1e-5)


def test_reduce_int_mean_truncates():
    check_lowered("ReduceMean", {"x": rng.integers(-9, 9, (3, 5)).astype(np.int32)}, {"keepdims": 0},
                  initializers={"a": i64(1)}, input_names=["x", "a"])


# (op, graph inputs, attributes, constant inputs, node input order, outputs)
CASES = [
    ("ArgMax", {"x": f(3, 6)}, {"axis": 1, "keepdims": 0}, None, None, 1),
    ("ArgMin", {"x": np.round(f(3, 6))}, {"axis": 0, "select_last_index": 1}, None, None, 1),
    ("CumSum", {"x": f(3, 4)}, {"exclusive": 1, "reverse": 1}, {"a": i64(1)}, ["x", "a"], 1),
    ("CumSum", {"x": f(3, 4)}, {}, {"a": i64(0)}, ["x", "a"], 1),
    ("TopK", {"x": f(3, 6)}, {"axis": 1}, {"k": i64(3)}, ["x", "k"], 2),
    ("TopK", {"x": np.round(f(4, 3))}, {"axis": 0, "largest": 0}, {"k": i64(2)}, ["x", "k"], 2),
    ("Softmax", {"x": f(2, 40)}, {}, None, None, 1),
    ("Softmax", {"x": f(3, 4, 5)}, {"axis": 1}, None, None, 1),
    ("LogSoftmax", {"x": f(2, 5)}, {}, None, None, 1),
    ("Hardmax", {"x": f(2, 5)}, {"axis": 0}, None, None, 1),
    ("LayerNormalization", {"x": f(2, 3, 40), "s": f(40), "b": f(40)}, {"epsilon": 1e-3}, None, None, 1),
    ("LayerNormalization", {"x": f(2, 3, 4), "s": f(3, 4)}, {"axis": 1}, None, None, 3),
    ("BatchNormalization", {"x": f(2, 3, 4), "s": f(3), "b": f(3), "m": f(3), "v": np.abs(f(3))}, {}, None, None, 1),
    ("InstanceNormalization", {"x": f(2, 3, 4, 5), "s": f(3), "b": f(3)}, {}, None, None, 1),
    ("GroupNormalization", {"x": f(2, 4, 3, 5), "s": f(4), "b": f(4)}, {"num_groups": 2}, None, None, 1),
    ("LpNormalization", {"x": f(3, 4)}, {"axis": 0, "p": 1}, None, None, 1),
    ("LpNormalization", {"x": f(3, 4)}, {}, None, None, 1),
    ("MeanVarianceNormalization", {"x": f(2, 3, 4, 5)}, {}, None, None, 1),
    ("LRN", {"x": f(1, 5, 3, 3)}, {"size": 3}, None, None, 1),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "consts", "names", "outputs"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_reductions_and_norms(op, inputs, attrs, consts, names, outputs):
    outs = ("y",) if outputs == 1 else tuple(f"y{i}" for i in range(outputs))
    check_lowered(op, inputs, attrs, outputs=outs, initializers=consts, input_names=names, rtol=1e-4, atol=1e-5)
