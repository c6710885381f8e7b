"""The cuda runtime's kernel error channel and locked shaped runs, in the emulator."""

from __future__ import annotations

import numpy as np
import pytest

import aic
from tests.onnx_util import node_model, run_ort

from .conftest import compile_cuda, emulated, needs_nvrtc

pytestmark = needs_nvrtc

X = np.arange(30, dtype=np.float32).reshape(5, 6)


def test_gather_index_out_of_range_raises(tmp_path):
    ok = {"x": X, "i": np.array([[0, -1], [4, -5]], dtype=np.int64)}
    model = node_model("Gather", ok, attrs={"axis": 0})
    module = emulated(compile_cuda(model, tmp_path, "gather"))
    np.testing.assert_array_equal(module.run(None, ok)[0], run_ort(model, ok)[0])
    bad = {**ok, "i": np.array([[0, 1], [5, 2]], dtype=np.int64)}
    message = r"node '.*' \(Gather\): indices 'i' \(axis 0 of size 5\) must be in \[-5, 4\]; got 5 at flat position 2"
    with pytest.raises(aic.RunError, match=message):
        module.run(None, bad)
    np.testing.assert_array_equal(module.run(None, ok)[0], run_ort(model, ok)[0])  # the next run is clean


def test_nonzero_shapes_come_with_the_run(tmp_path):
    x = np.array([[0, 2, 0, 3], [1, 0, 0, 0], [0, 0, 5, 6]], dtype=np.float32)
    model = node_model("NonZero", {"x": x})
    module = emulated(compile_cuda(model, tmp_path, "nonzero"))
    assert hasattr(module._lib, "aic_run_shaped")  # shapes and data from one locked run, not aic_output_shape
    for feed in (x, np.zeros_like(x), np.ones_like(x), x.T.copy().reshape(x.shape)):
        got = module.run(None, {"x": feed})[0]
        want = run_ort(model, {"x": feed})[0]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_device_id(tmp_path):
    x = {"x": X}
    model = node_model("Relu", x)
    path = compile_cuda(model, tmp_path, "relu")
    with aic.load(path, emulate=True, device_id=0) as module:
        np.testing.assert_array_equal(module.run(None, x)[0], run_ort(model, x)[0])
    with pytest.raises(aic.ModelLoadError, match=r"CUDA device 1 does not exist \(1 devices\)"):
        aic.load(path, emulate=True, device_id=1)
    with pytest.raises(ValueError, match="device_id must be a CUDA device number"):
        aic.load(path, emulate=True, device_id=-1)
    pytest.importorskip("llvmlite", reason="the CPU half of this test compiles for the CPU (LLVM)")
    cpu = aic.compile(model, output=tmp_path / "relu_cpu.so")
    cpu.close()
    with pytest.raises(aic.ModelLoadError, match=r"device_id=0 selects a CUDA device, but this model is compiled "):
        aic.load(cpu.path, device_id=0)
