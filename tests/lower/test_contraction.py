"""Matrix products, convolutions, pools, Resize and the other window ops in loop IR, against onnxruntime."""

import numpy as np
import pytest
from aic.ir.loop import Interleave, Store
from aic.ir.loop_tools import stmts_of
from onnx import helper

from tests.lower.lower_util import check_lowered
from tests.lower.test_compiled_ops import check_compiled
from tests.onnx_util import graph_model

rng = np.random.default_rng(3)


def f(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i8(*shape: int) -> np.ndarray:
    return rng.integers(-5, 5, shape).astype(np.int8)


# (op, graph inputs, attributes, constant inputs, node input order)
CASES = [
    ("MatMul", {"a": f(7, 5)}, {}, {"b": f(5, 35)}, ["a", "b"]),  # packed constant, row and column tails
    ("MatMul", {"a": f(13, 600)}, {}, {"b": f(600, 37)}, ["a", "b"]),  # K blocks of 200, rows packed in strips
    ("Gemm", {"a": f(520, 9)}, {"transA": 1}, {"b": f(520, 20), "c": f(20)}, ["a", "b", "c"]),  # K blocks of 130
    ("Gemm", {"a": f(1, 300)}, {"transB": 1}, {"b": f(50, 300)}, ["a", "b"]),  # one row: 4x24 tile, K blocks of 150
    ("MatMul", {"a": f(2, 3, 7, 5), "b": f(3, 5, 9)}, {}, None, None),  # broadcast batches, activation operand
    ("MatMul", {"a": f(2, 1, 13, 40)}, {}, {"b": f(40, 21)}, ["a", "b"]),  # one product over 26 rows
    ("MatMul", {"a": f(5), "b": f(2, 5, 4)}, {}, None, None),  # 1-D left operand
    ("MatMul", {"a": f(3, 5)}, {}, {"b": f(5)}, ["a", "b"]),  # 1-D right operand
    ("MatMul", {"a": f(4, 6).astype(np.float64), "b": f(6, 3).astype(np.float64)}, {}, None, None),
    ("MatMul", {"a": rng.integers(-5, 5, (4, 5)).astype(np.int32), "b": rng.integers(-5, 5, (5, 2)).astype(np.int32)},
     {}, None, None),
    ("Gemm", {"a": f(5, 7)}, {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, {"b": f(35, 5), "c": f(35)},
     ["a", "b", "c"]),
    ("Gemm", {"a": f(3, 4), "b": f(4, 6), "c": f(3, 1)}, {}, None, None),
    ("Gemm", {"a": f(3, 4), "b": f(6, 4)}, {"transB": 1}, None, None),  # strided operand, scalar fallback
    ("Einsum", {"a": f(2, 3, 4), "b": f(2, 4, 5)}, {"equation": "bij,bjk->bik"}, None, None),
    ("Einsum", {"a": f(3, 3)}, {"equation": "ii->i"}, None, None),
    ("Einsum", {"a": f(2, 3, 4)}, {"equation": "...ij->...ji"}, None, None),
    ("MatMulInteger", {"a": i8(3, 4), "b": i8(4, 5), "za": np.array(1, np.int8), "zb": np.array(2, np.int8)}, {},
     None, None),
    ("Conv", {"x": f(1, 4, 7, 6)}, {"pads": [1, 1, 1, 1]}, {"w": f(40, 4, 3, 3), "b": f(40)}, ["x", "w", "b"]),
    ("Conv", {"x": f(2, 4, 7, 6)}, {"group": 2, "strides": [2, 1], "pads": [0, 1, 2, 1], "dilations": [1, 2]},
     {"w": f(34, 2, 3, 3)}, ["x", "w"]),
    ("Conv", {"x": f(1, 4, 7, 6)}, {"group": 4, "pads": [1, 1, 1, 1]}, {"w": f(4, 1, 3, 3), "b": f(4)},
     ["x", "w", "b"]),  # depthwise
    ("Conv", {"x": f(1, 4, 7, 6)}, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, {"w": f(8, 4, 3, 3)}, ["x", "w"]),
    ("Conv", {"x": f(1, 3, 9), "w": f(5, 3, 2)}, {"strides": [2]}, None, None),  # 1-D, weights as an input
    ("Conv", {"x": f(1, 4, 34, 9)}, {"strides": [2, 1]}, {"w": f(6, 4, 1, 1)}, ["x", "w"]),  # strided 1x1
    ("Conv", {"x": f(1, 2, 3, 4, 4)}, {"pads": [0, 1, 1, 0, 1, 1]}, {"w": f(16, 2, 2, 3, 3)}, ["x", "w"]),  # 3-D
    ("ConvTranspose", {"x": f(1, 4, 5, 4)}, {"strides": [2, 2], "pads": [1, 0, 1, 1], "output_padding": [1, 0]},
     {"w": f(4, 3, 3, 3), "b": f(3)}, ["x", "w", "b"]),
    ("ConvTranspose", {"x": f(1, 2, 3, 3)}, {"strides": [2, 2], "output_shape": [6, 7], "group": 2},
     {"w": f(2, 2, 3, 3)}, ["x", "w"]),
    ("ConvInteger", {"x": rng.integers(0, 9, (1, 2, 4, 4)).astype(np.uint8)}, {"pads": [1, 1, 1, 1]},
     {"w": rng.integers(0, 9, (3, 2, 2, 2)).astype(np.uint8), "xz": np.array(3, np.uint8)}, ["x", "w", "xz"]),
    ("MaxPool", {"x": f(1, 4, 7, 6)}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, None, None),
    ("MaxPool", {"x": f(1, 2, 5, 5)}, {"kernel_shape": [2, 2], "ceil_mode": 1, "strides": [2, 2], "dilations": [1, 2]},
     None, None),
    ("AveragePool", {"x": f(1, 4, 7, 6)}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                            "ceil_mode": 1}, None, None),
    ("AveragePool", {"x": f(1, 4, 7, 6)}, {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 1, 1, 1],
                                            "count_include_pad": 1}, None, None),
    ("LpPool", {"x": f(1, 4, 7, 6)}, {"kernel_shape": [2, 2], "p": 3}, None, None),
    ("GlobalAveragePool", {"x": f(2, 3, 7, 6)}, {}, None, None),
    ("GlobalMaxPool", {"x": f(2, 3, 7, 6)}, {}, None, None),
    ("GlobalLpPool", {"x": f(2, 3, 7, 6)}, {}, None, None),
    ("Det", {"x": f(2, 4, 4)}, {}, None, None),
    ("MaxRoiPool", {"x": f(1, 2, 6, 6), "r": np.array([[0, 0, 0, 3, 4], [0, 1, 2, 5, 5]], np.float32)},
     {"pooled_shape": [2, 2]}, None, None),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "consts", "names"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_window_and_contraction(op, inputs, attrs, consts, names):
    check_lowered(op, inputs, attrs, initializers=consts, input_names=names, rtol=1e-4, atol=1e-5)


def test_max_pool_indices():
    check_lowered("MaxPool", {"x": f(1, 2, 5, 4)}, {"kernel_shape": [2, 2], "storage_order": 1}, outputs=("y", "i"))


RESIZE = [
    ({"mode": "linear"}, [1, 1, 2, 1.5]),
    ({"mode": "nearest", "nearest_mode": "floor", "coordinate_transformation_mode": "asymmetric"}, [1, 1, 2, 0.5]),
    ({"mode": "cubic", "exclude_outside": 1}, [1, 1, 0.5, 2]),
    ({"mode": "linear", "antialias": 1}, [1, 1, 0.5, 0.75]),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 1.5, 2]),
]


