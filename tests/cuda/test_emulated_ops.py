"""Each op class compiled for cuda, run in the emulator, compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.onnx_util import assert_close, node_model, run_ort

from .conftest import compile_cuda, emulated, needs_nvrtc

pytestmark = needs_nvrtc
rng = np.random.default_rng(0)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


CASES = {  # name: (op, inputs, attrs, initializers, rtol)
    "relu": ("Relu", {"x": f32(3, 5, 7)}, None, None),
    "add_broadcast": ("Add", {"a": f32(4, 1, 6), "b": f32(5, 1)}, None, None),
    "tanh": ("Tanh", {"x": f32(2, 65)}, None, None),
    "cast_f16": ("Cast", {"x": f32(3, 33) * 1000}, {"to": 10}, None),
    "cast_int": ("Cast", {"x": f32(40) * 100}, {"to": 6}, None),
    "int_div": (
        "Div",
        {"a": rng.integers(-50, 50, (20,)).astype(np.int32), "b": rng.integers(1, 9, (20,)).astype(np.int32)},
        None,
        None,
    ),
    "softmax": ("Softmax", {"x": f32(6, 200)}, {"axis": -1}, None),
    "layernorm": ("LayerNormalization", {"x": f32(5, 96)}, {"axis": -1}, {"s": f32(96), "b": f32(96)}),
    "reduce_mean": ("ReduceMean", {"x": f32(4, 6, 50)}, {"keepdims": 0}, {"axes": np.array([2], np.int64)}),
    "reduce_max_all": ("ReduceMax", {"x": f32(7, 90)}, {"keepdims": 1}, None),
    "maxpool": ("MaxPool", {"x": f32(1, 3, 9, 9)}, {"kernel_shape": [3, 3], "strides": [2, 2]}, None),
    "global_avgpool": ("GlobalAveragePool", {"x": f32(2, 4, 11, 11)}, None, None),
    "matmul": ("MatMul", {"a": f32(5, 40)}, None, {"w": f32(40, 24)}),
    "batched_matmul": ("MatMul", {"a": f32(3, 6, 20), "b": f32(3, 20, 7)}, None, None),
    "gemm": ("Gemm", {"a": f32(4, 30)}, {"transB": 1}, {"w": f32(12, 30), "c": f32(12)}),
    "conv": ("Conv", {"x": f32(1, 3, 10, 10)}, {"pads": [1, 1, 1, 1]}, {"w": f32(8, 3, 3, 3), "b": f32(8)}),
    "depthwise_conv": ("Conv", {"x": f32(1, 4, 8, 8)}, {"group": 4}, {"w": f32(4, 1, 3, 3)}),
    "transpose": ("Transpose", {"x": f32(2, 3, 4)}, {"perm": [2, 0, 1]}, None),
    "concat": ("Concat", {"a": f32(2, 3), "b": f32(2, 5)}, {"axis": 1}, None),
    "gather": ("Gather", {"x": f32(10, 4)}, {"axis": 0}, {"i": np.array([3, 0, 9, 3], np.int64)}),
    "where": ("Where", {"c": rng.random((5, 6)) > 0.5, "a": f32(5, 6), "b": f32(6)}, None, None),
    "cumsum": ("CumSum", {"x": f32(3, 8)}, None, {"axis": np.array(1, np.int64)}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_emulated_matches_onnxruntime(name, tmp_path):
    op, inputs, attrs, inits = CASES[name]
    model = node_model(op, inputs, attrs=attrs, initializers=inits)
    expected = run_ort(model, inputs)
    module = emulated(compile_cuda(model, tmp_path, name))
    actual = module.run(None, inputs)
    for a, e in zip(actual, expected):
        assert_close(a, e, rtol=1e-4, atol=1e-5, what=name)


TILED = {  # contractions big enough for shared-memory tiles (partial tiles at every edge)
    "matmul": ("MatMul", {"a": f32(3, 70, 40)}, None, {"w": f32(40, 100)}),
    "gemm_bias": ("Gemm", {"a": f32(65, 30)}, {"transB": 1, "alpha": 0.5}, {"w": f32(33, 30), "c": f32(33)}),
    "batched_broadcast": ("MatMul", {"a": f32(2, 3, 20, 17), "b": f32(3, 17, 130)}, None, None),
}


@pytest.mark.parametrize("name", sorted(TILED))
def test_tiled_matmul_fp32_exact(name, tmp_path, monkeypatch):
    op, inputs, attrs, inits = TILED[name]
    model = node_model(op, inputs, attrs=attrs, initializers=inits)
    expected = run_ort(model, inputs)[0]
    path = compile_cuda(model, tmp_path, name, "cuda -arch=sm_80 -fp32-exact")
    module = emulated(path)
    assert [k["rule"] for k in module.metadata["cuda"]["kernels"]] == ["tiled-matmul"]
    assert_close(module.run(None, inputs)[0], expected, rtol=1e-4, atol=1e-4, what=name)
    monkeypatch.setenv("AIC_EMU_ORDER", "reverse")  # a missing barrier would read poisoned shared memory
    assert_close(emulated(path).run(None, inputs)[0], expected, rtol=1e-4, atol=1e-4, what=f"{name} reversed")


def tf32(x: np.ndarray) -> np.ndarray:
    """Round float32 to TF32 (10 mantissa bits), to nearest with ties away from zero (cvt.rna)."""
    bits = x.astype(np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


@pytest.mark.parametrize("name", ["matmul", "batched_broadcast"])
def test_tiled_matmul_tensor_cores_tf32(name, tmp_path):
    op, inputs, attrs, inits = TILED[name]
    model = node_model(op, inputs, attrs=attrs, initializers=inits)
    path = compile_cuda(model, tmp_path, name)
    module = emulated(path)
    assert [k["rule"] for k in module.metadata["cuda"]["kernels"]] == ["tiled-matmul-tf32"]
    assert b"mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" in path.read_bytes()  # the embedded PTX
    a, b = [tf32(v).astype(np.float64) for v in [*inputs.values(), *(inits or {}).values()]]
    expected = np.matmul(a, b)  # products of TF32 values are exact; only the float32 sums round
    actual = module.run(None, inputs)[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4 * np.abs(expected).max())
    # and within TF32 accuracy of the float32 product (onnxruntime's CUDA default, use_tf32)
    assert_close(actual, run_ort(model, inputs)[0], rtol=2e-2, atol=2e-2, what=name)
