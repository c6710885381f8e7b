"""One artifact for a range of sizes: symbolic dims with ranges compiled once, run at any size
in range, checked against onnxruntime; bad sizes refused with a message naming the input, dim,
symbol and range before native code runs."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from aic.compiler.shapes import parse_range, split_ranges
from aic.frontend.load import read_model
from onnx import TensorProto, helper, numpy_helper

import aic
from aic.cli import main

from ..onnx_util import run_ort

ASSETS = Path(__file__).resolve().parents[1] / "assets"
RTOL = 1e-4  # float32, the same math summed in another order


def model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def f32(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def close(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=RTOL * max(1.0, float(np.max(np.abs(w)))))


RNG = np.random.default_rng(0)
W16x24 = RNG.standard_normal((16, 24)).astype(np.float32)
CONV_W = RNG.standard_normal((8, 3, 3, 3)).astype(np.float32)

# name -> (model, ranges, input shapes per size as {input: shape} lists)
CASES = {
    "elementwise_broadcast": (
        model([helper.make_node("Add", ["x", "b"], ["s"]), helper.make_node("Sigmoid", ["s"], ["y"])],
              [f32("x", ["batch", "seq", 16])], [f32("y", ["batch", "seq", 16])],
              [const("b", RNG.standard_normal(16).astype(np.float32))]),
        {"batch": (1, 4), "seq": (1, 64, 16)}, [{"x": (1, 1, 16)}, {"x": (3, 37, 16)}],
    ),
    "matmul_weights": (
        model([helper.make_node("MatMul", ["x", "w"], ["y"])], [f32("x", ["batch", "seq", 16])],
              [f32("y", ["batch", "seq", 24])], [const("w", W16x24)]),
        {"batch": (1, 4), "seq": (1, 64, 16)}, [{"x": (1, 5, 16)}, {"x": (4, 63, 16)}, {"x": (2, 7, 16)}],
    ),
    "attention": (  # q @ k^T over a run-time sequence, softmax along it, @ v
        model([helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
               helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=-1),
               helper.make_node("MatMul", ["p", "v"], ["y"])],
              [f32("q", ["batch", "seq", 8]), f32("k", ["batch", "seq", 8]), f32("v", ["batch", "seq", 8])],
              [f32("y", ["batch", "seq", 8])]),
        {"batch": (1, 3), "seq": (1, 80, 16)},
        [{"q": (1, 1, 8), "k": (1, 1, 8), "v": (1, 1, 8)}, {"q": (3, 45, 8), "k": (3, 45, 8), "v": (3, 45, 8)}],
    ),
    "layernorm_reduce": (
        model([helper.make_node("LayerNormalization", ["x", "g", "b"], ["n"], axis=-1),
               helper.make_node("ReduceMean", ["n"], ["y"], axes=[1], keepdims=0)],
              [f32("x", ["batch", "seq", 16])], [f32("y", ["batch", 16])],
              [const("g", np.linspace(0.5, 1.5, 16, dtype=np.float32)), const("b", np.zeros(16, np.float32))]),
        {"batch": (1, 4), "seq": (1, 64, 16)}, [{"x": (2, 3, 16)}, {"x": (1, 50, 16)}],
    ),
    "conv_pool_gemm": (
        model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
               helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
               helper.make_node("GlobalAveragePool", ["p"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
               helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)],
              [f32("x", ["batch", 3, 12, 12])], [f32("y", ["batch", 5])],
              [const("w", CONV_W), const("fc", RNG.standard_normal((5, 8)).astype(np.float32))]),
        {"batch": (1, 8, 2)}, [{"x": (1, 3, 12, 12)}, {"x": (7, 3, 12, 12)}],
    ),
    "shape_arithmetic": (  # Shape -> Gather -> Concat -> Reshape, as exports do; Concat along seq
        model([helper.make_node("Shape", ["x"], ["shp"]),
               helper.make_node("Gather", ["shp", "zero"], ["b"], axis=0),
               helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"]),
               helper.make_node("Concat", ["b1", "minus1"], ["flat_shape"], axis=0),
               helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
               helper.make_node("Concat", ["flat", "flat"], ["twice"], axis=1),
               helper.make_node("Range", ["zero_s", "b", "one_s"], ["ids"]),
               helper.make_node("Cast", ["ids"], ["idsf"], to=TensorProto.FLOAT),
               helper.make_node("Unsqueeze", ["idsf", "axes1"], ["col"]),
               helper.make_node("Add", ["twice", "col"], ["y"])],
              [f32("x", ["batch", "seq", 4])], [f32("y", ["batch", None])],
              [const("zero", np.array(0, np.int64)), const("axes0", np.array([0], np.int64)),
               const("minus1", np.array([-1], np.int64)), const("zero_s", np.array(0, np.int64)),
               const("one_s", np.array(1, np.int64)), const("axes1", np.array([1], np.int64))]),
        {"batch": (1, 4), "seq": (1, 32)}, [{"x": (1, 1, 4)}, {"x": (4, 9, 4)}],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_one_artifact_runs_every_size_in_range(name, tmp_path):
    onnx_model, ranges, sizes = CASES[name]
    module = aic.compile(onnx_model, shapes=ranges, output=tmp_path / "m.so")
    assert isinstance(module, aic.Module)
    rng = np.random.default_rng(1)
    for shapes in sizes:
        feeds = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        close(module.run(None, feeds), run_ort(onnx_model, feeds))


def test_gpt2_with_dynamic_batch_and_sequence_from_both_exporters(tmp_path):
    for file in ("gpt2_tiny_dyn.onnx", "gpt2_tiny_dyn_dynamo.onnx"):
        path = ASSETS / file
        module = aic.compile(str(path), shapes={"batch": (1, 3), "seq": (1, 96, 32)}, output=tmp_path / "g.so")
        assert [t.shape for t in module.get_inputs()] == [["batch", "seq"]] * 2
        for b, s in [(1, 1), (1, 20), (2, 57), (3, 96)]:
            ids = np.random.default_rng(s).integers(0, 100, (b, s))
            mask = (np.arange(s)[None, :] < s - np.arange(b)[:, None]).astype(np.int64)  # padded rows
            feeds = {"input_ids": ids, "attention_mask": mask}
            close(module.run(None, feeds), run_ort(onnx.load(path), feeds))


def test_bert_with_dynamic_batch_and_sequence(tmp_path):
    path = ASSETS / "bert_tiny_dyn.onnx"
    module = aic.compile(str(path), shapes={"batch": (1, 3), "seq": (1, 96, 32)}, output=tmp_path / "b.so")
    for b, s in [(1, 1), (2, 45), (3, 96)]:
        ids = np.random.default_rng(s).integers(0, 100, (b, s))
        mask = (np.arange(s)[None, :] < s - np.arange(b)[:, None]).astype(np.int64)
        segments = np.repeat((np.arange(s)[None, :] >= s // 2).astype(np.int64), b, axis=0)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": segments}
        close(module.run(None, feeds), run_ort(onnx.load(path), feeds))


def test_resnet_with_dynamic_batch(tmp_path):
    path = ASSETS / "resnet_tiny_dyn.onnx"
    module = aic.compile(str(path), shapes={"batch": (1, 8, 1)}, output=tmp_path / "r.so")
    for b in (1, 2, 3, 8):
        feeds = {"input": np.random.default_rng(b).standard_normal((b, 3, 64, 64)).astype(np.float32)}
        close(module.run(None, feeds), run_ort(onnx.load(path), feeds))


@pytest.fixture(scope="module")
def attention(tmp_path_factory) -> aic.Module:
    onnx_model, ranges, _ = CASES["attention"]
    return aic.compile(onnx_model, shapes=ranges, output=tmp_path_factory.mktemp("att") / "a.so")


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"q": (1, 81, 8), "k": (1, 81, 8), "v": (1, 81, 8)},
         r"input 'q' dim 1 \('seq'\) is 81, outside the range 1..80 the model was compiled for"),
        ({"q": (4, 5, 8), "k": (4, 5, 8), "v": (4, 5, 8)}, r"input 'q' dim 0 \('batch'\) is 4, outside the range 1..3"),
        ({"q": (2, 5, 8), "k": (2, 6, 8), "v": (2, 5, 8)},
         r"input 'k' dim 1 \('seq'\) is 6, but input 'q' dim 1 gives 'seq' = 5"),
        ({"q": (2, 5, 9), "k": (2, 5, 8), "v": (2, 5, 8)}, r"input 'q' has shape \[2, 5, 9\]; the model expects"),
    ],
)  # fmt: skip
def test_bad_sizes_are_refused_naming_input_dim_symbol_and_range(attention, shapes, message):
    feeds = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    with pytest.raises(ValueError, match=message):
        attention.run(None, feeds)


def test_the_c_abi_checks_dims_itself(attention):
    """aic_run_dims validates the dims a C caller passes, before any kernel runs."""
    lib, handle = attention._lib, attention._handle
    q = np.zeros((2, 5, 8), np.float32)
    ins = (ctypes.c_void_p * 3)(*[q.ctypes.data] * 3)
    out = np.zeros((2, 5, 8), np.float32)
    outs = (ctypes.c_void_p * 1)(out.ctypes.data)
    dims = (ctypes.c_int64 * 3)()
    for given, message in [((2, 5, 8, 2, 6, 8, 2, 5, 8), r"input 1 \('k'\) dim 1 \('seq'\) is 6, but an earlier"),
                           ((2, 99, 8) * 3, r"dim 1 \('seq'\) is 99, outside the range 1..80"),
                           ((2, 5, 7) * 3, r"input 0 \('q'\) dim 2 is 7; the model takes only 8")]:  # fmt: skip
        assert lib.aic_run_dims(handle, (ctypes.c_int64 * 9)(*given), ins, outs, dims) == 1
        assert re.search(message, lib.aic_last_error().decode())
    assert lib.aic_run_dims(handle, (ctypes.c_int64 * 9)(*(2, 5, 8) * 3), ins, outs, dims) == 0
    assert list(dims) == [2, 5, 8]


def test_ranges_parse_and_default(tmp_path):
    assert parse_range("seq", "1..512:128").opt == 128
    assert parse_range("seq", (2, 9)).opt == 2
    assert parse_range("batch", "8") is None
    with pytest.raises(ValueError, match=r"need 0 <= min <= opt <= max"):
        parse_range("seq", (4, 2))
    with pytest.raises(ValueError, match=r"expected N or MIN..MAX\[:OPT\]"):
        parse_range("seq", "1-5")
    graph = read_model(CASES["attention"][0])
    fixed, ranges = split_ranges(graph, {"seq": "1..80"})
    assert not fixed and ranges["batch"].hi == 64  # a symbol given nothing takes the default range


def test_cli_compiles_ranges_and_inspect_shows_them(tmp_path, capsys):
    onnx.save(CASES["attention"][0], tmp_path / "a.onnx")
    so = tmp_path / "a.so"
    args = ["compile", str(tmp_path / "a.onnx"), "-o", str(so), "-q", "--shape", "batch=1..3"]
    args += ["--shape", "seq=1..80:16"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["inspect", str(so)]) == 0
    text = capsys.readouterr().out
    assert "dim        seq: 1..80, given at run time (schedules chosen for 16)" in text
    assert "input      q: float32['batch', 'seq', 8]" in text


def test_sizes_that_no_range_expresses_are_refused_clearly(tmp_path):
    """A slice [1:5) of a run-time dim has min(n, 5) - 1 rows: not an expression of n."""
    sliced = model([helper.make_node("Slice", ["x", "s", "e"], ["y"])], [f32("x", ["n", 4])], [f32("y", [None, 4])],
                   [const("s", np.array([1], np.int64)), const("e", np.array([5], np.int64))])  # fmt: skip
    with pytest.raises(aic.LoweringError, match=r"cannot be computed from the input dims .* compiles per input"):
        aic.compile(sliced, shapes={"n": (1, 9)}, output=tmp_path / "s.so")
    specialising = aic.compile(sliced)  # compiled per input signature instead
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.testing.assert_array_equal(specialising.run(None, {"x": x})[0], x[1:5])
