"""The compile cache: a second aic.compile of an unchanged model is a lookup; the key
follows the model bytes, target and options; the size bound evicts the least recently
used entries; `aic cache info` / `aic cache clear`."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import aic
from aic.cache import CompileCache, parse_size
from aic.cli import main


def mlp(seed: int = 0, width: int = 64) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((32, width)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((width, 8)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        [w1, w2],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AIC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AIC_CACHE_SIZE", raising=False)
    return tmp_path / "cache"


def expected(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    w1, w2 = (numpy_helper.to_array(t) for t in model.graph.initializer)
    return np.maximum(x @ w1, 0) @ w2


def test_second_compile_is_a_lookup_under_half_a_second(cache_dir, tmp_path, rng):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp(), path)
    first = aic.compile(path)
    assert first.path.is_relative_to(cache_dir / "models")
    start = time.perf_counter()
    second = aic.compile(path)
    assert time.perf_counter() - start < 0.5
    assert second.path == first.path and len(CompileCache().entries()) == 1
    x = rng.standard_normal((4, 32)).astype(np.float32)
    np.testing.assert_allclose(second.run(None, {"x": x})[0], expected(mlp(), x), rtol=1e-4, atol=1e-4)


def test_key_follows_model_target_and_options(cache_dir, tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp(0), path)
    first = aic.compile(path).path
    assert aic.compile(mlp(0).SerializeToString()).path == first  # the same bytes, given as bytes
    assert aic.compile(path, opt_level=1).path != first
    assert aic.compile(path, embed_weights=False).path != first
    onnx.save(mlp(1), path)  # same file, new weights
    assert aic.compile(path).path != first
    assert len(CompileCache().entries()) == 4


def test_output_gets_a_copy_of_the_cached_artifact(cache_dir, tmp_path, rng):
    module = aic.compile(mlp(), output=tmp_path / "out" / "m.so", embed_weights=False)
    assert module.path == (tmp_path / "out" / "m.so").resolve()
    assert (tmp_path / "out" / "m.weights").is_file()
    again = aic.compile(mlp(), output=tmp_path / "other.so", embed_weights=False)  # a hit, copied
    x = rng.standard_normal((4, 32)).astype(np.float32)
    np.testing.assert_allclose(again.run(None, {"x": x})[0], expected(mlp(), x), rtol=1e-4, atol=1e-4)
    assert (tmp_path / "other.weights").is_file()


def test_size_bound_evicts_least_recently_used(cache_dir, monkeypatch):
    aic.compile(mlp(0))
    one = CompileCache().entries()[0].nbytes
    monkeypatch.setenv("AIC_CACHE_SIZE", str(int(2.5 * one)))
    first = aic.compile(mlp(0)).path  # a hit: now the most recently used
    time.sleep(0.02)
    second = aic.compile(mlp(1)).path
    time.sleep(0.02)
    aic.compile(mlp(0))  # used again, so mlp(1) is the oldest
    time.sleep(0.02)
    third = aic.compile(mlp(2)).path
    kept = {e.artifact for e in CompileCache().entries()}
    assert kept == {first, third} and second not in kept


def test_cache_size_zero_turns_model_caching_off(cache_dir, monkeypatch):
    monkeypatch.setenv("AIC_CACHE_SIZE", "0")
    module = aic.compile(mlp())
    assert not module.path.exists() and not (cache_dir / "models").exists()


def test_parse_size():
    assert parse_size("2G") == 2 << 30 and parse_size("500M") == 500 << 20 and parse_size("1024") == 1024
    assert parse_size("1.5KiB") == 1536
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_cli_cache_info_and_clear(cache_dir, capsys):
    aic.compile(mlp())
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(cache_dir) in out and "1 model" in out
    assert main(["cache", "clear"]) == 0
    assert "removed" in capsys.readouterr().out
    assert CompileCache().entries() == [] and not list(cache_dir.glob("*.o"))


def test_external_data_is_part_of_the_key(cache_dir, tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp(0), path, save_as_external_data=True, location="mlp.data", size_threshold=0)
    first = aic.compile(path).path
    assert aic.compile(path).path == first
    data = bytearray((tmp_path / "mlp.data").read_bytes())
    data[0] ^= 0x40  # one weight changed, the .onnx file untouched
    (tmp_path / "mlp.data").write_bytes(bytes(data))
    assert aic.compile(path).path != first
