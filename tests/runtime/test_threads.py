"""Threads sharing one Module: data-dependent output shapes belong to their own run, and
close() during runs neither crashes nor deadlocks (checked in a subprocess with a timeout)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import onnx
from onnx import helper

import aic

SHAPE = (48, 48)


def nonzero_model() -> onnx.ModelProto:
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Greater", ["x", "t"], ["big"]), helper.make_node("NonZero", ["big"], ["y"]),
         helper.make_node("Exp", ["x"], ["z"])],
        "nz",
        [helper.make_tensor_value_info("x", f, SHAPE), helper.make_tensor_value_info("t", f, [])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT64, None),
         helper.make_tensor_value_info("z", f, SHAPE)],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_threads_sharing_a_module_get_their_own_data_dependent_shapes():
    module = aic.compile(nonzero_model(), num_threads=1)
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    thresholds = np.linspace(0.02, 0.98, 8, dtype=np.float32)  # each thread: a different number of nonzeros
    expected = [np.stack(np.nonzero(x > t)) for t in thresholds]
    wrong: list[int] = []
    barrier = threading.Barrier(len(thresholds))

    def work(k: int) -> None:
        barrier.wait()
        for _ in range(40):
            y, _ = module.run(None, {"x": x, "t": thresholds[k]})
            if y.shape != expected[k].shape or not np.array_equal(y, expected[k]):
                wrong.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(thresholds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    module.close()
    assert wrong == []


CLOSE_DURING_RUNS = """
import threading, numpy as np, aic, onnx
module = aic.load({path!r}, num_threads=2)
x = np.random.default_rng(0).random({shape}, dtype=np.float32)
want = np.exp(x)
outcomes = []
started = threading.Barrier(5)

def work():
    started.wait()
    while True:
        try:
            _, z = module.run(None, {{"x": x, "t": np.float32(0.5)}})
        except ValueError as err:
            assert "closed" in str(err), err
            outcomes.append("closed")
            return
        if not np.allclose(z, want, rtol=1e-6):
            outcomes.append("wrong")

threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
started.wait()
module.close()
for t in threads:
    t.join()
print(sorted(set(outcomes)))
"""


def test_close_while_other_threads_run(tmp_path):
    from aic.compiler.pipeline import compile_model
    from aic.frontend.onnx import load_model

    path = compile_model(load_model(nonzero_model()), "llvm", 2, tmp_path / "nz.so")
    for _ in range(3):
        script = textwrap.dedent(CLOSE_DURING_RUNS.format(path=str(path), shape=SHAPE))
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == "['closed']", proc.stdout
