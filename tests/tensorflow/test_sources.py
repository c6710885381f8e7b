"""SavedModel folders, frozen GraphDefs, .keras files and TensorFlow objects compile and match TensorFlow."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from aic.frontend.tensorflow import TensorFlowModel, TFFrontendError, load_tensorflow
from aic.frontend.tensorflow.protos import GraphDef

import aic
from aic.cli import main

from .models import frozen_graph_def, small_cnn
from .util import close


@pytest.fixture(scope="module")
def cnn() -> keras.Model:
    return small_cnn()


@pytest.fixture(scope="module")
def exported(cnn: keras.Model, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tf")
    cnn.export(str(folder / "saved"), verbose=False)
    cnn.save(folder / "model.keras")
    return {
        "saved_model": folder / "saved",
        "keras": folder / "model.keras",
        "graph_def": frozen_graph_def(cnn, folder / "frozen.pb"),
    }


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype(np.float32)


@pytest.mark.parametrize("kind", ["saved_model", "graph_def", "keras", "object"])
def test_compiled_model_matches_tensorflow(
    kind: str, cnn: keras.Model, exported: dict[str, Path], image: np.ndarray
) -> None:
    source = cnn if kind == "object" else exported[kind]
    module = aic.compile(source, shapes={"batch": 1})
    expected = cnn(image, training=False).numpy()
    (actual,) = module.run(None, {module.inputs[0].name: image})
    close(actual, expected, kind)


def test_saved_model_names_and_signatures(tmp_path: Path) -> None:
    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32, name="a")])
        def __call__(self, a: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"sum": tf.reduce_sum(a, 1), "scaled": a * 3.0}

        @tf.function(input_signature=[tf.TensorSpec([4], tf.float32, name="v")])
        def negate(self, v: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"neg": -v}

    module = Two()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.__call__, "negate": module.negate})
    graph = load_tensorflow(tmp_path)
    assert [v.name for v in graph.inputs] == ["a"]
    assert [v.name for v in graph.outputs] == ["scaled", "sum"]
    other = load_tensorflow(TensorFlowModel(tmp_path, signature="negate"))
    assert [v.name for v in other.inputs] == ["v"] and [v.name for v in other.outputs] == ["neg"]
    with pytest.raises(TFFrontendError, match=r"no signature .nope.*negate"):
        load_tensorflow(TensorFlowModel(tmp_path, signature="nope"))
    compiled = aic.compile(module)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    scaled, total = compiled.run(None, {"a": a})
    close(scaled, a * 3, "scaled")
    close(total, a.sum(1), "sum")


def test_graph_def_outputs_and_inspect(exported: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = exported["graph_def"]
    graph = load_tensorflow(path)
    assert [v.name for v in graph.outputs] == ["Identity"]  # the Identity sink, NoOp ignored
    node = next(n.name for n in GraphDef.FromString(path.read_bytes()).node if n.op == "Relu")
    picked = load_tensorflow(TensorFlowModel(path, outputs=(node, "Identity")))
    assert [v.name for v in picked.outputs] == [node, "Identity"]
    for source in (exported["saved_model"], exported["keras"], path):
        assert main(["inspect", str(source)]) == 0
    assert main(["inspect", str(path), "--outputs", node, "-O2", "--json"]) == 0
    assert "Conv" in capsys.readouterr().out


def test_cli_compile_graph_def(exported: dict[str, Path], tmp_path: Path, image: np.ndarray, cnn: keras.Model) -> None:
    out = tmp_path / "m.so"
    assert main(["compile", str(exported["graph_def"]), "-o", str(out), "--shape", "batch=1", "-q"]) == 0
    (actual,) = aic.load(out).run(None, {"image": image})
    close(actual, cnn(image, training=False).numpy(), "cli")


def _node(graph: object, name: str, op: str, *inputs: str) -> None:
    node = graph.node.add(name=name, op=op)  # type: ignore[attr-defined]
    node.input.extend(inputs)
    if op == "Placeholder":
        node.attr["dtype"].type = 1
        node.attr["shape"].shape.dim.add(size=4)


def test_unsupported_ops_listed_at_once(tmp_path: Path) -> None:
    graph = GraphDef()
    _node(graph, "x", "Placeholder")
    _node(graph, "a", "FancyOp", "x")
    _node(graph, "b", "FancyOp", "a")
    _node(graph, "c", "Relu", "b")
    _node(graph, "d", "OtherOp", "c")
    path = tmp_path / "bad.pb"
    path.write_bytes(graph.SerializeToString())
    with pytest.raises(TFFrontendError) as err:
        load_tensorflow(path)
    message = str(err.value)
    assert "2 unsupported TensorFlow ops" in message
    assert "FancyOp x2 (first node 'a')" in message and "OtherOp x1 (first node 'd')" in message


def test_unreadable_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\xff\xff\xff not a protobuf")
    with pytest.raises(TFFrontendError, match="not a TensorFlow GraphDef"):
        load_tensorflow(junk)
    with pytest.raises(TFFrontendError, match="no such file"):
        load_tensorflow(tmp_path / "missing.pb")
    (tmp_path / "folder").mkdir()
    with pytest.raises(TFFrontendError, match="not a SavedModel"):
        load_tensorflow(tmp_path / "folder")
    with pytest.raises(TFFrontendError, match="no node 'nope'"):
        graph = GraphDef()
        _node(graph, "x", "Placeholder")
        _node(graph, "y", "Relu", "x")
        (tmp_path / "ok.pb").write_bytes(graph.SerializeToString())
        load_tensorflow(TensorFlowModel(tmp_path / "ok.pb", outputs=("nope",)))


def test_tf_function_object(image: np.ndarray) -> None:
    fn = tf.function(lambda x: tf.nn.relu(x) * 2.0, input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32)])
    module = aic.compile(fn)
    (actual,) = module.run(None, {module.inputs[0].name: image})
    close(actual, fn(image).numpy(), "tf.function")
    with pytest.raises(TFFrontendError, match="no input_signature"):
        aic.compile(tf.function(lambda x: x))


_WITHOUT_TF = """
import sys
sys.modules["tensorflow"] = None  # importing it now fails
from aic.frontend.tensorflow import TFFrontendError, load_tensorflow
graph = load_tensorflow(sys.argv[1])
print("graph-def-ok", len(graph.nodes))
try:
    load_tensorflow(sys.argv[2])
except TFFrontendError as err:
    print(err)
"""


def test_graph_def_reads_without_tensorflow(exported: dict[str, Path]) -> None:
    import subprocess
    import sys

    args = [sys.executable, "-c", _WITHOUT_TF, str(exported["graph_def"]), str(exported["saved_model"])]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "graph-def-ok" in out
    assert "pip install aic[tf]" in out


def test_outputs_named_after_keys_even_when_shared_or_inputs() -> None:
    def fn(x: tf.Tensor) -> dict[str, tf.Tensor]:
        y = x * 2.0
        return {"same": x, "twice": y, "also": y}

    concrete = tf.function(fn, input_signature=[tf.TensorSpec([2], tf.float32, name="x")]).get_concrete_function()
    graph = load_tensorflow(concrete)
    assert [v.name for v in graph.inputs] == ["x"]
    assert [v.name for v in graph.outputs] == ["also", "same", "twice"]
