"""Movement, indexing and generator lowerings, evaluated in loop IR, against onnxruntime."""

import numpy as np
import pytest
from onnx import numpy_helper

from tests.lower.lower_util import check_lowered

rng = np.random.default_rng(1)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


# (op, graph inputs, attributes, constant inputs, node input order, outputs)
CASES = [
    ("Transpose", {"x": f(2, 3, 4)}, {"perm": [2, 0, 1]}, None, None, 1),
    ("Slice", {"x": f(5, 6)}, {}, {"s": i64(1, -1), "e": i64(4, -6), "a": i64(0, 1), "st": i64(2, -2)},
     ["x", "s", "e", "a", "st"], 1),
    ("Concat", {"a": f(2, 3), "b": f(2, 5), "c": f(2, 1)}, {"axis": 1}, None, None, 1),
    ("Split", {"x": f(5, 6)}, {"axis": 1, "num_outputs": 3}, None, None, 3),
    ("Split", {"x": f(5, 6)}, {"axis": 0}, {"s": i64(1, 4)}, ["x", "s"], 2),
    ("Expand", {"x": f(3, 1)}, {}, {"s": i64(2, 3, 4)}, ["x", "s"], 1),
    ("Tile", {"x": f(2, 3)}, {}, {"r": i64(2, 2)}, ["x", "r"], 1),
    ("Pad", {"x": f(3, 4)}, {"mode": "constant"}, {"p": i64(1, 2, 2, -1), "v": np.array(1.5, np.float32)},
     ["x", "p", "v"], 1),
    ("Pad", {"x": f(3, 4)}, {"mode": "reflect"}, {"p": i64(1, 2, 2, 1)}, ["x", "p"], 1),
    ("Pad", {"x": f(3, 4)}, {"mode": "edge"}, {"p": i64(1, 2, 2, 1)}, ["x", "p"], 1),
    ("Pad", {"x": f(3, 4)}, {"mode": "wrap"}, {"p": i64(1, 2, 2, 1)}, ["x", "p"], 1),
    ("DepthToSpace", {"x": f(1, 8, 2, 3)}, {"blocksize": 2, "mode": "DCR"}, None, None, 1),
    ("DepthToSpace", {"x": f(1, 8, 2, 3)}, {"blocksize": 2, "mode": "CRD"}, None, None, 1),
    ("SpaceToDepth", {"x": f(1, 2, 4, 6)}, {"blocksize": 2}, None, None, 1),
    ("CumSum", {"x": f(3, 4), "a": np.array(-1, np.int32)}, {}, None, None, 1),  # axis known at run time only
    ("Trilu", {"x": f(2, 4, 5)}, {"upper": 0}, {"k": i64(1)}, ["x", "k"], 1),
    ("ReverseSequence", {"x": f(4, 3, 2), "l": i64(1, 4, 2)}, {"batch_axis": 1, "time_axis": 0}, None, None, 1),
    ("Reshape", {"x": f(2, 3, 4)}, {}, {"s": i64(4, -1)}, ["x", "s"], 1),
    ("Gather", {"x": f(5, 4), "i": i64(0, -1, 3)}, {"axis": 0}, None, None, 1),
    ("Gather", {"x": f(5, 4), "i": np.array([[1, 2], [3, -4]], np.int32)}, {"axis": 1}, None, None, 1),
    ("GatherElements", {"x": f(3, 4), "i": rng.integers(-3, 3, (2, 4))}, {"axis": 0}, None, None, 1),
    ("GatherND", {"x": f(2, 3, 4), "i": i64(0, 1, 1, 2).reshape(2, 2)}, {}, None, None, 1),
    ("GatherND", {"x": f(2, 3, 4), "i": i64(1, 2).reshape(2, 1)}, {"batch_dims": 1}, None, None, 1),
    ("ScatterElements", {"x": f(3, 4), "i": i64(0, 2, 1, 1).reshape(1, 4), "u": f(1, 4)},
     {"axis": 0, "reduction": "add"}, None, None, 1),
    ("ScatterND", {"x": f(4, 3), "i": i64(1, 3, 1).reshape(3, 1), "u": f(3, 3)}, {"reduction": "add"}, None, None, 1),
    ("ScatterND", {"x": f(4, 3), "i": i64(1, 2).reshape(1, 2), "u": f(1)}, {}, None, None, 1),
    ("OneHot", {"i": i64(0, 2, -1, 5)}, {"axis": -1}, {"d": i64(4), "v": np.array([0.5, 2.0], np.float32)},
     ["i", "d", "v"], 1),
    ("Compress", {"x": f(3, 4)}, {"axis": 1}, {"c": np.array([True, False, True, True])}, ["x", "c"], 1),
    ("Compress", {"x": f(2, 3)}, {}, {"c": np.array([False, True, True, False, True])}, ["x", "c"], 1),
    ("Range", {}, {}, {"a": np.array(1.0, np.float32), "b": np.array(7.0, np.float32), "c": np.array(1.5, np.float32)},
     ["a", "b", "c"], 1),
    ("Range", {}, {}, {"a": np.array(3, np.int32), "b": np.array(-5, np.int32), "c": np.array(-2, np.int32)},
     ["a", "b", "c"], 1),
    ("EyeLike", {"x": f(3, 5)}, {"k": 1}, None, None, 1),
    ("ConstantOfShape", {}, {"value": numpy_helper.from_array(np.array([2], np.int32))}, {"s": i64(2, 3)}, ["s"], 1),
    ("Shape", {"x": f(3, 5)}, {"start": 1}, None, None, 1),
    ("Size", {"x": f(3, 5)}, {}, None, None, 1),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "consts", "names", "outputs"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_movement_and_indexing(op, inputs, attrs, consts, names, outputs):
    outs = ("y",) if outputs == 1 else tuple(f"y{i}" for i in range(outputs))
    check_lowered(op, inputs, attrs, outputs=outs, initializers=consts, input_names=names)


def test_views_are_free_and_gathers_fuse():
    """Reshape is a view (no kernel); a Gather feeding an Add fuses into one kernel."""
    program = check_lowered("Reshape", {"x": f(2, 3, 4)}, {}, initializers={"s": i64(6, 4)}, input_names=["x", "s"])
    assert len(program.calls) == 1  # the only kernel copies the graph input to the output
