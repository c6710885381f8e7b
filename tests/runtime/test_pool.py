"""The thread pool's spin policy: AIC_SPIN is read at load, checked, and any value gives the same results."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from onnx import helper

import aic
from tests.onnx_util import assert_close, graph_model, run_ort


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A conv + ReLU with enough work for parallel loops."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 8, 40, 40)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    model = graph_model(nodes, {"x": x}, ["y"], {"w": rng.standard_normal((32, 8, 3, 3)).astype(np.float32)})
    path = tmp_path_factory.mktemp("pool") / "conv.so"
    aic.compile(model, output=path)
    np.save(path.with_suffix(".npy"), x)
    np.save(path.with_name("expected.npy"), run_ort(model, {"x": x})[0])
    return path


def _run(path, spin: str) -> subprocess.CompletedProcess:
    code = f"""
        import numpy as np, aic
        m = aic.load({str(path)!r}, num_threads=2)
        x = np.load({str(path.with_suffix('.npy'))!r})
        for _ in range(5):
            y = m.run(None, {{"x": x}})[0]
        np.save({str(path.with_name(f'out{spin}.npy'))!r}, y)
    """
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={"AIC_SPIN": spin, "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("spin", ["0", "50000"])
def test_spin_times_give_the_same_results(model_file, spin):
    proc = _run(model_file, spin)
    assert proc.returncode == 0, proc.stderr
    expected = np.load(model_file.with_name("expected.npy"))
    assert_close(np.load(model_file.with_name(f"out{spin}.npy")), expected, 1e-4, 1e-5)


def test_bad_spin_time_is_reported(model_file):
    proc = _run(model_file, "fast")
    assert proc.returncode != 0
    assert "AIC_SPIN='fast' is not a spin time in microseconds" in proc.stderr
