"""Whole compiles, ONNX model in, loaded .so out, against onnxruntime: aic.compile,
symbolic shapes, several dtypes, threads, the pipeline's progress and errors, and the
`aic compile` / `aic run` commands."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from aic.compiler.pipeline import compile_model
from onnx import TensorProto, helper, numpy_helper

import aic
from aic.cli import main

FLOAT, INT64, FLOAT16 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.FLOAT16


def make_model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ins, outs, **attrs) for op, ins, outs, attrs in nodes],
        "m",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        [numpy_helper.from_array(a, n) for n, a in initializers],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def gelu_model() -> onnx.ModelProto:
    """y = gelu(x * s + b) with erf, and z = tanh(x) - sigmoid(x); x is [batch, 40]."""
    rng = np.random.default_rng(1)
    nodes = [
        ("Mul", ["x", "s"], ["xs"], {}),
        ("Add", ["xs", "b"], ["h"], {}),
        ("Div", ["h", "sqrt2"], ["hs"], {}),
        ("Erf", ["hs"], ["e"], {}),
        ("Add", ["e", "one"], ["e1"], {}),
        ("Mul", ["h", "e1"], ["he"], {}),
        ("Mul", ["he", "half"], ["y"], {}),
        ("Tanh", ["x"], ["t"], {}),
        ("Sigmoid", ["x"], ["sg"], {}),
        ("Sub", ["t", "sg"], ["z"], {}),
    ]
    consts = [
        ("s", rng.normal(size=40).astype(np.float32)),
        ("b", rng.normal(size=40).astype(np.float32)),
        ("sqrt2", np.array(np.sqrt(2), np.float32)),
        ("one", np.array(1, np.float32)),
        ("half", np.array(0.5, np.float32)),
    ]
    io = [("x", FLOAT, ["batch", 40])]
    return make_model(nodes, io, [("y", FLOAT, ["batch", 40]), ("z", FLOAT, ["batch", 40])], consts)


def test_compile_elementwise_model_with_symbolic_batch(rng, tmp_path):
    model = gelu_model()
    module = aic.compile(model, shapes={"batch": 3}, output=tmp_path / "gelu.so")
    assert (tmp_path / "gelu.so").is_file() and [t.shape for t in module.inputs] == [[3, 40]]
    x = rng.normal(0, 3, (3, 40)).astype(np.float32)
    for got, want in zip(module.run(None, {"x": x}), reference(model, {"x": x})):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    (z,) = module.run(["z"], {"x": x})
    np.testing.assert_allclose(z, reference(model, {"x": x})[1], rtol=1e-5, atol=1e-6)


def test_unbound_symbol_names_the_input_and_the_symbol():
    with pytest.raises(ValueError, match=r"input 'x' has symbolic dim 'batch'.*shapes=\{'batch': N\}"):
        compile_model(gelu_model())
    with pytest.raises(ValueError, match=r"shapes names \['seq'\], which are neither inputs"):
        compile_model(gelu_model(), shapes={"batch": 1, "seq": 4})
    with pytest.raises(ValueError, match=r"dim 'batch' is bound to both 2 and 3"):
        compile_model(gelu_model(), shapes={"batch": 2, "x": (3, 40)})
    with pytest.raises(ValueError, match="is not this machine's"):
        aic.compile(gelu_model(), "llvm -mtriple=aarch64-linux-gnu", shapes={"batch": 1})


def test_reductions_movement_and_integers(rng):
    nodes = [
        ("Transpose", ["x"], ["xt"], {"perm": [1, 0, 2]}),
        ("ReduceSum", ["xt", "axes"], ["rs"], {"keepdims": 0}),
        ("ReduceMax", ["x"], ["rm"], {"axes": [2], "keepdims": 1}),
        ("Sub", ["x", "rm"], ["centred"], {}),
        ("Exp", ["centred"], ["ex"], {}),
        ("Reshape", ["ex", "shape"], ["flat"], {}),
        ("Concat", ["flat", "flat"], ["cat"], {"axis": 1}),
        ("Cast", ["x"], ["xi"], {"to": INT64}),
        ("Mod", ["xi", "k"], ["m"], {}),
        ("Greater", ["x", "zero"], ["pos"], {}),
        ("Where", ["pos", "x", "zero"], ["relu"], {}),
    ]
    consts = [
        ("axes", np.array([2], np.int64)),
        ("shape", np.array([2, -1], np.int64)),
        ("k", np.array(3, np.int64)),
        ("zero", np.array(0, np.float32)),
    ]
    outputs = [
        ("rs", FLOAT, [3, 2]),
        ("cat", FLOAT, [2, 24]),
        ("m", INT64, [2, 3, 4]),
        ("pos", TensorProto.BOOL, [2, 3, 4]),
        ("relu", FLOAT, [2, 3, 4]),
    ]
    model = make_model(nodes, [("x", FLOAT, [2, 3, 4])], outputs, consts, opset=13)
    module = aic.compile(model, num_threads=2, cache=False)
    assert not module.path.exists()  # without an output or the cache, the .so is deleted once loaded
    x = (rng.normal(0, 4, (2, 3, 4))).astype(np.float32)
    for info, got, want in zip(module.outputs, module.run(None, {"x": x}), reference(model, {"x": x})):
        assert got.dtype == want.dtype and got.shape == want.shape, info.name
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=info.name)


def test_float16_and_an_output_that_is_an_input(rng):
    nodes = [("Mul", ["x", "x"], ["sq"], {}), ("Add", ["sq", "x"], ["y"], {}), ("Identity", ["x"], ["same"], {})]
    model = make_model(nodes, [("x", FLOAT16, [5, 8])], [("y", FLOAT16, [5, 8]), ("same", FLOAT16, [5, 8])])
    module = aic.compile(model)
    x = rng.normal(size=(5, 8)).astype(np.float16)
    y, same = module.run(None, {"x": x})
    want = reference(model, {"x": x})
    # x*x is rounded to float16 before the add (as in numpy); where x*x + x cancels, that is 1e-3 absolute
    np.testing.assert_allclose(y.astype(np.float32), want[0].astype(np.float32), rtol=2e-3, atol=1e-3)
    np.testing.assert_array_equal(same, x)


def test_parallel_model_with_threads(rng):
    nodes = [
        ("Exp", ["x"], ["e"], {}),
        ("ReduceSum", ["e", "axes"], ["s"], {}),
        ("Add", ["s", "x"], ["sx"], {}),
        ("Div", ["e", "sx"], ["y"], {}),
    ]
    model = make_model(nodes, [("x", FLOAT, [64, 256])], [("y", FLOAT, [64, 256])], [("axes", np.array([1]))])
    x = rng.normal(size=(64, 256)).astype(np.float32)
    want = reference(model, {"x": x})[0]
    for threads in (1, 2):
        module = aic.compile(model, num_threads=threads)
        assert module.num_threads == threads
        np.testing.assert_allclose(module.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-8)


def test_compile_model_reports_progress_and_writes_the_output(tmp_path):
    lines = []
    path = compile_model(
        gelu_model(), shapes={"batch": 1}, output=tmp_path / "m.so", progress=lambda *a: lines.append(a)
    )
    assert path == (tmp_path / "m.so").resolve() and path.is_file()
    assert [(step, total) for step, total, _, seconds in lines if seconds is not None] == [(i, 7) for i in range(1, 8)]
    assert lines[0][2] == "read the model" and lines[-1][2] == "link the model"
    assert lines[-3][2] == "write the weights (0.0 MiB, embedded)"
    with pytest.raises(ValueError, match=r"opt_level must be 0\.\.3"):
        compile_model(gelu_model(), opt_level=5)


def test_cli_compile_and_run(tmp_path, capsys, rng):
    onnx.save(gelu_model(), tmp_path / "m.onnx")
    x = rng.normal(size=(2, 40)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    so = tmp_path / "m.so"
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(so), "-O3", "--shape", "x=2,40"]) == 0
    err = capsys.readouterr().err
    assert "[7/7] link the model ..." in err and f"wrote {so}" in err
    assert main(["run", str(so), "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", str(tmp_path / "out")]) == 0
    assert "y: float32[2, 40]" in capsys.readouterr().out
    # GELU's negative tail is x * (1 + erf) with erf near -1: erf's 2.4e-7 absolute error there is ~1e-7 absolute
    np.testing.assert_allclose(np.load(tmp_path / "out" / "y.npy"), reference(gelu_model(), {"x": x})[0], rtol=1e-5,
                               atol=1e-6)
    assert main(["run", str(so)]) == 1
    assert "missing input(s): x (float32[2, 40])" in capsys.readouterr().err
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(so), "--shape", "batch=two"]) == 1
    assert "--shape expects NAME=N" in capsys.readouterr().err
