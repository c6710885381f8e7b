"""Per-kernel timing: events recorded by the runtime, the Chrome trace, no cost when off."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from aic.codegen.target import Target
from aic.compiler.kernel_table import kernel_table
from aic.compiler.passes import optimize
from aic.compiler.program import build_program
from aic.frontend.onnx import load_model

import aic

from .models import mlp


def test_profile_events_and_chrome_trace(tmp_path):
    module = aic.compile(mlp())
    calls = module.metadata["kernel_calls"]
    assert calls and all({"kernel", "group", "flops", "bytes"} <= set(c) for c in calls)
    x = np.ones((4, 32), np.float32)
    module.run(None, {"x": x})
    assert module.last_profile == []  # off by default
    module.enable_profiling(str(tmp_path / "trace"))
    for _ in range(3):
        module.run(None, {"x": x})
    events = module.last_profile
    assert [e.call for e in events] == list(range(len(calls)))
    assert all(e.end_ns >= e.start_ns for e in events)
    assert all(a.end_ns <= b.start_ns for a, b in itertools.pairwise(events))
    path = module.end_profiling()
    trace = json.loads(Path(path).read_text())
    kernels = [e for e in trace if e["cat"] == "Kernel"]
    assert len(kernels) == 3 * len(calls)
    assert [e["name"] for e in kernels[: len(calls)]] == [c["group"] for c in calls]
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in trace)
    assert sum(e["name"] == "model_run" for e in trace) == 3
    module.run(None, {"x": x})  # profiling off again
    assert module.last_profile == []


def test_kernel_table_counts_matmul_flops():
    program = build_program(optimize(load_model(mlp()), 2)[0], "llvm")
    records = kernel_table(program)
    assert [r.group for r in records] == ["MatMul+Add+Relu", "MatMul+Relu", "MatMul"]
    assert records[0].flops == 2 * 4 * 32 * 32 + 4 * 32  # the product and the bias add
    tile = max(16, 2 * Target.parse("llvm").lanes(4))  # executed work: 8 columns may be padded to a tile of two vectors
    assert 2 * 4 * 32 * 8 <= records[2].flops <= 2 * 4 * 32 * tile
    assert records[0].bytes == (4 * 32 + 32 * 32 + 32 + 4 * 32 + 6 * 32) * 4  # x, W1, b, the result, x in a strip


def test_calls_inside_a_loop_are_timed_per_iteration():
    from onnx import TensorProto, helper

    f, i64, b = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    body = helper.make_graph(
        [helper.make_node("Mul", ["y_in", "y_in"], ["sq"]), helper.make_node("Sin", ["sq"], ["y_out"]),
         helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body",
        [helper.make_tensor_value_info("i", i64, []), helper.make_tensor_value_info("c_in", b, []),
         helper.make_tensor_value_info("y_in", f, [8])],
        [helper.make_tensor_value_info("c_out", b, []), helper.make_tensor_value_info("y_out", f, [8])],
    )  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "y"], ["y_end"], body=body)],
        "loop",
        [helper.make_tensor_value_info("n", i64, []), helper.make_tensor_value_info("y", f, [8])],
        [helper.make_tensor_value_info("y_end", f, [8])],
    )
    module = aic.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    module.enable_profiling()
    y = np.linspace(0, 1, 8, dtype=np.float32)
    module.run(None, {"n": np.array(5), "y": y})
    calls = [e.call for e in module.last_profile]
    body_calls = [i for i, c in enumerate(module.metadata["kernel_calls"]) if "Sin" in c["group"]]
    assert len(body_calls) == 1 and calls.count(body_calls[0]) == 5
    module.run(None, {"n": np.array(2), "y": y})
    assert [e.call for e in module.last_profile].count(body_calls[0]) == 2  # the last run's events only
    Path(module.end_profiling()).unlink()
