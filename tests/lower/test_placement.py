"""Concat by placement: producers write their slabs of a Concat's buffer, no copy kernel; and each fallback."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from aic.compiler.memory import check_program
from aic.compiler.placement import plan_placement
from aic.frontend.onnx import load_model
from aic.ir.loop import Program
from aic.ir.loop_eval import run_program
from onnx import helper

from tests.lower.lower_util import lower
from tests.onnx_util import assert_close, graph_model, run_ort

rng = np.random.default_rng(14)


def w(*shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


def conv(name: str, x: str, cin: int, cout: int, k: int, weights: dict, act: str = "Relu") -> list[onnx.NodeProto]:
    weights[f"{name}_w"], weights[f"{name}_b"] = w(cout, cin, k, k), w(cout)
    pads = [k // 2] * 4
    nodes = [helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c"], pads=pads)]
    return [*nodes, helper.make_node(act, [f"{name}_c"], [name])] if act else nodes


def fire(shape=(1, 4, 6, 6), extra: list[onnx.NodeProto] = (), outputs=("y",), concat=("a", "b")):
    """Two conv branches of x concatenated over channels, then a 1x1 conv (SqueezeNet's fire module)."""
    weights: dict = {}
    c = shape[1]
    nodes = [*conv("a", "x", c, 3, 1, weights), *conv("b", "x", c, 5, 3, weights)]
    channels = sum({"a": 3, "b": 5, "x": c}[n] for n in concat)
    nodes += [helper.make_node("Concat", list(concat), ["cat"], axis=1), *conv("y", "cat", channels, 2, 1, weights, "")]
    nodes[-1].output[0] = "y"
    inputs = {"x": rng.standard_normal(shape).astype(np.float32)}
    return graph_model([*nodes, *extra], inputs, outputs, weights), inputs


def compiled(model: onnx.ModelProto, feeds: dict) -> Program:
    """The lowered program, checked for memory safety and against onnxruntime."""
    program = lower(load_model(model))
    check_program(program)
    for a, e in zip(run_program(program, feeds), run_ort(model, feeds)):
        assert_close(a, e, 1e-4, 1e-5)
    return program


def concat_kernels(program: Program) -> int:
    return sum("Concat" in g for g in program.attrs["groups"])


def test_concat_inputs_write_their_slabs_and_the_copy_disappears():
    program = compiled(*fire())
    assert concat_kernels(program) == 0
    assert len(program.calls) == 3  # conv a, conv b, conv y
    a, b = (next(arg for arg in call.args if arg.name == name) for call, name in zip(program.calls, "ab"))
    assert a.within is b.within is not None and b.offset - a.offset == 3 * 36 * 4  # b's slab right after a's
    assert program.attrs["placed_bytes"] == 8 * 36 * 4


def test_an_input_read_elsewhere_is_read_in_place():
    extra = [helper.make_node("Sigmoid", ["a"], ["s"])]
    program = compiled(*fire(extra=extra, outputs=("y", "s")))
    assert concat_kernels(program) == 0
    sigmoid = next(c for c in program.calls if "Sigmoid" in c.attrs["group"])
    assert sigmoid.args[0].within is not None  # reads conv a's output in its slab


def test_nested_concats_are_placed_inside_the_outer_one():
    weights: dict = {}
    nodes = [*conv("a", "x", 4, 3, 1, weights), *conv("b", "x", 4, 2, 3, weights), *conv("c", "x", 4, 5, 1, weights)]
    nodes += [helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),
              helper.make_node("Concat", ["ab", "c"], ["cat"], axis=1), *conv("y", "cat", 10, 2, 1, weights, "")]
    nodes[-1].output[0] = "y"
    feeds = {"x": rng.standard_normal((1, 4, 5, 5)).astype(np.float32)}
    program = compiled(graph_model(nodes, feeds, ["y"], weights), feeds)
    assert concat_kernels(program) == 0 and len(program.calls) == 4


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_writes_its_slab(mode: str):
    """UNet's decoder: an upsampled map concatenated with a skip connection."""
    weights: dict = {"scales": np.array([1, 1, 2, 2], np.float32)}
    nodes = [*conv("skip", "x", 3, 4, 3, weights), helper.make_node("MaxPool", ["skip"], ["p"], kernel_shape=[2, 2],
                                                                      strides=[2, 2]),
             *conv("deep", "p", 4, 6, 3, weights),
             helper.make_node("Resize", ["deep", "", "scales"], ["up"], mode=mode),
             helper.make_node("Concat", ["up", "skip"], ["cat"], axis=1), *conv("y", "cat", 10, 2, 3, weights, "")]
    nodes[-1].output[0] = "y"
    feeds = {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
    program = compiled(graph_model(nodes, feeds, ["y"], weights), feeds)
    assert concat_kernels(program) == 0
    resize = next(c for c in program.calls if "Resize" in c.attrs["group"])
    assert next(arg for arg in resize.args if arg.name == "up").within is not None


@pytest.mark.parametrize(
    "case",
    [
        dict(concat=("a", "x")),  # a graph input keeps the copy
        dict(concat=("a", "a", "b")),  # an input used twice
        dict(outputs=("y", "cat")),  # the Concat's output is a graph output
        dict(outputs=("y", "a")),  # an input is a graph output
        dict(shape=(2, 4, 6, 6)),  # batch 2: the slabs would be strided
    ],
    ids=["graph-input", "repeated", "output-concat", "output-input", "strided"],
)
def test_fallbacks_keep_the_copy(case: dict):
    program = compiled(*fire(**case))
    assert concat_kernels(program) == 1
    assert program.attrs["placed_bytes"] == 0


def test_symbolic_dims_keep_the_copy():
    model, _ = fire()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "w"
    assert not plan_placement(load_model(model)).concats


def test_cuda_slabs_are_16_byte_aligned():
    model, _ = fire(shape=(1, 4, 3, 3))  # conv a's slab: 3 * 9 floats, not a multiple of 16 bytes
    graph = load_model(model)
    assert plan_placement(graph).concats and not plan_placement(graph, 16).concats


def test_the_memory_check_catches_overlapping_slabs():
    program = lower(load_model(fire()[0]))
    a, b = (next(arg for arg in call.args if arg.name == name) for call, name in zip(program.calls, "ab"))
    b.offset = a.offset + 4  # b's slab now overlaps a's
    with pytest.raises(AssertionError, match="overlap"):
        check_program(program)


def test_the_compiled_library_writes_the_slabs():
    import aic

    model, feeds = fire(extra=[helper.make_node("Sigmoid", ["a"], ["s"])], outputs=("y", "s"))
    module = aic.compile(model, cache=False)
    for got, want in zip(module.run(None, feeds), run_ort(model, feeds)):
        assert_close(got, want, 1e-4, 1e-5)
    module.close()
