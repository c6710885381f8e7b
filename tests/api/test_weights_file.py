"""Weights in a side file: model.so + model.weights, mapped at load and checked against
the digest recorded in the .so; embedded below the threshold or with --embed-weights."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from aic.compiler.pipeline import compile_model
from aic.runtime import package

import aic
from aic.cli import main

from .test_cache import expected, mlp


def run(path, x: np.ndarray) -> np.ndarray:
    return aic.load(path).run(None, {"x": x})[0]


def test_side_file_runs_and_matches(tmp_path, rng):
    so = compile_model(mlp(), output=tmp_path / "m.so", embed_weights=False)
    blob = (tmp_path / "m.weights").read_bytes()
    assert len(blob) >= aic.load(so).metadata["weights_bytes"] + 64 and blob[-64:].startswith(b"AICWGT01")
    x = rng.standard_normal((4, 32)).astype(np.float32)
    np.testing.assert_allclose(run(so, x), expected(mlp(), x), rtol=1e-4, atol=1e-4)


def test_threshold_decides_where_weights_go(tmp_path, monkeypatch):
    monkeypatch.setattr(package, "EMBED_LIMIT", 1024)  # the MLP's 10 KiB of weights are "large"
    compile_model(mlp(), output=tmp_path / "big.so")
    assert (tmp_path / "big.weights").is_file()
    compile_model(mlp(), output=tmp_path / "one.so", embed_weights=True)
    assert not (tmp_path / "one.weights").exists()
    monkeypatch.setattr(package, "EMBED_LIMIT", 64 << 20)
    compile_model(mlp(), output=tmp_path / "small.so")
    assert not (tmp_path / "small.weights").exists()


@pytest.mark.parametrize("damage", ["missing", "other build", "truncated"])
def test_a_wrong_weights_file_is_a_clear_load_error(tmp_path, damage):
    so = compile_model(mlp(0), output=tmp_path / "m.so", embed_weights=False)
    other = compile_model(mlp(1), output=tmp_path / "other" / "m.so", embed_weights=False)
    side = tmp_path / "m.weights"
    if damage == "missing":
        side.unlink()
        message = r"cannot open the weights file .*m\.weights: No such file"
    elif damage == "other build":
        shutil.copyfile(package.weights_path(other), side)
        message = r"m\.weights does not match this model \(its sha256 differs\)"
    else:
        side.write_bytes(side.read_bytes()[:-10])
        message = r"m\.weights holds \d+ bytes; this model expects \d+"
    with pytest.raises(aic.ModelLoadError, match=message):
        aic.load(so)


def test_renamed_pair_and_deleted_files_after_load(tmp_path, rng):
    so = compile_model(mlp(), output=tmp_path / "m.so", embed_weights=False)
    (tmp_path / "renamed").mkdir()
    moved = tmp_path / "renamed" / "net.so"
    so.rename(moved)
    (tmp_path / "m.weights").rename(tmp_path / "renamed" / "net.weights")
    module = aic.load(moved)
    shutil.rmtree(tmp_path / "renamed")  # mapped at load: the module keeps working
    x = rng.standard_normal((4, 32)).astype(np.float32)
    np.testing.assert_allclose(module.run(None, {"x": x})[0], expected(mlp(), x), rtol=1e-4, atol=1e-4)


def test_cli_flags_choose_the_weights_placement(tmp_path, capsys):
    onnx.save(mlp(), tmp_path / "m.onnx")
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "a.so"), "--weights-file"]) == 0
    assert "write the weights (0.0 MiB, side file)" in capsys.readouterr().err
    assert (tmp_path / "a.weights").is_file()
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "b.so"), "--embed-weights", "-q"]) == 0
    assert not (tmp_path / "b.weights").exists()
    code = "import aic, numpy as np; m = aic.load(%r); print(m.run(None, {'x': np.ones((4, 32), np.float32)})[0].sum())"
    sums = [subprocess.run([sys.executable, "-c", code % str(tmp_path / f"{n}.so")], capture_output=True,
                           text=True, check=True).stdout for n in "ab"]  # fmt: skip
    assert sums[0] == sums[1] and sums[0].strip()


def big_mlp() -> onnx.ModelProto:
    """4 MiB of weights and a 4 MiB hidden layer in the arena: both go to huge-page memory."""
    rng = np.random.default_rng(0)
    w1 = onnx.numpy_helper.from_array(rng.standard_normal((1024, 1024)).astype(np.float32) / 32, "w1")
    w2 = onnx.numpy_helper.from_array(rng.standard_normal((1024, 8)).astype(np.float32), "w2")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w1"], ["h"]), onnx.helper.make_node("Relu", ["h"], ["r"]),
         onnx.helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "big", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1024, 1024])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1024, 8])], [w1, w2],
    )  # fmt: skip
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


@pytest.mark.parametrize("keep_mapping", [False, True])
def test_large_weights_are_copied_off_the_file_unless_asked(tmp_path, rng, monkeypatch, keep_mapping):
    """Weights of 4 MiB or more are copied to huge-page memory and the file unmapped when the first instance is
    created (opening the .so alone keeps the file mapping); AIC_WEIGHTS_MAP=1 keeps the file mapped. Both run
    the same."""
    model = big_mlp()
    so = compile_model(model, output=tmp_path / "big.so", embed_weights=False)
    monkeypatch.setenv("AIC_WEIGHTS_MAP", "1" if keep_mapping else "0")  # read by the first aic_create
    ctypes.CDLL(str(so))  # what a program reading only aic_signature() does
    assert file_is_mapped(tmp_path / "big.weights")
    module = aic.load(so, num_threads=2)
    assert module.metadata["arena_bytes"] >= 4 << 20
    x = rng.standard_normal((1024, 1024)).astype(np.float32)
    w1, w2 = (onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer)
    want = np.maximum(x @ w1, 0) @ w2
    np.testing.assert_allclose(module.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-3)
    assert file_is_mapped(tmp_path / "big.weights") == keep_mapping


@pytest.mark.parametrize("keep_blob", [False, True])
def test_large_embedded_weights_are_copied_off_the_so_unless_asked(tmp_path, rng, monkeypatch, keep_blob):
    """Embedded weights of 4 MiB or more are copied to huge-page memory by the first instance, and the blob's
    pages in the .so dropped from the process (its resident size stays small after a run); AIC_WEIGHTS_MAP=1
    runs from the blob."""
    model = big_mlp()
    so = compile_model(model, output=tmp_path / "big.so", embed_weights=True)
    monkeypatch.setenv("AIC_WEIGHTS_MAP", "1" if keep_blob else "0")
    module = aic.load(so, num_threads=1)
    x = rng.standard_normal((1024, 1024)).astype(np.float32)
    w1, w2 = (onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer)
    np.testing.assert_allclose(module.run(None, {"x": x})[0], np.maximum(x @ w1, 0) @ w2, rtol=1e-4, atol=1e-3)
    assert (resident_kib(so) >= 4096) == keep_blob


def resident_kib(path) -> int:
    """KiB of `path`'s mappings resident in this process (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
                inside = line.rstrip().endswith(str(path))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def file_is_mapped(path) -> bool:
    with open("/proc/self/maps") as maps:
        return str(path) in maps.read()
