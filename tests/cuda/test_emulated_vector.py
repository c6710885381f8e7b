"""16-byte vector accesses of elementwise launches and the device-pointer entry point
(`aic_run_device`), in the emulator: host memory stands for device memory there."""

from __future__ import annotations

import numpy as np
import pytest
from aic.runtime.cuda_module import run_device_pointers

from tests.onnx_util import node_model, run_ort

from .conftest import compile_cuda, emulated, needs_nvrtc

pytestmark = needs_nvrtc
rng = np.random.default_rng(7)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


CASES = {  # name: (op, inputs, the rule of the one launch)
    "relu": ("Relu", {"x": f32(3, 5, 8)}, "elementwise-vec4"),
    "add_row_broadcast": ("Add", {"a": f32(4, 3, 8), "b": f32(3, 1)}, "elementwise-vec4"),
    "mul_column_broadcast": ("Mul", {"a": f32(6, 12), "b": f32(12)}, "elementwise-vec4"),
    "add_int32": (
        "Add",
        {"a": rng.integers(-9, 9, (5, 4)).astype(np.int32), "b": rng.integers(-9, 9, (4,)).astype(np.int32)},
        "elementwise-vec4",
    ),
    "where_bool_condition": ("Where", {"c": rng.random((4, 8)) > 0.5, "a": f32(4, 8), "b": f32(8)}, "elementwise-vec4"),
    "odd_rows": ("Add", {"a": f32(4, 3, 6), "b": f32(6)}, "elementwise-vec4"),  # rows of 6 merge into one range
    "channel_bias": ("Add", {"a": f32(2, 3, 6, 6), "b": f32(3, 1, 1)}, "elementwise-vec4"),  # b: a scalar per lane
    "odd_total": ("Add", {"a": f32(3, 5, 7), "b": f32(7)}, "elementwise"),  # 105 elements: not whole vectors
    "transpose": ("Transpose", {"x": f32(8, 4)}, "elementwise-vec4"),  # vector stores, strided scalar loads
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_elementwise_vector_accesses(name, tmp_path, monkeypatch):
    op, inputs, rule = CASES[name]
    model = node_model(op, inputs)
    path = compile_cuda(model, tmp_path, name)
    module = emulated(path)
    assert [k["rule"] for k in module.metadata["cuda"]["kernels"]] == [rule]
    expected = run_ort(model, inputs)[0]
    np.testing.assert_array_equal(module.run(None, inputs)[0], expected)
    source = module._lib.aic_cuda_source().decode()
    assert ("aic_st4<" in source) == rule.endswith("vec4")
    assert ("aic_ld4<" in source) == (rule.endswith("vec4") and name != "transpose")
    monkeypatch.setenv("AIC_EMU_ORDER", "reverse")
    np.testing.assert_array_equal(emulated(path).run(None, inputs)[0], expected)


def test_misaligned_device_pointer_is_refused(tmp_path):
    x = f32(2, 8)
    module = emulated(compile_cuda(node_model("Relu", {"x": x}), tmp_path, "relu"))
    storage = np.zeros(2 * 8 + 4, np.float32)
    out = np.zeros((2, 8), np.float32)
    storage[1:17] = x.ravel()
    run_device_pointers(module._lib, module._handle, [storage[4:].ctypes.data], [out.ctypes.data])  # aligned: runs
    np.testing.assert_array_equal(out.ravel()[:12], np.maximum(storage[4:16], 0))
    with pytest.raises(RuntimeError, match=r"kernel k0_relu reads argument 0 as 16-byte vectors, but its address "
                                           r"0x[0-9a-f]+ is not 16-byte aligned"):  # fmt: skip
        run_device_pointers(module._lib, module._handle, [storage[1:].ctypes.data], [out.ctypes.data])


def test_device_entry_point_reads_the_kernel_error_slot(tmp_path):
    x = np.arange(30, dtype=np.float32).reshape(5, 6)
    ok = np.array([[0, -1], [4, -5]], dtype=np.int64)
    model = node_model("Gather", {"x": x, "i": ok}, attrs={"axis": 0})
    module = emulated(compile_cuda(model, tmp_path, "gather"))
    out = np.zeros((2, 2, 6), np.float32)

    def run(indices: np.ndarray) -> None:
        run_device_pointers(module._lib, module._handle, [x.ctypes.data, indices.ctypes.data], [out.ctypes.data])

    run(ok)
    np.testing.assert_array_equal(out, run_ort(model, {"x": x, "i": ok})[0])
    message = r"node '.*' \(Gather\): indices 'i' \(axis 0 of size 5\) must be in \[-5, 4\]; got 5 at flat position 2"
    with pytest.raises(RuntimeError, match=message):
        run(np.array([[0, 1], [5, 2]], dtype=np.int64))
    run(ok)  # the slot is cleared before the next run
    np.testing.assert_array_equal(out, run_ort(model, {"x": x, "i": ok})[0])


def test_vector_kernels_compile_for_sm80_and_sm90(tmp_path):
    op, inputs, _ = CASES["add_row_broadcast"]
    module = emulated(compile_cuda(node_model(op, inputs), tmp_path, "add", "cuda -arch=sm_80,sm_90"))
    (kernel,) = module.metadata["cuda"]["kernels"]
    assert kernel["rule"] == "elementwise-vec4"
    assert set(kernel["ptxas"]) == {"sm_80", "sm_90"} and all(f["registers"] > 0 for f in kernel["ptxas"].values())
