"""MatMulInteger with constant int8 weights as the int8 micro-kernel (`dot2` / `dot4`): exact int32
results against an int64 numpy reference on the host, without AVX2 (plain LLVM IR) and in the loop
evaluator; the AVX-512 renderings (VNNI `vpdpbusd`, and without VNNI) checked in the LLVM IR, as this
machine may not run them; an MLP quantized by onnxruntime's `quantize_dynamic` against onnxruntime."""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
import onnx
import pytest
from aic.codegen.llvm import kernel_llvm
from aic.codegen.llvm_machine import target_machine
from aic.codegen.target import Target
from aic.compiler.kernel_table import kernel_flops
from aic.compiler.lower.quant_matmul import packed_weights, packed_words
from aic.compiler.program import build_program
from aic.frontend.onnx import load_model
from aic.ir.loop import Program
from aic.ir.loop_eval import run_program
from aic.ir.loop_printer import kernel_text
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import aic

rng = np.random.default_rng(7)
RANGE = {np.uint8: (0, 256), np.int8: (-128, 128)}
ONNX_TYPE = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}
AVX512_VNNI = "llvm -mtriple=x86_64-unknown-linux-gnu -mcpu=icelake-server"
AVX512_NO_VNNI = "llvm -mtriple=x86_64-unknown-linux-gnu -mcpu=skylake-avx512"
AVX2 = "llvm -mtriple=x86_64-unknown-linux-gnu -mcpu=haswell"


def _model(a_shape, w, a_type, zb=None) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(w, "w")]
    names = ["a", "w", "za"]
    if zb is not None:
        inits.append(numpy_helper.from_array(np.asarray(zb).astype(w.dtype), "zb"))
        names.append("zb")
    out_shape = [*a_shape[:-1], w.shape[1]]
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", names, ["y"])], "qmm",
        [helper.make_tensor_value_info("a", ONNX_TYPE[a_type], list(a_shape)),
         helper.make_tensor_value_info("za", ONNX_TYPE[a_type], [])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, out_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _case(a_shape, k_n, a_type, w_type, zb=None):
    lo, hi = RANGE[a_type]
    w = rng.integers(*RANGE[w_type], size=k_n).astype(w_type)
    feeds = {"a": rng.integers(lo, hi, a_shape).astype(a_type), "za": np.asarray(rng.integers(lo, hi), a_type)}
    exact = (feeds["a"].astype(np.int64) - int(feeds["za"])) @ (w.astype(np.int64) - (0 if zb is None else zb))
    return _model(a_shape, w, a_type, zb), feeds, exact.astype(np.int32)


def _dot_calls(program: Program) -> int:
    return sum(kernel_text(k).count(" = dot") for k in program.kernels)


CASES = [  # activations shape, weights [K, N], activation type, weight type, weight zero point
    ((5, 37), (37, 70), np.uint8, np.int8, None),  # K and N tails, several row tiles
    ((1, 64), (64, 48), np.uint8, np.int8, 0),  # one row (batch 1)
    ((37,), (37, 20), np.uint8, np.int8, None),  # a vector times the weights
    ((2, 3, 32), (32, 33), np.int8, np.int8, None),  # int8 activations, a batch dim
    ((3, 17), (17, 20), np.uint8, np.uint8, 128),  # uint8 weights with zero point 128
    ((5, 33), (33, 21), np.int8, np.uint8, 77),  # a weight zero point: row sums of the activations
    ((2, 4, 9), (9, 30), np.uint8, np.int8, np.arange(30) % 7 - 3),  # per-column weight zero points, a batch dim
]


def test_kernel_table_counts_the_int8_products():
    model, _, _ = _case((4, 64), (64, 48), np.uint8, np.int8)
    program = build_program(load_model(model), AVX2)
    kernel = next(k for k in program.kernels if " = dotw(" in kernel_text(k))
    assert kernel_flops(kernel) >= 2 * 4 * 64 * 48  # the epilogue's float ops come on top


@pytest.mark.parametrize("target", ["llvm", "llvm -mattr=-avx2"])
@pytest.mark.parametrize("a_shape,k_n,a_type,w_type,zb", CASES)
def test_exact_on_host(a_shape, k_n, a_type, w_type, zb, target):
    model, feeds, exact = _case(a_shape, k_n, a_type, w_type, zb)
    assert _dot_calls(build_program(load_model(model), target)) > 0
    np.testing.assert_array_equal(aic.compile(model, target=target).run(None, feeds)[0], exact)


def test_loop_evaluator_and_plain_nest_fallback():
    for zb in (None, 3):
        model, feeds, exact = _case((3, 9), (9, 19), np.int8, np.uint8 if zb else np.int8, zb)
        program = build_program(load_model(model), "llvm")
        np.testing.assert_array_equal(run_program(program, feeds)[0], exact)
    model, feeds, exact = _case((3, 8), (8, 5), np.uint8, np.int8)
    weights = model.graph.initializer[0]
    model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.INT8, list(weights.dims)))
    feeds["w"] = numpy_helper.to_array(weights)
    del model.graph.initializer[0]  # weights as an input: the plain nest
    program = build_program(load_model(model), "llvm")
    assert _dot_calls(program) == 0
    np.testing.assert_array_equal(aic.compile(model).run(None, feeds)[0], exact)


