"""The cuda artifact: NVRTC images, metadata, dependencies, loading without a driver."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from aic.runtime.module import ModelLoadError

from tests.onnx_util import node_model, run_ort

from .conftest import compile_cuda, emulated, has_gpu, needs_gpu, needs_nvrtc

pytestmark = needs_nvrtc


@pytest.fixture(scope="module")
def softmax_so(tmp_path_factory):
    x = np.random.default_rng(0).standard_normal((8, 300)).astype(np.float32)
    model = node_model("Softmax", {"x": x}, attrs={"axis": -1})
    return compile_cuda(model, tmp_path_factory.mktemp("cuda"), "softmax", "cuda"), model, x


def test_cubins_for_sm80_and_sm90_and_ptx(softmax_so):
    import aic

    path, _, _ = softmax_so
    meta = aic.load(path, emulate=True).metadata
    assert meta["target"]["kind"] == "cuda"
    assert meta["cuda"]["archs"] == ["sm_80", "sm_90"]
    assert meta["cuda"]["ptx"] == ["compute_80"]
    assert meta["cuda"]["nvrtc"].startswith("13.0")  # PTX .version 9.0: what the CUDA 13.0 driver JITs
    for kernel in meta["cuda"]["kernels"]:
        for arch in ("sm_80", "sm_90"):
            figures = kernel["ptxas"][arch]
            assert figures["registers"] > 0, kernel
            assert figures["spill_stores"] == 0 and figures["spill_loads"] == 0, kernel
    data = path.read_bytes()
    assert b".version 9.0" in data and b".target sm_80" in data  # the embedded PTX
    assert data.count(b"\x7fELF") >= 3  # the .so itself and two cubins


def test_links_only_libc_libdl_libpthread(softmax_so):
    path, _, _ = softmax_so
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out))
    allowed = {"libc.so.6", "libdl.so.2", "libpthread.so.0", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
    assert needed and needed <= allowed, needed


@pytest.mark.skipif(has_gpu(), reason="this machine has a CUDA driver")
def test_load_without_driver_is_a_clear_error(softmax_so):
    import aic

    path, _, _ = softmax_so
    with pytest.raises(ModelLoadError, match=r"no CUDA driver \(libcuda\.so\.1\) on this machine"):
        aic.load(path)


def test_emulated_runs_replay_a_graph_and_match(softmax_so, monkeypatch):
    path, model, x = softmax_so
    expected = run_ort(model, {"x": x})[0]
    module = emulated(path)
    results = [module.run(None, {"x": x})[0] for _ in range(3)]  # run 1 direct, then a captured graph
    for y in results:
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-7)
    monkeypatch.setenv("AIC_EMU_ORDER", "reverse")
    np.testing.assert_allclose(emulated(path).run(None, {"x": x})[0], expected, rtol=1e-5, atol=1e-7)


def test_emulate_from_environment(softmax_so, monkeypatch):
    import aic

    path, model, x = softmax_so
    monkeypatch.setenv("AIC_CUDA_EMULATE", "1")
    np.testing.assert_allclose(aic.load(path).run(None, {"x": x})[0], run_ort(model, {"x": x})[0], rtol=1e-5)


def test_target_options():
    from aic.codegen.target import Target

    t = Target.parse("cuda -arch=sm_86 -fp32-exact")
    assert t.cuda_archs == ("sm_86",) and "fp32-exact" in t.options
    assert Target.parse("cuda").cuda_archs == ("sm_80", "sm_90")
    with pytest.raises(ValueError, match="unknown cuda target option"):
        Target.parse("cuda -mcpu=x")


@needs_gpu
def test_gpu_matches_emulator(softmax_so):
    import aic

    path, model, x = softmax_so
    y = aic.load(path).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, run_ort(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


@needs_gpu
def test_gpu_device_arrays_without_copy(softmax_so):
    cupy = pytest.importorskip("cupy")
    import aic

    path, model, x = softmax_so
    y = aic.load(path).run(None, {"x": cupy.asarray(x)})[0]
    assert isinstance(y, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(y), run_ort(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_reductions_use_block_reductions_with_warp_shuffles(softmax_so):
    import aic

    path, _, _ = softmax_so
    module = aic.load(path, emulate=True)
    assert [k["rule"] for k in module.metadata["cuda"]["kernels"]] == ["row-reduction"]
    module._lib.aic_cuda_source.restype = __import__("ctypes").c_char_p
    text = module._lib.aic_cuda_source().decode()
    assert "__shfl_xor_sync" in text and "aic_block_reduce<float>" in text
    assert "__launch_bounds__(256)" in text and "__syncthreads()" in text


def test_cli_compile_for_cuda_and_run_emulated(tmp_path, capsys):
    import onnx

    from aic.cli import main

    x = np.random.default_rng(1).standard_normal((2, 40)).astype(np.float32)
    onnx.save(node_model("Softmax", {"x": x}, attrs={"axis": -1}), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", x)
    so = tmp_path / "m.so"
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(so), "--target", "cuda -arch=sm_90", "-q"]) == 0
    assert main(["run", str(so), "--input", f"x={tmp_path / 'x.npy'}", "--emulate", "--output-dir", str(tmp_path)]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), run_ort(onnx.load(tmp_path / "m.onnx"), {"x": x})[0],
                               rtol=1e-5, atol=1e-7)  # fmt: skip
