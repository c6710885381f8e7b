"""`aic check`: aic against onnxruntime and the float64 reference, and --bisect."""

from __future__ import annotations

import json

import numpy as np
import onnx
from aic.frontend.onnx import load_model
from onnx import numpy_helper

import aic
from aic.checker import check, compare, random_inputs, to_float64
from aic.cli import main

from .models import embedding, layernorm_mlp, mlp


def test_check_passes_on_a_good_model():
    result = check(mlp())
    assert result.ok and result.divergence is None
    (out,) = result.outputs
    assert out.name == "y" and out.shape == [4, 8]
    assert out.vs_onnxruntime.ok and out.vs_reference.ok
    assert 0 < out.vs_reference.max_abs < 1e-4  # float32 against float64: small, not zero


def test_int_inputs_stay_below_the_table_size():
    ids = random_inputs(load_model(embedding(vocab=5)), seed=3)["ids"]
    assert ids.dtype == np.int64 and ids.max() < 5 and ids.min() >= 0
    assert check(embedding(vocab=5)).ok  # onnxruntime rejects out-of-range ids


def test_bisect_names_the_node_reading_the_perturbed_weight():
    result = aic.check(mlp(perturb_second=0.5), reference_model=mlp(), bisect=True)
    assert not result.ok
    d = result.divergence
    assert d is not None and (d.value, d.node, d.op) == ("h2", "fc2", "MatMul")
    assert d.input_shapes == ["f32[4,32]", "f32[32,32]"] and "model" in d.produced_by
    assert json.loads(json.dumps(result.to_json()))["divergence"]["node"] == "fc2"


def test_cli_exit_status_and_json(tmp_path, capsys):
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    onnx.save(mlp(), good)
    onnx.save(mlp(perturb_second=0.5), bad)
    assert main(["check", str(good)]) == 0
    assert "PASSED" in capsys.readouterr().out
    report = tmp_path / "check.json"
    assert main(["check", str(bad), "--reference", str(good), "--bisect", "--json", str(report)]) == 1
    out = capsys.readouterr().out
    assert "FAIL y" in out and "node 'fc2' (MatMul)" in out
    assert json.loads(report.read_text())["ok"] is False


def test_compare_tolerances():
    a = np.array([1.0, 2.0, np.nan], np.float32)
    assert compare(a, a.copy(), {"float32": (1e-4, 1e-4)}).ok  # NaN where both are NaN
    assert not compare(a, a + np.float32(1e-2), {"float32": (1e-4, 1e-4)}).ok
    assert not compare(np.array([1, 2]), np.array([1, 3]), {}).ok  # ints exact


def test_float64_model_widens_weights_and_casts():
    wide = to_float64(mlp())
    assert {t.data_type for t in wide.graph.initializer} == {onnx.TensorProto.DOUBLE}
    assert wide.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


def test_bisect_names_the_pass_that_created_the_node():
    result = check(layernorm_mlp(gamma_shift=0.3), reference_model=layernorm_mlp(), bisect=True)
    d = result.divergence
    assert d is not None and d.value == "ln" and d.op == "LayerNormalization"
    assert d.produced_by == "pass fuse-layernorm"
    assert d.input_shapes == ["f32[4,16]", "f32[16]", "f32[16]"]
    assert check(layernorm_mlp()).ok


def test_a_model_onnxruntime_cannot_run_is_checked_against_the_reference(monkeypatch):
    import aic.checker

    def refuse(*args, **kwargs):
        raise RuntimeError("not implemented in this onnxruntime")

    monkeypatch.setattr(aic.checker, "run_onnxruntime", refuse)
    result = check(mlp())
    assert result.ok and result.outputs[0].vs_onnxruntime is None and result.outputs[0].vs_reference.ok
    assert "onnxruntime could not run the model" in result.notes[0]


def test_bisect_fails_a_wrong_value_that_fades_before_the_outputs():
    good = mlp()
    feeds = random_inputs(load_model(good))
    w = {t.name: numpy_helper.to_array(t) for t in good.graph.initializer}
    h2 = np.maximum(feeds["x"] @ w["W1"] + w["b"], 0) @ w["W2"]
    j = int(np.argmax((h2 < 0).all(axis=0)))  # a column that relu2 zeroes in every row
    assert (h2[:, j] < 0).all()
    bad = onnx.ModelProto()
    bad.CopyFrom(good)
    w2 = w["W2"].copy()
    w2[:, j] -= 1.0  # h2[:, j] only gets more negative: y does not change
    next(t for t in bad.graph.initializer if t.name == "W2").CopyFrom(numpy_helper.from_array(w2, "W2"))
    assert check(bad, reference_model=good).ok
    result = check(bad, reference_model=good, bisect=True)
    assert not result.ok and result.outputs[0].ok
    assert result.divergence is not None and result.divergence.node == "fc2"
    assert "intermediate value differs" in result.text()
    assert check(good, bisect=True).ok  # no divergence on the good model
