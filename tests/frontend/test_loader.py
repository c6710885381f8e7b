"""Loading ONNX models: paths, protos, external weights, symbolic dims, names, functions."""

import numpy as np
import onnx
import pytest
from aic.frontend.onnx import FrontendError, load_model
from aic.ir import print_graph, run_graph
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from tests.onnx_util import assert_close, run_interpreter, run_ort

F32 = np.float32


def mlp(rng, batch="batch", opset=17) -> onnx.ModelProto:
    w1 = nh.from_array(rng.standard_normal((8, 16)).astype(F32), "w1")
    b1 = nh.from_array(rng.standard_normal(16).astype(F32), "b1")
    w2 = nh.from_array(rng.standard_normal((16, 4)).astype(F32), "w2")
    nodes = [
        h.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        h.make_node("Add", ["h", "b1"], ["h1"], name="bias1"),
        h.make_node("Relu", ["h1"], ["r"], name="relu"),
        h.make_node("MatMul", ["r", "w2"], ["y"], name="fc2"),
    ]
    graph = h.make_graph(
        nodes,
        "mlp",
        [h.make_tensor_value_info("x", T.FLOAT, [batch, 8])],
        [h.make_tensor_value_info("y", T.FLOAT, [batch, 4])],
        [w1, b1, w2],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def test_path_and_proto_give_the_same_graph(rng, tmp_path):
    model = mlp(rng)
    path = tmp_path / "mlp.onnx"
    onnx.save(model, path)
    from_path, from_proto = load_model(path), load_model(model)
    assert print_graph(from_path) == print_graph(from_proto)
    assert load_model(str(path)).outputs[0].name == "y"
    x = rng.standard_normal((3, 8)).astype(F32)
    assert_close(run_graph(from_path, {"x": x})[0], run_ort(model, {"x": x})[0], rtol=1e-5)


def test_external_data(rng, tmp_path):
    model = mlp(rng)
    path = tmp_path / "ext.onnx"
    saved = onnx.ModelProto.FromString(model.SerializeToString())  # onnx.save edits the proto it saves
    onnx.save(saved, path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").stat().st_size > 0
    assert path.stat().st_size < 1000, "weights are outside the model file"
    graph = load_model(path)
    assert [c.name for c in graph.constants()] == ["w1", "b1", "w2"]
    x = rng.standard_normal((2, 8)).astype(F32)
    assert_close(run_graph(graph, {"x": x})[0], run_ort(model, {"x": x})[0], rtol=1e-5)


def test_external_data_missing_file(rng, tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save(mlp(rng), path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(FrontendError, match="external weights") as info:
        load_model(path)
    assert info.value.__cause__ is None


def test_external_data_proto_without_its_files(rng, tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save(mlp(rng), path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    proto = onnx.load(path, load_external_data=False)
    with pytest.raises(FrontendError, match="tensor 'w1' keeps its data in an external file"):
        load_model(proto)


def test_symbolic_dims_are_kept_and_propagated(rng):
    graph = load_model(mlp(rng))
    assert graph.inputs[0].type.shape == ("batch", 8)
    assert [n.outputs[0].type.shape for n in graph.nodes] == [("batch", 16), ("batch", 16), ("batch", 16), ("batch", 4)]
    x = rng.standard_normal((5, 8)).astype(F32)
    assert run_graph(graph, {"x": x})[0].shape == (5, 4)


def test_unnamed_dims_get_generated_symbols(rng):
    model = mlp(rng, batch=None)
    model.graph.input[0].name = "input:0"
    model.graph.node[0].input[0] = "input:0"
    graph = load_model(model)
    (dim, eight) = graph.inputs[0].type.shape
    assert dim == "input_0_d0" and eight == 8
    assert graph.outputs[0].type.shape == (dim, 4)


def test_dim_params_that_are_not_identifiers(rng):
    model = mlp(rng, batch="batch size")
    assert load_model(model).inputs[0].type.shape[0] == "batchsize"
    model = mlp(rng, batch="N+1")
    graph = load_model(model)
    assert graph.inputs[0].type.shape[0] == "(N+1)"
    x = rng.standard_normal((3, 8)).astype(F32)
    assert run_graph(graph, {"x": x})[0].shape == (3, 4)


def test_input_without_shape_is_refused(rng):
    model = mlp(rng)
    model.graph.input[0].type.tensor_type.ClearField("shape")
    with pytest.raises(FrontendError, match="graph input 'x' has no shape"):
        load_model(model)


def test_initializer_listed_as_input_is_a_constant(rng):
    """IR version 3 models list initializers among the graph inputs."""
    model = mlp(rng)
    model.graph.input.append(h.make_tensor_value_info("w1", T.FLOAT, [8, 16]))
    graph = load_model(model)
    assert [v.name for v in graph.inputs] == ["x"]
    assert graph.nodes[0].inputs[1].is_const


def test_model_local_functions_are_inlined(rng):
    square_plus = onnx.helper.make_function(
        "local",
        "SquarePlus",
        ["a", "b"],
        ["c"],
        [h.make_node("Mul", ["a", "a"], ["sq"]), h.make_node("Add", ["sq", "b"], ["c"])],
        [h.make_opsetid("", 17)],
    )
    node = h.make_node("SquarePlus", ["x", "y"], ["z"], domain="local")
    graph = h.make_graph(
        [node],
        "g",
        [h.make_tensor_value_info(n, T.FLOAT, [3]) for n in "xy"],
        [h.make_tensor_value_info("z", T.FLOAT, [3])],
    )
    model = h.make_model(
        graph, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("local", 1)], functions=[square_plus]
    )
    model.ir_version = 8
    feeds = {"x": rng.standard_normal(3).astype(F32), "y": rng.standard_normal(3).astype(F32)}
    (z,) = run_interpreter(model, feeds)
    assert_close(z, run_ort(model, feeds)[0])
    assert [n.op for n in load_model(model).nodes] == ["Mul", "Add"]


def test_output_names_survive_name_clashes(rng):
    """Names the frontend invents (here for Softmax-11 on a 3-D input) never take an ONNX name."""
    nodes = [
        h.make_node("Softmax", ["x"], ["y"], axis=1, name="y"),
        h.make_node("Identity", ["y"], ["y_flatten"], name="id"),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 4])],
        [h.make_tensor_value_info("y", T.FLOAT, None), h.make_tensor_value_info("y_flatten", T.FLOAT, None)],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 11)])
    model.ir_version = 8
    loaded = load_model(model)
    assert [v.name for v in loaded.outputs] == ["y", "y_flatten"]
    x = rng.standard_normal((2, 3, 4)).astype(F32)
    for a, e in zip(run_interpreter(model, {"x": x}), run_ort(model, {"x": x})):
        assert_close(a, e, rtol=1e-5)


def test_external_data_larger_than_the_memory_left(rng, tmp_path, monkeypatch):
    from aic.frontend.onnx import reader

    path = tmp_path / "ext.onnx"
    onnx.save(mlp(rng), path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    monkeypatch.setattr(reader, "available_memory", lambda: 100)
    with pytest.raises(FrontendError, match=r"ext\.onnx: its external weights take 0\.0 GiB; loading them needs 2x "
                       r"that, more than the 0\.0 GiB of memory available \(largest: 'w\d' 0\.00 GiB, "):
        load_model(path)
