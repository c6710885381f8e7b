"""The main job: compile the bundled example model with aic, run it, compare with onnxruntime.

./scripts/demo.sh [MODEL.onnx]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from aic.compiler.summary import summarize
from aic.frontend.onnx import load_model

import aic

MODEL = Path(__file__).parent / "models" / "small_cnn.onnx"


def main(model_path: Path) -> int:
    print(f"aic {aic.__version__}: {model_path}")
    summary = summarize(load_model(model_path))
    print(f"  {summary.nodes} nodes {summary.ops}, {summary.params} parameters, {summary.flops / 1e6:.1f} MFLOP")

    rng = np.random.default_rng(0)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    feeds = {i.name: rng.standard_normal(_static(i.shape)).astype(np.float32) for i in session.get_inputs()}

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        module = aic.compile(model_path, output=Path(tmp) / "model.so")
        print(f"  compiled to {module.path.name} in {time.perf_counter() - start:.2f} s")
        actual = module.run(None, feeds)
    expected = session.run(None, feeds)

    worst = 0.0
    for out, a, e in zip(session.get_outputs(), actual, expected):
        rel = float(np.max(np.abs(a - e)) / max(np.max(np.abs(e)), 1e-30))
        worst = max(worst, rel)
        print(f"  output {out.name}{list(e.shape)}: max |aic - ORT| / max |ORT| = {rel:.2e}")
    ok = worst < 1e-4
    print("  PASS: aic matches onnxruntime" if ok else "  FAIL: aic differs from onnxruntime")
    return 0 if ok else 1


def _static(shape: list) -> list[int]:
    return [d if isinstance(d, int) else 1 for d in shape]


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL))