def test_target_renderings():
    model, _, _ = _case((4, 40), (40, 64), np.uint8, np.int8)
    program = build_program(load_model(model), AVX512_VNNI)
    kernel = next(k for k in program.kernels if " = dot4(" in kernel_text(k))  # 16 lanes: 4 bytes per lane
    text = kernel_llvm(kernel, AVX512_VNNI)
    assert "llvm.x86.avx512.vpdpbusd.512" in text
    assembly = target_machine(Target.parse(AVX512_VNNI), 2).emit_assembly(llvm.parse_assembly(text))
    assert "vpdpbusd" in assembly and "vpbroadcastd" in assembly  # 4 activation bytes: one broadcast load
    assert "vpdpbusd" not in kernel_llvm(kernel, AVX512_NO_VNNI)
    program = build_program(load_model(model), AVX2)
    kernel = next(k for k in program.kernels if " = dotw(" in kernel_text(k))  # 8 lanes, rows: int16 pairs
    assert "llvm.x86.avx2.pmadd.wd" in kernel_llvm(kernel, AVX2)
    model, _, _ = _case((1, 40), (40, 64), np.uint8, np.int8)
    program = build_program(load_model(model), AVX2)
    kernel = next(k for k in program.kernels if " = dot2(" in kernel_text(k))  # one row: 2 bytes per lane
    assert "llvm.x86.avx2.pmadd.wd" in kernel_llvm(kernel, AVX2)


def test_packed_weights_layout():
    w = rng.integers(-128, 128, (6, 5)).astype(np.int8)
    packed = packed_weights(w, 4)  # [2 panels, 2 steps, 4 cols] of int32
    assert packed.shape == (2, 2, 4) and packed.dtype == np.int32
    lanes = packed.view(np.int8).reshape(2, 2, 4, 4)  # [panel, step, col, byte]
    assert lanes[1, 0, 0].tolist() == w[0:4, 4].tolist()
    assert lanes[0, 1, 2].tolist() == [*w[4:6, 2], 0, 0]
    assert not lanes[1, :, 1:].any()
    pairs = packed_weights(w, 4, group=2).view(np.int8).reshape(2, 3, 4, 2)  # int16 lanes of 2 bytes
    assert pairs[0, 2, 3].tolist() == w[4:6, 3].tolist()
    words = packed_words(w, 4)  # int32 lanes of 2 int16
    assert words.shape == (2, 3, 4) and words.view(np.int16).reshape(2, 3, 4, 2)[1, 1, 0].tolist() == w[2:4, 4].tolist()


def test_quantize_dynamic_mlp_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    quantization = pytest.importorskip("onnxruntime.quantization")
    nodes, inits, x = [], [], "x"
    for i in range(2):
        w = (rng.standard_normal((48, 48)) / 7).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(rng.standard_normal(48).astype(
            np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"],
                                                                                      ["y" if i else f"y{i}"])]
        x = f"y{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 48])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 48])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "f.onnx")
    quantization.quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", weight_type=quantization.QuantType.QInt8,
                                  reduce_range=True)
    model = onnx.load(tmp_path / "q.onnx")
    assert any(n.op_type == "MatMulInteger" for n in model.graph.node)
    feeds = {"x": (rng.standard_normal((3, 48)) * 0.3).astype(np.float32)}
    got = aic.compile(model).run(None, feeds)[0]
    exact = ReferenceEvaluator(model).run(None, feeds)[0]  # onnx's numpy reference: exact int32 sums
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5 * np.abs(exact).max())
    # onnxruntime's AVX2 kernel saturates int16 pair sums (vpmaddubsw) of full-range weights; 7-bit weights
    # (reduce_range) keep its sums exact, so it must agree to float32 rounding
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
