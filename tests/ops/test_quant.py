"""Quantization ops (decomposed by the frontend) against onnxruntime, bit for bit:
QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearMatMul, QLinearConv."""

import numpy as np
import onnx
import pytest
from aic.frontend.onnx import load_model
from aic.ir import run_graph
from onnx import helper

from tests.onnx_util import assert_close, check_node, node_model, run_interpreter, run_ort
from tests.ops.reference_check import check_reference

F32 = np.float32
QTYPES = [np.uint8, np.int8, np.uint16, np.int16]
TIES = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49, 5.0, -7.0, 1e9, -1e9, 0.0, -0.0], F32)  # halves at scale 1, 2


def _zp(dtype, shape=(), seed=0):
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min // 4, info.max // 4 + 1, shape).astype(dtype)


@pytest.mark.parametrize("dtype", QTYPES, ids=lambda d: np.dtype(d).name)
def test_quantize_per_tensor(rng, dtype):
    x = np.concatenate([TIES, rng.standard_normal(30).astype(F32) * 300])
    check_node("QuantizeLinear", {"x": x}, opset=21, initializers={"s": np.array(1.0, F32), "z": _zp(dtype)})
    check_node("QuantizeLinear", {"x": x}, opset=21, initializers={"s": np.array([2.0], F32), "z": _zp(dtype, (1,))})


def test_quantize_default_type_and_opset10(rng):
    x = rng.standard_normal((3, 4)).astype(F32) * 100
    check_node("QuantizeLinear", {"x": x}, opset=21, initializers={"s": np.array(0.7, F32)})
    check_node("QuantizeLinear", {"x": x}, opset=10, initializers={"s": np.array(0.7, F32), "z": np.array(9, np.int8)})
    check_node("QuantizeLinear", {"x": x}, {"output_dtype": onnx.TensorProto.INT8}, opset=21,
               initializers={"s": np.array(0.7, F32)})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_per_axis(rng, axis):
    x = rng.standard_normal((3, 4, 5)).astype(F32) * 50
    n = x.shape[axis]
    inits = {"s": rng.uniform(0.1, 2, n).astype(F32), "z": _zp(np.int8, (n,))}
    check_node("QuantizeLinear", {"x": x}, {"axis": axis}, opset=13, initializers=inits)
    check_node("DequantizeLinear", {"x": _zp(np.uint8, x.shape, 1)}, {"axis": axis}, opset=13,
               initializers={"s": inits["s"], "z": _zp(np.uint8, (n,))})


