"""The C examples as documented: `./run_model model.so` (a bare file name), and two models
linked into one program through --symbol-prefix, found at run time through an rpath."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from aic.cli import main

from .test_cache import mlp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="needs make and cc")


def unary_model(op: str, name: str) -> onnx.ModelProto:
    """y = x + x (op "Add") or x * x ("Mul") on a float32[4]."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "x"], ["y"])], name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def make(target: str, tmp_path: Path, *variables: str) -> Path:
    """`make TARGET` in a copy of examples/ (with runtime/aic.h beside it, as in the repo)."""
    folder = tmp_path / "examples"
    (tmp_path / "runtime").mkdir(exist_ok=True)
    shutil.copyfile(EXAMPLES.parent / "runtime" / "aic.h", tmp_path / "runtime" / "aic.h")
    for name in ("Makefile", "run_model.c", "two_models.c"):
        shutil.copyfile(EXAMPLES / name, folder / name)
    cflags = "CFLAGS=-O2 -Wall -Wextra -Werror -std=c11 -D_POSIX_C_SOURCE=200809L"
    build = subprocess.run(["make", "-s", "-C", str(folder), cflags, *variables, target],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    return folder / target


def test_run_model_takes_a_bare_file_name(tmp_path):
    folder = tmp_path / "examples"
    folder.mkdir()
    onnx.save(mlp(), tmp_path / "m.onnx")
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(folder / "model.so"), "-q"]) == 0
    exe = make("run_model", tmp_path)
    run = subprocess.run(["./run_model", "model.so"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "input x: float32[4,32]" in run.stdout and "output y: float32[4,8]" in run.stdout
    assert exe.is_file()


def test_two_prefixed_models_in_one_program(tmp_path):
    folder = tmp_path / "examples"
    folder.mkdir()
    for op, name, prefix in [("Add", "double", "twice"), ("Mul", "square", "square")]:
        onnx.save(unary_model(op, name), tmp_path / f"{name}.onnx")
        args = [str(tmp_path / f"{name}.onnx"), "-o", str(folder / f"{name}.so"), "--symbol-prefix", prefix]
        assert main(["compile", *args, "-q"]) == 0
    make("two_models", tmp_path, "TWICE=double.so", "SQUARE=square.so")
    moved = tmp_path / "elsewhere"  # the rpath is $ORIGIN: the folder can move
    moved.mkdir()
    for name in ("two_models", "double.so", "square.so"):
        (folder / name).rename(moved / name)
    run = subprocess.run([str(moved / "two_models"), "1", "2", "3", "-4"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    x = np.array([1, 2, 3, -4], np.float32)
    assert run.stdout.splitlines() == ["twice: " + " ".join(f"{v:g}" for v in x + x),
                                       "square: " + " ".join(f"{v:g}" for v in x * x)]  # fmt: skip


def test_symbol_prefix_must_be_a_c_identifier(tmp_path, capsys):
    onnx.save(unary_model("Add", "double"), tmp_path / "d.onnx")
    assert main(["compile", str(tmp_path / "d.onnx"), "-o", str(tmp_path / "d.so"), "--symbol-prefix", "a-b"]) == 1
    assert "symbol prefix 'a-b' must be a C identifier" in capsys.readouterr().err


def test_run_model_runs_a_dynamic_model_at_two_sizes(tmp_path):
    """One .so compiled for batch 1..4 run from C at batch 2 and 3 (-d), and refused at 5."""
    folder = tmp_path / "examples"
    folder.mkdir()
    source = Path(__file__).resolve().parents[1] / "assets" / "resnet_tiny_dyn.onnx"
    assert main(["compile", str(source), "-o", str(folder / "model.so"), "-q", "--shape", "batch=1..4"]) == 0
    make("run_model", tmp_path)
    session = ort.InferenceSession(str(source))
    for batch in (2, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 64, 64)).astype(np.float32)
        x.tofile(folder / "x.raw")
        dims = f"{batch},3,64,64"
        run = subprocess.run(["./run_model", "model.so", "-d", dims, "x.raw"], cwd=folder, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert f"output logits: float32[{batch},10]" in run.stdout
        want = session.run(None, {"input": x})[0]
        stats = [float(v) for v in re.search(r"min (\S+) max (\S+) mean (\S+)", run.stdout).groups()]
        np.testing.assert_allclose(stats, [want.min(), want.max(), want.mean()], rtol=1e-4, atol=1e-5)
    run = subprocess.run(["./run_model", "model.so", "-d", "5,3,64,64"], cwd=folder, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert run.returncode == 1
    assert "input 0 ('input') dim 0 ('batch') is 5, outside the range 1..4" in run.stderr
