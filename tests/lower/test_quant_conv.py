"""ConvInteger with constant weights as the int8 implicit-GEMM kernel (`dotw` / `dot4`): exact int32 results
against onnx's reference (1x1, 3x3, strided, padded, dilated, grouped, per-channel weight zero points, int8
and uint8 operands), on the host, without AVX2 and in the loop evaluator; depthwise ones through the float32
depthwise kernel, exact too; the AVX-512 renderings checked in the LLVM IR; QLinearConv and a
`quantize_dynamic` CNN against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from aic.codegen.llvm import kernel_llvm
from aic.compiler.lower.quant_conv import packed_conv_weights
from aic.compiler.lower.sizes import SymbolRange
from aic.compiler.program import build_program
from aic.frontend.onnx import load_model
from aic.ir.loop import Program
from aic.ir.loop_eval import run_program
from aic.ir.loop_printer import kernel_text
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import aic

rng = np.random.default_rng(5)
RANGE = {np.uint8: (0, 256), np.int8: (-128, 128)}
ONNX_TYPE = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}
AVX512_VNNI = "llvm -mtriple=x86_64-unknown-linux-gnu -mcpu=icelake-server"


def conv_integer_model(x_shape, w, x_type, attrs, zw=None) -> onnx.ModelProto:
    """One ConvInteger of input x (`x_type`), constant weights `w`, activation zero point input zx."""
    inits, names = [numpy_helper.from_array(w, "w")], ["x", "w", "zx"]
    if zw is not None:
        inits.append(numpy_helper.from_array(np.asarray(zw).astype(w.dtype), "zw"))
        names.append("zw")
    graph = helper.make_graph(
        [helper.make_node("ConvInteger", names, ["y"], **attrs)], "qconv",
        [helper.make_tensor_value_info("x", ONNX_TYPE[x_type], list(x_shape)),
         helper.make_tensor_value_info("zx", ONNX_TYPE[x_type], [])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _case(x_shape, w_shape, x_type, w_type, attrs, zw=None):
    w = rng.integers(*RANGE[w_type], size=w_shape).astype(w_type)
    feeds = {"x": rng.integers(*RANGE[x_type], size=x_shape).astype(x_type),
             "zx": np.asarray(rng.integers(*RANGE[x_type]), x_type)}
    model = conv_integer_model(x_shape, w, x_type, attrs, zw)
    return model, feeds, ReferenceEvaluator(model).run(None, feeds)[0]


def _dot_calls(program: Program) -> int:
    return sum(kernel_text(k).count(" = dot") for k in program.kernels)


CASES = [  # x shape, w shape, activation type, weight type, attributes, weight zero point
    ((1, 8, 9, 9), (20, 8, 3, 3), np.uint8, np.int8, {"pads": [1, 1, 1, 1]}, None),  # row and column tails
    ((2, 5, 7, 6), (18, 5, 3, 3), np.int8, np.int8, {"pads": [1, 0, 2, 1], "strides": [2, 1]}, None),  # odd icg
    ((1, 16, 6, 6), (24, 16, 1, 1), np.uint8, np.int8, {}, 0),  # 1x1
    ((1, 6, 8, 8), (12, 3, 3, 3), np.uint8, np.uint8, {"group": 2, "pads": [1, 1, 1, 1]}, np.arange(12) % 5 + 120),
    ((1, 3, 11, 11), (17, 3, 3, 3), np.uint8, np.int8, {"strides": [2, 2], "dilations": [2, 2],
                                                        "auto_pad": "SAME_UPPER"}, 5),
    ((1, 4, 13), (8, 4, 5), np.uint8, np.int8, {"pads": [2, 2]}, None),  # 1-D
    # deep reductions over rows that are not whole vectors, or strided: position x channel tiles
    ((1, 64, 7, 7), (20, 64, 3, 3), np.int8, np.int8, {"pads": [1, 1, 1, 1]}, None),
    ((2, 61, 9, 8), (12, 61, 3, 3), np.uint8, np.uint8, {"pads": [1, 1, 0, 1], "strides": [2, 2]}, 130),
]


@pytest.mark.parametrize("x_shape,w_shape,x_type,w_type,attrs,zw", CASES)
def test_exact_on_host(x_shape, w_shape, x_type, w_type, attrs, zw):
    model, feeds, exact = _case(x_shape, w_shape, x_type, w_type, attrs, zw)
    assert _dot_calls(build_program(load_model(model), "llvm")) > 0
    np.testing.assert_array_equal(aic.compile(model).run(None, feeds)[0], exact)


@pytest.mark.parametrize("x_type,w_type,zw,attrs", [
    (np.int8, np.int8, None, {"pads": [1, 1, 1, 1]}),
    (np.uint8, np.uint8, np.arange(6) * 40 + 7, {"pads": [2, 2, 1, 2], "strides": [2, 2], "kernel_shape": [5, 5]}),
])
def test_depthwise_exact_through_float32(x_type, w_type, zw, attrs):
    k = attrs.get("kernel_shape", [3, 3])
    model, feeds, exact = _case((1, 6, 11, 10), (6, 1, *k), x_type, w_type, {"group": 6, **attrs}, zw)
    assert " fma(" in kernel_text(build_program(load_model(model), "llvm").kernels[0])  # the depthwise kernel
    np.testing.assert_array_equal(aic.compile(model).run(None, feeds)[0], exact)


def test_a_batch_range_shares_one_artifact():
    model, _, _ = _case((1, 6, 7, 7), (10, 6, 3, 3), np.uint8, np.int8, {"pads": [1, 1, 1, 1]})
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "n"
    assert _dot_calls(build_program(load_model(model), "llvm", symbols={"n": SymbolRange("n", 1, 3, 1)})) > 0
    module = aic.compile(model, shapes={"n": (1, 3)})
    for n in (1, 3):
        feeds = {"x": rng.integers(0, 256, (n, 6, 7, 7)).astype(np.uint8), "zx": np.asarray(9, np.uint8)}
        np.testing.assert_array_equal(module.run(None, feeds)[0], ReferenceEvaluator(model).run(None, feeds)[0])


def test_without_avx2_in_the_loop_evaluator_and_plain_nest_fallback():
    model, feeds, exact = _case((1, 5, 6, 6), (9, 5, 3, 3), np.int8, np.uint8, {"pads": [1, 1, 1, 1]}, 131)
    np.testing.assert_array_equal(aic.compile(model, target="llvm -mattr=-avx2").run(None, feeds)[0], exact)
    np.testing.assert_array_equal(run_program(build_program(load_model(model), "llvm"), feeds)[0], exact)
    weights = model.graph.initializer[0]
    model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.UINT8, list(weights.dims)))
    feeds["w"] = numpy_helper.to_array(weights)
    del model.graph.initializer[0]  # weights as an input: the plain nest
    assert _dot_calls(build_program(load_model(model), "llvm")) == 0
    np.testing.assert_array_equal(aic.compile(model).run(None, feeds)[0], exact)


@pytest.mark.parametrize("x_shape,w_shape,x_type", [
    ((1, 8, 6, 6), (32, 8, 3, 3), np.uint8),  # row tiles
    ((1, 64, 5, 5), (20, 64, 3, 3), np.int8),  # position tiles
])
def test_avx512_renderings(x_shape, w_shape, x_type):
    """`dot4` kernels: `vpdpbusd` in the LLVM IR, exact in the loop evaluator (this machine may lack AVX-512)."""
    model, feeds, exact = _case(x_shape, w_shape, x_type, np.int8, {"pads": [1, 1, 1, 1]})
    program = build_program(load_model(model), AVX512_VNNI)
    kernel = next(k for k in program.kernels if " = dot4(" in kernel_text(k))
    assert "llvm.x86.avx512.vpdpbusd.512" in kernel_llvm(kernel, AVX512_VNNI)
    np.testing.assert_array_equal(run_program(program, feeds)[0], exact)

def test_avx512_weight_zero_points_take_int16_pairs():
    model, _, _ = _case((1, 8, 6, 6), (32, 8, 3, 3), np.uint8, np.int8, {"pads": [1, 1, 1, 1]}, 3)
    program = build_program(load_model(model), AVX512_VNNI)  # a weight zero point: int16 pairs, folded in
    kernel = next(k for k in program.kernels if " = dotw(" in kernel_text(k))
    assert "llvm.x86.avx512.pmaddw.d.512" in kernel_llvm(kernel, AVX512_VNNI)


def test_packed_weights_layout():
    w = rng.integers(-128, 128, (6, 3, 2, 2)).astype(np.int8)
    zero = np.arange(6, dtype=np.int32)
    packed, sums = packed_conv_weights(w, zero, 2, 2, 4)  # 2 groups of 3 outputs, lanes of 2 channels
    assert packed.shape == (2, 1, 2, 2, 2, 4) and packed.dtype == np.int32
    pairs = packed.view(np.int16).reshape(2, 1, 2, 2, 2, 4, 2)  # [g, panel, lane, kh, kw, col, q]
    assert pairs[1, 0, 0, 1, 0, 2].tolist() == (w[5, 0:2, 1, 0].astype(int) - 5).tolist()
    assert pairs[0, 0, 1, 0, 1, 0].tolist() == [w[0, 2, 0, 1], 0]  # past icg: 0
    assert not pairs[:, :, :, :, :, 3].any()  # past ocg: 0
    np.testing.assert_array_equal(sums, (w.astype(np.int32) - zero[:, None, None, None]).reshape(6, -1).sum(1))
    quads = packed_conv_weights(w, np.zeros(6, np.int32), 1, 4, 8)[0].view(np.int8).reshape(1, 1, 1, 2, 2, 8, 4)
    assert quads[0, 0, 0, 1, 1, 4].tolist() == [*w[4, :, 1, 1], 0]


def _qlinear_conv_model(per_channel: bool) -> tuple[onnx.ModelProto, float]:
    oc, c = 24, 8
    w = rng.integers(-63, 64, (oc, c, 3, 3)).astype(np.int8)  # 7 bits: onnxruntime's AVX2 sums stay exact
    w_scale = (rng.random(oc) * 0.01 + 0.002).astype(np.float32) if per_channel else np.float32(0.004)
    y_scale = np.float32(0.05)
    inits = [numpy_helper.from_array(np.float32(0.02), "xs"), numpy_helper.from_array(np.uint8(120), "xz"),
             numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.asarray(w_scale), "ws"),
             numpy_helper.from_array(np.zeros(np.shape(w_scale), np.int8), "wz"),
             numpy_helper.from_array(y_scale, "ys"), numpy_helper.from_array(np.uint8(128), "yz"),
             numpy_helper.from_array(rng.integers(-2000, 2000, oc).astype(np.int32), "b")]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                            pads=[1, 1, 1, 1], strides=[2, 1])
    graph = helper.make_graph([node], "qlc", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, c, 10, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), float(y_scale)


@pytest.mark.parametrize("per_channel", [False, True])
def test_qlinear_conv_within_one_step_of_onnxruntime(per_channel):
    model, _ = _qlinear_conv_model(per_channel)
    assert _dot_calls(build_program(load_model(model), "llvm")) > 0
    feeds = {"x": rng.integers(0, 256, (1, 8, 10, 9)).astype(np.uint8)}
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = aic.compile(model).run(None, feeds)[0]
    assert np.abs(got.astype(int) - expected).max() <= 1  # one quantisation step: the last rounding may differ


def test_quantize_dynamic_cnn_matches_onnxruntime(tmp_path):
    quantization = pytest.importorskip("onnxruntime.quantization")
    nodes, inits, x, c = [], [], "x", 3
    for i, (oc, k, stride) in enumerate([(16, 3, 2), (24, 1, 1), (8, 3, 1)]):
        w = (rng.standard_normal((oc, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(rng.standard_normal(oc).astype(
            np.float32) * 0.1, f"b{i}")]
        nodes += [helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[k // 2] * 4, strides=[stride] * 2),
                  helper.make_node("Relu", [f"c{i}"], [y := f"r{i}" if i < 2 else "y"])]
        x, c = y, oc
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "f.onnx")
    quantization.quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", op_types_to_quantize=["Conv"],
                                  weight_type=quantization.QuantType.QUInt8)
    model = onnx.load(tmp_path / "q.onnx")
    assert sum(n.op_type == "ConvInteger" for n in model.graph.node) == 3
    assert _dot_calls(build_program(load_model(model), "llvm")) >= 3
    feeds = {"x": rng.standard_normal((1, 3, 12, 12)).astype(np.float32)}
    got = aic.compile(model).run(None, feeds)[0]
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
