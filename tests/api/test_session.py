"""aic.InferenceSession against onnxruntime's: the same calls give the same answers;
options, providers, metadata, IOBinding with caller buffers, and concurrent runs."""

from __future__ import annotations

import ctypes.util
import json
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from aic.runtime.module import Module
from onnx import TensorProto, helper

import aic

from .test_cache import mlp


@pytest.fixture
def model_path(tmp_path):
    model = mlp()
    model.producer_name, model.doc_string, model.model_version = "tests", "a small MLP", 3
    helper.set_model_props(model, {"owner": "aic"})
    path = tmp_path / "mlp.onnx"
    onnx.save(model, path)
    return str(path)


def test_same_calls_as_onnxruntime(model_path, rng):
    x = rng.standard_normal((4, 32)).astype(np.float32)
    sessions = [ort.InferenceSession(model_path, providers=["CPUExecutionProvider"]),
                aic.InferenceSession(model_path, providers=["CPUExecutionProvider"])]  # fmt: skip
    for attr in ("name", "shape", "type"):
        for listing in ("get_inputs", "get_outputs"):
            ort_args, aic_args = (getattr(s, listing)() for s in sessions)
            assert [getattr(a, attr) for a in ort_args] == [getattr(a, attr) for a in aic_args]
    expected, got = (s.run(None, {s.get_inputs()[0].name: x})[0] for s in sessions)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert sessions[1].get_providers() == sessions[0].get_providers() == ["CPUExecutionProvider"]
    meta, ort_meta = sessions[1].get_modelmeta(), sessions[0].get_modelmeta()
    for attr in ("producer_name", "graph_name", "description", "version", "custom_metadata_map"):
        assert getattr(meta, attr) == getattr(ort_meta, attr)


def test_bytes_and_compiled_artifact(model_path, tmp_path, rng):
    x = rng.standard_normal((4, 32)).astype(np.float32)
    from_bytes = aic.InferenceSession(Path(model_path).read_bytes())
    aic.compile(model_path, output=tmp_path / "m.so")
    from_so = aic.InferenceSession(str(tmp_path / "m.so"))
    np.testing.assert_array_equal(from_bytes.run(["y"], {"x": x})[0], from_so.run(["y"], {"x": x})[0])
    assert from_so.get_modelmeta().graph_name == "mlp" and from_so.get_modelmeta().producer_name == "aic"


def test_session_options_from_aic_and_onnxruntime(model_path, monkeypatch):
    levels = []
    real_compile = aic.compile
    monkeypatch.setattr(aic, "compile", lambda *a, **k: levels.append(k["opt_level"]) or real_compile(*a, **k))
    for options_type, enum in [
        (aic.SessionOptions, aic.GraphOptimizationLevel),
        (ort.SessionOptions, ort.GraphOptimizationLevel),
    ]:
        options = options_type()
        options.intra_op_num_threads = 1
        for level in ["ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"]:
            options.graph_optimization_level = getattr(enum, level)
            session = aic.InferenceSession(model_path, options)
            assert session._model.num_threads == 1
    assert levels == [0, 1, 2, 3] * 2


def test_refusals_are_clear(model_path):
    with pytest.raises(ValueError, match="implements only CUDAExecutionProvider and CPUExecutionProvider"):
        aic.InferenceSession(model_path, providers=["OpenVINOExecutionProvider"])
    with pytest.warns(UserWarning, match=r"skipping \['OpenVINOExecutionProvider'\]"):
        session = aic.InferenceSession(model_path, providers=["OpenVINOExecutionProvider", "CPUExecutionProvider"])
    assert session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="intra_op_num_threads"):
        aic.InferenceSession(model_path, aic.SessionOptions(intra_op_num_threads=-1))


