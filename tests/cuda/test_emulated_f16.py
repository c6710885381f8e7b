"""float16 and bfloat16 contractions on tensor cores (mma.sync m16n8k16, float32 accumulation),
run in the emulator and compared with onnxruntime (float16) or a float64 reference (bfloat16)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.onnx_util import assert_close, node_model, run_ort

from .conftest import compile_cuda, emulated, needs_nvrtc

pytestmark = needs_nvrtc
rng = np.random.default_rng(0)


def f16(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float16)


def bf16(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(ml_dtypes.bfloat16)


CASES = {  # name: (op, inputs, attrs, initializers, rule); partial tiles at every edge
    "matmul": ("MatMul", {"a": f16(70, 40)}, None, {"w": f16(40, 100)}, "tiled-matmul-f16"),
    "gemm_bias": ("Gemm", {"a": f16(65, 30)}, {"transB": 1}, {"w": f16(33, 30), "c": f16(33)}, "tiled-matmul-f16"),
    "batched": ("MatMul", {"a": f16(2, 20, 17), "b": f16(2, 17, 40)}, None, None, "tiled-matmul-f16"),
    "conv3x3": ("Conv", {"x": f16(1, 8, 9, 9)}, {"pads": [1, 1, 1, 1]}, {"w": f16(16, 8, 3, 3), "b": f16(16)},
                "implicit-gemm-f16"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_float16_contraction_on_tensor_cores(name, tmp_path):
    op, inputs, attrs, inits, rule = CASES[name]
    model = node_model(op, inputs, attrs=attrs, initializers=inits)
    path = compile_cuda(model, tmp_path, name, "cuda -arch=sm_80,sm_90")
    module = emulated(path)
    (kernel,) = module.metadata["cuda"]["kernels"]
    assert kernel["rule"] == rule
    for arch in ("sm_80", "sm_90"):  # NVRTC compiled it for both; ptxas: no spills
        ptxas = kernel["ptxas"][arch]
        assert 0 < ptxas["registers"] <= 255 and ptxas.get("spill_stores", 0) == 0, (arch, ptxas)
    assert b"mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" in path.read_bytes()  # the embedded PTX
    actual = module.run(None, inputs)[0]
    assert actual.dtype == np.float16
    # float32 sums of exact products, rounded once to float16: within an ulp or two of onnxruntime's
    assert_close(actual, run_ort(model, inputs)[0], rtol=2e-3, atol=2e-3, what=name)


def f64(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64)


BF16_CASES = {  # name: (op, inputs, attrs, initializers, rule, float64 reference of the bfloat16 values)
    "matmul": ("MatMul", {"a": bf16(3, 70, 40)}, None, {"w": bf16(40, 100)}, "tiled-matmul-bf16",
               lambda a, w: f64(a) @ f64(w)),
    "gemm_bias": ("Gemm", {"a": bf16(65, 30)}, {"transB": 1}, {"w": bf16(33, 30), "c": bf16(33)}, "tiled-matmul-bf16",
                  lambda a, w, c: f64(a) @ f64(w).T + f64(c)),
    "batched": ("MatMul", {"a": bf16(2, 20, 17), "b": bf16(2, 17, 40)}, None, {}, "tiled-matmul-bf16",
                lambda a, b: f64(a) @ f64(b)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BF16_CASES))
def test_bfloat16_contraction_on_tensor_cores(name, tmp_path):
    op, inputs, attrs, inits, rule, reference = BF16_CASES[name]
    model = node_model(op, inputs, attrs=attrs, initializers=inits)
    path = compile_cuda(model, tmp_path, name)
    module = emulated(path)
    assert [k["rule"] for k in module.metadata["cuda"]["kernels"]] == [rule]
    assert b"mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" in path.read_bytes()
    actual = module.run(None, inputs)[0]
    assert actual.dtype == ml_dtypes.bfloat16
    expected = reference(*inputs.values(), *inits.values())
    # exact products, float32 sums, one rounding to bfloat16 (8 significant bits: relative 2^-8)
    np.testing.assert_allclose(f64(actual), expected, rtol=8e-3, atol=1e-2)


def test_fp32_exact_keeps_float16_on_tensor_cores(tmp_path, monkeypatch):
    """-fp32-exact is about float32 inputs: 16-bit products are exact, so they stay on m16n8k16."""
    op, inputs, attrs, inits, rule = CASES["matmul"]
    model = node_model(op, inputs, attrs=attrs, initializers=inits)
    path = compile_cuda(model, tmp_path, "exact", "cuda -arch=sm_80 -fp32-exact")
    module = emulated(path)
    assert [k["rule"] for k in module.metadata["cuda"]["kernels"]] == [rule]
    expected = run_ort(model, inputs)[0]
    assert_close(module.run(None, inputs)[0], expected, rtol=2e-3, atol=2e-3, what="fp32-exact")
    monkeypatch.setenv("AIC_EMU_ORDER", "reverse")  # a missing barrier would read poisoned shared memory
    assert_close(emulated(path).run(None, inputs)[0], expected, rtol=2e-3, atol=2e-3, what="reversed")


def test_float16_matmul_for_a_range_of_sizes(tmp_path):
    """A run-time number of rows (1..130, tiled at the opt size 70): the edge tiles zero-fill."""
    w = f16(40, 72)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["y"])], "ranged",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT16, ["rows", 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["rows", 72])],
        [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 8
    path = compile_cuda(model, tmp_path, "ranged", shapes={"rows": (1, 130, 70)})
    module = emulated(path)
    assert "tiled-matmul-f16" in [k["rule"] for k in module.metadata["cuda"]["kernels"]]  # beside the sizes' launch
    for rows in (1, 70, 130):
        feeds = {"a": f16(rows, 40)}
        actual = module.run(None, feeds)[0]
        assert actual.shape == (rows, 72)
        assert_close(actual, run_ort(model, feeds)[0], rtol=2e-3, atol=2e-3, what=f"{rows} rows")
