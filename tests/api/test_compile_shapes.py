"""`shapes=` mistakes in Python raise the errors `aic compile --shape` prints, instead of
silently compiling per input signature; a partial binding is kept."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import aic
from aic.cli import main


def batched_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["z"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", "n"])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("shapes", "cli", "message"),
    [
        ({"batsh": 2}, ["batsh=2"], r"shapes names \['batsh'\], which are neither inputs"),
        ({"x": (2, 3, 4)}, ["x=2,3,4"], r"shapes\['x'\] = \[2, 3, 4\] has rank 3"),
        ({"batch": -1}, None, r"shapes\['batch'\] must be a size"),
    ],
)
def test_shape_mistakes_raise_as_in_the_cli(tmp_path, capsys, shapes, cli, message):
    with pytest.raises(ValueError, match=message):
        aic.compile(batched_model(), shapes=shapes)
    if cli is not None:
        onnx.save(batched_model(), tmp_path / "m.onnx")
        args = ["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.so"), "-q"]
        assert main([*args, *(a for item in cli for a in ("--shape", item))]) == 1
        err = capsys.readouterr().err
        assert err.startswith("aic: error: ") and re.search(message, err)


def test_a_partial_binding_is_kept_when_compiling_per_signature(rng):
    module = aic.compile(batched_model(), shapes={"n": 3})
    assert isinstance(module, aic.SpecializingModule)
    assert module.get_inputs()[0].shape == ["batch", 3]
    x, y = (rng.standard_normal((2, 3)).astype(np.float32) for _ in range(2))
    np.testing.assert_array_equal(module.run(None, {"x": x, "y": y})[0], x + y)
    with pytest.raises(ValueError, match=r"input 'x' has shape \[2, 4\]; the model expects \['batch', 3\]"):
        module.run(None, {"x": np.zeros((2, 4), np.float32), "y": np.zeros((2, 4), np.float32)})