def test_cuda_provider_falls_back_to_cpu_without_a_driver(model_path, monkeypatch):
    monkeypatch.delenv("AIC_CUDA_EMULATE", raising=False)
    if ctypes.util.find_library("cuda"):
        pytest.skip("this machine has a CUDA driver: the fallback is not exercised")
    with pytest.raises(aic.ModelLoadError, match="no CUDA driver"):
        aic.InferenceSession(model_path, providers=["CUDAExecutionProvider"])
    with pytest.warns(UserWarning, match="CUDAExecutionProvider is not available .*no CUDA driver"):
        session = aic.InferenceSession(model_path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_cuda_provider_runs_the_cuda_target(model_path, monkeypatch, rng):
    """The CUDA provider compiles for aic's cuda target (run by the CPU emulator here); its float32
    matrix products use TF32 tensor cores, so the comparison allows TF32 rounding (about 1e-3)."""
    monkeypatch.setenv("AIC_CUDA_EMULATE", "1")
    session = aic.InferenceSession(model_path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert session.get_providers() == ["CUDAExecutionProvider"]
    x = rng.standard_normal((4, 32)).astype(np.float32)
    (expected,) = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    (actual,) = session.run(None, {"x": x})
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-2 * np.abs(expected).max())


def test_profiling_as_onnxruntime(model_path, tmp_path, rng):
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "trace")
    session = aic.InferenceSession(model_path, options)
    session.run(None, {"x": rng.standard_normal((4, 32)).astype(np.float32)})
    trace = json.loads(Path(session.end_profiling()).read_text())
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    kernels = [e for e in events if e.get("ph") == "X" and e.get("name") != "model_run"]
    assert kernels and all(e["dur"] >= 0 for e in kernels)
    assert session.end_profiling() == ""  # off after the trace was written
    with pytest.raises(ValueError, match="concurrent_runs=1"):
        aic.InferenceSession(model_path, options, concurrent_runs=2)


def test_iobinding_writes_caller_buffers(model_path, rng):
    session = aic.InferenceSession(model_path)
    x = rng.standard_normal((4, 32)).astype(np.float32)
    out = np.zeros((4, 8), np.float32)
    binding = session.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_output("y", "cpu", 0, np.float32, out.shape, out.ctypes.data)
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(out, session.run(None, {"x": x})[0])
    assert np.shares_memory(binding.get_outputs()[0], out)
    binding = session.io_binding()
    binding.bind_input("x", "cpu", 0, np.float32, x.shape, x.ctypes.data)
    binding.bind_output("y")  # allocated by the run
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(binding.copy_outputs_to_cpu()[0], out)
    with pytest.raises(ValueError, match=r"output 'y' is float32\[4, 8\]; the buffer given is float32\[4, 7\]"):
        Module.run(session._model, None, {"x": x}, outputs={"y": np.zeros((4, 7), np.float32)})


def test_symbolic_dims_compile_per_signature(rng):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    session = aic.InferenceSession(model)
    assert session.get_inputs()[0].shape == ["batch", 3]
    for batch in (1, 5):
        x = rng.standard_normal((batch, 3)).astype(np.float32)
        np.testing.assert_array_equal(session.run(None, {"x": x})[0], np.maximum(x, 0))


@pytest.mark.parametrize("concurrent_runs", [1, 2])
def test_concurrent_runs_overlap_only_when_asked(concurrent_runs, rng):
    n = 384  # a few milliseconds per run, so that two threads' runs meet
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "x"], ["h"]), helper.make_node("MatMul", ["h", "x"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    options = aic.SessionOptions(intra_op_num_threads=1)
    session = aic.InferenceSession(model, options, concurrent_runs=concurrent_runs)
    assert session.concurrent_runs == concurrent_runs
    in_flight, peak, lock, both = [0], [0], threading.Lock(), threading.Event()
    real_run = Module.run

    def counting_run(self, *args, **kwargs):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            if in_flight[0] == 2:
                both.set()
        both.wait(0.5)  # give the other thread's run the chance to start (it can only if the session allows)
        try:
            return real_run(self, *args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    inputs = [rng.standard_normal((n, n)).astype(np.float32) / 8 for _ in range(2)]
    results: dict[int, list[np.ndarray]] = {0: [], 1: []}

    def worker(i: int) -> None:
        for _ in range(4):
            results[i].append(session.run(None, {"x": inputs[i]})[0])

    Module.run = counting_run
    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        Module.run = real_run
    assert peak[0] == concurrent_runs
    for i in range(2):
        x = inputs[i].astype(np.float64)
        for got in results[i]:
            np.testing.assert_allclose(got, x @ x @ x, rtol=1e-3, atol=1e-3)
