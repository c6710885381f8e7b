"""Parallel loops must not share writes: results with two threads equal the serial ones, run after run."""

import numpy as np
import onnx
import pytest
from aic.ir.loop import ForKind
from onnx import TensorProto, helper, numpy_helper

import aic


def gemm_model(m: int, k: int, n: int, seed: int = 0) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 8
    return model, w, b


def test_gemm_with_ragged_tiles_is_the_same_on_two_threads():
    # 32 rows and 40 columns leave a corner tile (2 rows x 8 columns) whose only long loop is the
    # reduction over k: it must stay serial.
    model, w, b = gemm_model(32, 1024, 40)
    x = np.random.default_rng(1).standard_normal((32, 1024)).astype(np.float32)
    expected = (x.astype(np.float64) @ w.T.astype(np.float64) + b).astype(np.float32)
    module = aic.compile(model, num_threads=2)
    for _ in range(10):
        np.testing.assert_allclose(module.run(None, {"x": x})[0], expected, rtol=1e-4, atol=1e-3)


def test_reduction_loops_are_not_parallel():
    from aic.codegen.target import Target
    from aic.compiler.program import build_program
    from aic.frontend.onnx import load_model
    from aic.ir.loop import Allocate, For, Store
    from aic.ir.loop_tools import stmts_of

    program = build_program(load_model(gemm_model(32, 1024, 40)[0]), Target.parse("llvm"))
    for kernel in program.kernels:
        outer_locals = {s.buffer for s in stmts_of(kernel.body) if isinstance(s, Allocate)}
        for loop in (s for s in stmts_of(kernel.body) if isinstance(s, For) and s.kind is ForKind.PARALLEL):
            inner_locals = {s.buffer for s in stmts_of(loop.body) if isinstance(s, Allocate)}
            shared = outer_locals - inner_locals
            writes = {s.buffer for s in stmts_of(loop.body) if isinstance(s, Store)}
            assert not (writes & shared), f"parallel loop {loop.var.name} in {kernel.name} writes a shared local buffer"


@pytest.mark.parametrize("rows", [17, 37, 1000])
@pytest.mark.parametrize("threads", [2, 3])
def test_every_iteration_of_a_parallel_loop_runs_once(rows, threads):
    # The pool's chunks: equal ones below two iterations per chunk (17 rows), shrinking ones above (37, 1000).
    cols = 65536 // rows + 1
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Add", ["t", "x"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, cols])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, cols])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 8
    x = np.random.default_rng(rows).standard_normal((rows, cols)).astype(np.float32)
    module = aic.compile(model, num_threads=threads)
    for _ in range(3):
        np.testing.assert_array_equal(module.run(None, {"x": x})[0], x * 2 + x)