@pytest.mark.parametrize(("shape", "axis", "block"), [((4, 6), 1, 2), ((5, 3), 0, 2), ((2, 7, 3), 1, 3)])
def test_blocked(rng, shape, axis, block):
    x = rng.standard_normal(shape).astype(F32) * 20
    scale_shape = list(shape)
    scale_shape[axis] = -(-shape[axis] // block)
    scale = rng.uniform(0.1, 1, scale_shape).astype(F32)
    attrs = {"axis": axis, "block_size": block}
    check_node("QuantizeLinear", {"x": x}, attrs, opset=21, initializers={"s": scale, "z": _zp(np.uint8, scale_shape)})
    inits = {"s": scale, "z": _zp(np.int16, scale_shape)}
    check_node("DequantizeLinear", {"x": _zp(np.int16, shape, 2)}, attrs, opset=21, initializers=inits)


def test_blocked_symbolic_axis(rng):
    """A blocked axis of unknown length repeats the scales with shape arithmetic."""
    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"], axis=0, block_size=2)
    graph = helper.make_graph(
        [node], "q", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 2]),
                      helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, ["m", 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    feeds = {"x": rng.standard_normal((5, 2)).astype(F32) * 9, "s": rng.uniform(0.1, 1, (3, 2)).astype(F32)}
    assert_close(run_graph(load_model(model), feeds)[0], run_ort(model, feeds)[0])


def test_quantize_float16():
    x = (np.arange(-40, 40, dtype=F32) * 0.37).astype(np.float16)
    check_node("QuantizeLinear", {"x": x}, opset=21, initializers={"s": np.array(0.3, np.float16),
                                                                   "z": np.array(-3, np.int8)})


def test_quantize_precision_attribute():
    x = np.arange(-20, 20, dtype=F32) * 0.1251
    inits = {"s": np.array(0.05, np.float16), "z": np.array(4, np.uint8)}
    check_reference("QuantizeLinear", {"x": x}, {"precision": onnx.TensorProto.FLOAT16}, opset=23, initializers=inits)


@pytest.mark.parametrize("dtype", [*QTYPES, np.int32], ids=lambda d: np.dtype(d).name)
def test_dequantize_per_tensor(rng, dtype):
    x = _zp(dtype, (4, 5), 3) * 3
    inits = {"s": np.array(0.37, F32)}
    if dtype != np.int32:
        inits["z"] = _zp(dtype)
    check_node("DequantizeLinear", {"x": x}, opset=21, initializers=inits)


def test_dequantize_float16_scale(rng):
    x = _zp(np.uint8, (3, 4))
    check_node("DequantizeLinear", {"x": x}, opset=21, initializers={"s": np.array(0.013, np.float16),
                                                                     "z": np.array(7, np.uint8)})
    check_reference("DequantizeLinear", {"x": x}, {"output_dtype": onnx.TensorProto.FLOAT}, opset=23,
                    initializers={"s": np.array(0.013, np.float16), "z": np.array(7, np.uint8)})


@pytest.mark.parametrize("case", ["random", "negative", "positive", "zeros", "ties"])
def test_dynamic_quantize(rng, case):
    x = {
        "random": rng.standard_normal(20).astype(F32) * 3,
        "negative": -rng.uniform(0.5, 4, (3, 4)).astype(F32),
        "positive": rng.uniform(0.5, 4, (2, 3, 2)).astype(F32),
        "zeros": np.zeros(6, F32),
        "ties": np.array([-1.0, 0.0, 254.0, 127.5, 0.5, 1.5], F32),
    }[case]
    check_node("DynamicQuantizeLinear", {"x": x}, outputs=("y", "scale", "zp"), opset=11, rtol=0, atol=0)


def _qmatmul_inputs(rng, a_shape, b_shape, a_type, b_type, y_type, scale_type=F32):
    a, b = _zp(a_type, a_shape, 1) * 3, _zp(b_type, b_shape, 2) * 3
    scales = {k: np.array([v], scale_type) for k, v in (("as", 0.031), ("bs", 0.017), ("ys", 0.05))}
    return {"a": a}, {"as": scales["as"], "az": _zp(a_type, (1,), 3), "b": b, "bs": scales["bs"],
                      "bz": _zp(b_type, (1,), 4), "ys": scales["ys"], "yz": _zp(y_type, (1,), 5)}


@pytest.mark.parametrize(("a_shape", "b_shape"), [((3, 5), (5, 4)), ((2, 3, 5), (2, 5, 4)), ((2, 3, 5), (5, 6))])
@pytest.mark.parametrize("types", [(np.uint8, np.uint8, np.uint8), (np.int8, np.int8, np.int8),
                                   (np.uint8, np.int8, np.uint8)], ids=["u8", "i8", "mixed"])
def test_qlinear_matmul(rng, a_shape, b_shape, types):
    inputs, inits = _qmatmul_inputs(rng, a_shape, b_shape, *types)
    check_node("QLinearMatMul", inputs, opset=10, initializers=inits, rtol=0, atol=0)


def test_qlinear_matmul_float16_scales(rng):
    inputs, inits = _qmatmul_inputs(rng, (3, 8), (8, 2), np.uint8, np.uint8, np.uint8, np.float16)
    check_node("QLinearMatMul", inputs, opset=21, initializers=inits, rtol=0, atol=0)


def test_qlinear_matmul_per_row_and_column(rng):
    """Neither onnxruntime nor onnx's reference takes per-row and per-column scales: a numpy oracle."""
    a, b = _zp(np.int8, (3, 5), 1), _zp(np.int8, (5, 4), 2)
    a_zp, b_zp, y_zp = _zp(np.int8, (3,), 3), _zp(np.int8, (4,), 4), np.array(-7, np.int8)
    a_scale, b_scale, y_scale = np.array([0.2, 0.3, 0.5], F32), np.array([0.1, 0.2, 0.3, 0.4], F32), np.array(9, F32)
    inits = {"as": a_scale, "az": a_zp, "b": b, "bs": b_scale, "bz": b_zp, "ys": y_scale, "yz": y_zp}
    model = node_model("QLinearMatMul", {"a": a}, ("y",), None, 21, inits)
    acc = (a.astype(np.int64) - a_zp[:, None]) @ (b.astype(np.int64) - b_zp)
    expected = np.clip(np.rint(acc * (a_scale[:, None] * b_scale / y_scale)) + y_zp, -128, 127).astype(np.int8)
    assert_close(run_interpreter(model, {"a": a})[0], expected)


@pytest.mark.parametrize(
    "attrs",
    [{}, {"pads": [1, 1, 1, 1], "strides": [2, 2]}, {"group": 2, "dilations": [2, 1]}, {"auto_pad": "SAME_UPPER"}],
)
@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_conv(rng, attrs, per_channel):
    x = _zp(np.uint8, (1, 4, 7, 6), 1) * 3
    w = _zp(np.int8, (6, 4 // attrs.get("group", 1), 3, 3), 2)
    channels = 6 if per_channel else 1
    inits = {"xs": np.array(0.02, F32), "xz": np.array(100, np.uint8), "w": w,
             "ws": rng.uniform(0.005, 0.02, channels).astype(F32), "wz": np.zeros(channels, np.int8),
             "ys": np.array(0.15, F32), "yz": np.array(120, np.uint8), "b": _zp(np.int32, (6,), 3)}
    check_node("QLinearConv", {"x": x}, attrs, opset=10, initializers=inits, rtol=0, atol=0,
               input_names=["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"])
