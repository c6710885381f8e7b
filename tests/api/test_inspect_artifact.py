"""`aic inspect model.so` shows an artifact's signature, target and metadata without
loading it; `aic.load(model.onnx)` says to compile; the CLI stops quietly on a closed pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import onnx
import pytest
from aic.compiler.pipeline import compile_model

import aic
from aic.cli import main

from .test_cache import mlp


def test_inspect_an_artifact(tmp_path, capsys):
    so = compile_model(mlp(), output=tmp_path / "m.so", embed_weights=False)
    assert main(["inspect", str(so)]) == 0
    out = capsys.readouterr().out
    assert "model      mlp, built by aic" in out and "input      x: float32[4, 32]" in out
    assert "output     y: float32[4, 8]" in out and "side file m.weights (present)" in out
    assert f"cpu {aic.load(so).metadata['target']['cpu']}" in out
    (tmp_path / "m.weights").unlink()
    assert main(["inspect", str(so), "--json"]) == 0  # read from the file: the missing weights do not matter
    meta = json.loads(capsys.readouterr().out)
    assert meta["name"] == "mlp" and meta["inputs"][0]["shape"] == [4, 32] and meta["weights_file"] is True
    assert main(["inspect", str(so)]) == 0 and "side file m.weights (MISSING)" in capsys.readouterr().out


def test_inspect_a_shared_object_aic_did_not_build(capsys):
    assert main(["inspect", os.path.realpath(sys.executable)]) == 1  # an ELF file, but no aic signature
    assert "not one aic built" in capsys.readouterr().err


def test_load_of_an_onnx_file_says_to_compile(tmp_path):
    onnx.save(mlp(), tmp_path / "m.onnx")
    with pytest.raises(aic.ModelLoadError, match=r"this is an ONNX model, not a compiled one; compile it with aic"):
        aic.load(tmp_path / "m.onnx")
    (tmp_path / "m.onnx").rename(tmp_path / "model.bin")
    with pytest.raises(aic.ModelLoadError, match="this is an ONNX model"):
        aic.load(tmp_path / "model.bin")


def test_closed_pipe_is_not_a_traceback(tmp_path):
    onnx.save(mlp(), tmp_path / "m.onnx")
    read, write = os.pipe()
    os.close(read)  # nobody reads: the first write fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "aic.cli", "inspect", str(tmp_path / "m.onnx"), "--ir"],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    finally:
        os.close(write)
    assert proc.returncode == 141 and proc.stderr == ""
