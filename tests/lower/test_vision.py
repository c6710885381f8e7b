"""Sampling, scattering and bit-level ops in loop IR, against onnxruntime."""

import numpy as np
import pytest

from tests.lower.lower_util import check_lowered

rng = np.random.default_rng(8)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def grid(*shape: int, reach: float) -> np.ndarray:
    return (rng.random(shape) * 2 * reach - reach).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


BOXES = np.array([[1, 1, 5, 6], [0, 2, 7, 3.5]], np.float32)

# (op, graph inputs, attributes, constant inputs, node input order, opset)
CASES = [
    ("GridSample", {"x": f(1, 2, 4, 5), "g": grid(1, 3, 3, 2, reach=1.2)}, {"mode": "linear"}, None, None, 20),
    ("GridSample", {"x": f(1, 2, 4, 5), "g": grid(1, 3, 3, 2, reach=1.2)},
     {"mode": "nearest", "padding_mode": "border", "align_corners": 1}, None, None, 20),
    ("GridSample", {"x": f(1, 2, 4, 5), "g": grid(1, 3, 3, 2, reach=1.5)},
     {"mode": "cubic", "padding_mode": "reflection"}, None, None, 20),
    ("DeformConv", {"x": f(1, 2, 5, 5), "w": f(3, 2, 2, 2), "o": f(1, 8, 4, 4)}, {}, None, None, 19),
    ("DeformConv", {"x": f(1, 4, 5, 5), "w": f(2, 2, 3, 3), "o": f(1, 36, 5, 5), "b": f(2), "m": f(1, 18, 5, 5)},
     {"group": 2, "offset_group": 2, "pads": [1, 1, 1, 1]}, None, None, 19),
    ("RoiAlign", {"x": f(1, 2, 8, 8), "r": BOXES, "b": i64(0, 0)},
     {"output_height": 2, "output_width": 3, "sampling_ratio": 2}, None, None, 16),
    ("RoiAlign", {"x": f(1, 2, 8, 8), "r": BOXES, "b": i64(0, 0)},
     {"output_height": 2, "output_width": 2, "coordinate_transformation_mode": "output_half_pixel"}, None, None, 16),
    ("Col2Im", {"x": f(1, 8, 9)}, {}, {"i": i64(4, 4), "b": i64(2, 2)}, ["x", "i", "b"], 18),
    ("Col2Im", {"x": f(1, 8, 9)}, {"strides": [2, 2], "pads": [1, 1, 1, 1]}, {"i": i64(5, 5), "b": i64(2, 2)},
     ["x", "i", "b"], 18),
    ("MaxUnpool", {"x": f(1, 1, 2, 2), "i": i64(0, 3, 9, 14).reshape(1, 1, 2, 2)},
     {"kernel_shape": [2, 2], "strides": [2, 2]}, None, None, 11),
    ("CumProd", {"x": f(3, 4)}, {"exclusive": 1}, {"a": i64(1)}, ["x", "a"], 26),
    ("BitCast", {"x": f(3, 4)}, {"to": 6}, None, None, 26),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "consts", "names", "opset"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_vision(op, inputs, attrs, consts, names, opset):
    check_lowered(op, inputs, attrs, opset=opset, initializers=consts, input_names=names, rtol=1e-4, atol=1e-5)
