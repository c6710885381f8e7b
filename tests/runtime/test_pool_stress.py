"""The thread pool under stress: every parallel loop's iterations run exactly once at any thread count.

Parallel loops of many sizes (a few iterations up to thousands, fewer than the threads too) are run at 2, 3 and
5 threads, with fresh inputs each run (an iteration skipped would leave the previous run's values), and from
several Python threads at once with more pool threads than CPUs, so that workers start late, share cores and
their ranges are taken over by other threads; with workers that sleep between runs (`AIC_SPIN=0`), so every run
wakes them; and on a blocked depthwise convolution whose channel blocks run in parallel, each through its own
slice of one padded scratch buffer. The results must equal the 1-thread run's bit for bit.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import onnx
import pytest
from aic.compiler.kernel_table import kernel_calls
from aic.compiler.pipeline import lower_model
from aic.ir.loop import For, ForKind
from aic.ir.loop_tools import stmts_of
from onnx import helper

import aic
from tests.onnx_util import graph_model

F = onnx.TensorProto.FLOAT


def many_loops_model() -> onnx.ModelProto:
    """Kernels whose parallel loops have 2 to thousands of iterations."""
    nodes = [
        helper.make_node("MaxPool", ["a"], ["pa"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),  # 3 channels
        helper.make_node("Conv", ["b", "wb"], ["cb"], pads=[1, 1, 1, 1]),  # 7 output channels, 40x40
        helper.make_node("Relu", ["cb"], ["rb"]),
        helper.make_node("Softmax", ["c"], ["sc"], axis=1),  # 37 rows of 2048
        helper.make_node("MatMul", ["d", "wd"], ["md"]),  # 13 x 512 @ 512 x 200
        helper.make_node("MaxPool", ["e"], ["pe"], kernel_shape=[2, 2], strides=[2, 2]),  # 2 channels
        helper.make_node("Sigmoid", ["f"], ["sf"]),  # 300k elements
    ]
    shapes = {"a": [1, 3, 96, 96], "b": [1, 5, 40, 40], "c": [37, 2048], "d": [13, 512], "e": [1, 2, 256, 256],
              "f": [3, 100, 1000]}  # fmt: skip
    outs = {"pa": [1, 3, 96, 96], "rb": [1, 7, 40, 40], "sc": [37, 2048], "md": [13, 200], "pe": [1, 2, 128, 128],
            "sf": [3, 100, 1000]}  # fmt: skip
    rng = np.random.default_rng(0)
    weights = [onnx.numpy_helper.from_array(rng.standard_normal((7, 5, 3, 3)).astype(np.float32), "wb"),
               onnx.numpy_helper.from_array(rng.standard_normal((512, 200)).astype(np.float32), "wd")]  # fmt: skip
    graph = helper.make_graph(
        nodes, "loops", [helper.make_tensor_value_info(n, F, s) for n, s in shapes.items()],
        [helper.make_tensor_value_info(n, F, s) for n, s in outs.items()], weights,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    path = tmp_path_factory.mktemp("stress") / "loops.so"
    aic.compile(many_loops_model(), output=path)
    return path


def _feeds(module, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal(i.shape).astype(np.float32) for i in module.inputs}


def depthwise_model() -> onnx.ModelProto:
    """1x1 expand, depthwise 3x3 stride 2 (4 channel blocks, each padded into its slice of one scratch buffer; on
    AVX-512 hosts the expansion is computed inside, bands x blocks, each band expanded into a buffer of its own
    iteration), 1x1 project: the blocked layout's kernels."""
    rng = np.random.default_rng(1)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["e"]),
        helper.make_node("Clip", ["e", "lo", "hi"], ["ea"]),
        helper.make_node("Conv", ["ea", "w2"], ["d"], group=32, strides=[2, 2], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Clip", ["d", "lo", "hi"], ["da"]),
        helper.make_node("Conv", ["da", "w3"], ["y"]),
    ]
    weights = {"w1": w(32, 16, 1, 1), "w2": w(32, 1, 3, 3), "w3": w(16, 32, 1, 1), "lo": np.array(0, np.float32),
               "hi": np.array(6, np.float32)}  # fmt: skip
    return graph_model(nodes, {"x": np.zeros((1, 16, 96, 96), np.float32)}, ["y"], weights)


@pytest.fixture(scope="module")
def depthwise_artifact(tmp_path_factory):
    blocked = [c.kernel for c in kernel_calls(lower_model(depthwise_model()).calls) if "convblocked" in c.kernel.name]
    parallel = [
        k.name for k in blocked if any(isinstance(s, For) and s.kind is ForKind.PARALLEL for s in stmts_of(k.body))
    ]
    assert len(blocked) >= 2 and len(parallel) == len(blocked), f"expected parallel blocked kernels, got {parallel}"
    path = tmp_path_factory.mktemp("stress") / "depthwise.so"
    aic.compile(depthwise_model(), output=path)
    return path


def _check_runs(path, threads: int, runs: int, seed: int, failures: list[str], pause: float = 0.0) -> None:
    one, many = aic.load(path, num_threads=1), aic.load(path, num_threads=threads)
    for r in range(runs):
        time.sleep(pause)
        feeds = _feeds(one, seed + r)
        for name, a, b in zip([o.name for o in one.outputs], one.run(None, feeds), many.run(None, feeds)):
            if not np.array_equal(a, b):
                failures.append(f"{threads} threads, run {r}: output {name} differs from 1 thread")
                return


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_every_iteration_runs_once(artifact, threads):
    failures: list[str] = []
    _check_runs(artifact, threads, 60, 1000 * threads, failures)
    assert not failures, failures


def test_concurrent_models_with_more_threads_than_cpus(artifact):
    failures: list[str] = []
    callers = [threading.Thread(target=_check_runs, args=(artifact, 3, 40, 100 * i, failures)) for i in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in callers), "a run did not finish (deadlock?)"
    assert not failures, failures


@pytest.mark.parametrize("threads", [2, 3])
def test_workers_woken_for_every_run(artifact, threads, monkeypatch):
    monkeypatch.setenv("AIC_SPIN", "0")  # workers sleep as soon as a run ends: every run wakes them
    failures: list[str] = []
    _check_runs(artifact, threads, 30, 7000 * threads, failures, pause=0.002)
    assert not failures, failures


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_depthwise_scratch_slices_in_parallel(depthwise_artifact, threads):
    failures: list[str] = []
    _check_runs(depthwise_artifact, threads, 40, 300 * threads, failures)
    assert not failures, failures