@pytest.mark.parametrize(("attrs", "scales"), RESIZE)
def test_resize(attrs, scales):
    consts = {"r": np.array([], np.float32), "s": np.array(scales, np.float32)}
    check_lowered("Resize", {"x": f(1, 2, 4, 4)}, attrs, opset=19, initializers=consts, input_names=["x", "r", "s"],
                  rtol=1e-4, atol=1e-5)


UPSAMPLE = [
    ({"mode": "linear"}, [1, 1, 2, 2], True),  # half_pixel: phases of weights 0.25 / 0.75
    ({"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, [1, 1, 1, 3], True),
    ({"mode": "nearest"}, [1, 1, 2, 2], True),
    ({"mode": "cubic"}, [1, 1, 1, 4], True),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 2, 2], False),  # not periodic
    ({"mode": "linear"}, [1, 1, 2, 1.5], False),  # not an integer factor
]


@pytest.mark.parametrize(("attrs", "scales", "interleaved"), UPSAMPLE)
def test_resize_upsampling_rows(attrs, scales, interleaved):
    """A Resize that ends its kernel and upsamples its last axis by an integer factor writes each row's interior as
    its phases interleaved (one vector store for all of them), the edges element by element; the loop evaluator and
    the compiled kernel, with a fused Relu, both match onnxruntime."""
    x = f(1, 3, 5, 37)
    consts = {"r": np.array([], np.float32), "s": np.array(scales, np.float32)}
    program = check_lowered("Resize", {"x": x}, attrs, opset=19, initializers=consts, input_names=["x", "r", "s"],
                            rtol=1e-4, atol=1e-5)
    stores = [s for k in program.kernels for s in stmts_of(k.body) if isinstance(s, Store)]
    assert any(isinstance(s.value, Interleave) for s in stores) == interleaved
    nodes = [helper.make_node("Resize", ["x", "r", "s"], ["u"], **attrs), helper.make_node("Relu", ["u"], ["y"])]
    check_compiled(graph_model(nodes, {"x": x}, ["y"], consts), {"x": x}, rtol=1e-4, atol=1e-5)


def test_resize_to_sizes_crop_and_resize():
    consts = {"r": np.array([0, 0, 0.1, 0.2, 1, 1, 0.9, 1.1], np.float32), "s": np.array([], np.float32),
              "z": np.array([1, 2, 3, 5], np.int64)}
    check_lowered("Resize", {"x": f(1, 2, 4, 4)}, {"mode": "linear", "coordinate_transformation_mode":
                                                  "tf_crop_and_resize", "extrapolation_value": 9.0},
                  opset=19, initializers=consts, input_names=["x", "r", "s", "z"], rtol=1e-4, atol=1e-5)
