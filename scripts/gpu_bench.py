"""Benchmark the cuda target against PyTorch (eager, torch.compile) and onnxruntime-CUDA.

Run by scripts/gpu_check.sh on a machine with an NVIDIA GPU; needs torch, cupy and the
bench extra's transformers (no network: random weights from default configs). For each
model and batch: export ONNX (bench/models.py), compile with `--target cuda`, time each
engine (median of --runs after warm-up, synchronised) and write one JSON results file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

import aic  # the installed package, before the repository (whose aic/ folder is not the whole package) joins sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("mlp", "mobilenet_v2", "resnet50", "bert_base", "gpt2")


def timed(fn, sync, runs: int) -> float:
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def bench_model(name: str, batch: int, runs: int, folder: Path) -> dict:
    import cupy
    import torch
    from aic.compiler.pipeline import compile_model

    from bench import models

    spec = models.MODELS[name]
    feeds = spec.inputs(batch)
    onnx_path = folder / f"{name}.onnx"  # exported once with a symbolic batch, compiled per batch
    if not onnx_path.exists():
        models.export(name, onnx_path, opset=17, dynamo=False, dynamic=True)
    row: dict = {"model": name, "batch": batch}
    start = time.perf_counter()
    first = next(iter(feeds.values()))
    shapes = {symbol: first.shape[axis] for axis, (symbol, _) in spec.dynamic_axes.items()}  # batch, sequence
    so = compile_model(onnx_path, "cuda", output=folder / f"{name}_{batch}.so", shapes=shapes)
    row["aic_compile_s"] = time.perf_counter() - start
    module = aic.load(so)
    dev = {k: cupy.asarray(v) for k, v in feeds.items()}
    sync = cupy.cuda.get_current_stream().synchronize
    row["aic_device_ms"] = timed(lambda: module.run(None, dev), sync, runs)
    row["aic_host_ms"] = timed(lambda: module.run(None, feeds), lambda: None, runs)
    net = models.build(name).cuda().eval()
    args = [torch.from_numpy(v).cuda() for v in feeds.values()]
    tsync = torch.cuda.synchronize
    with torch.no_grad():
        expected = net(*args)
        expected = expected[0] if isinstance(expected, tuple) else expected
        got = cupy.asnumpy(module.run(None, dev)[0])
        row["max_abs_diff_vs_torch"] = float(np.abs(got - expected.float().cpu().numpy()).max())
        row["torch_eager_ms"] = timed(lambda: net(*args), tsync, runs)
        try:
            compiled = torch.compile(net)
            row["torch_compile_ms"] = timed(lambda: compiled(*args), tsync, runs)
        except Exception as err:  # report, do not stop the benchmark
            row["torch_compile_error"] = str(err)[:300]
    try:
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            sess = ort.InferenceSession(str(onnx_path), providers=["CUDAExecutionProvider"])
            row["ort_cuda_ms"] = timed(lambda: sess.run(None, feeds), lambda: None, runs)
    except Exception as err:
        row["ort_error"] = str(err)[:300]
    best = min(row.get(k, float("inf")) for k in ("torch_compile_ms", "ort_cuda_ms"))
    if best < float("inf"):
        row["aic_vs_best"] = row["aic_device_ms"] / best
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 32])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    import cupy

    results = {"gpu": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(), "rows": []}
    with tempfile.TemporaryDirectory(prefix="aic-gpu-bench-") as tmp:
        for name in args.models:
            for batch in args.batches:
                try:
                    row = bench_model(name, batch, args.runs, Path(tmp))
                except Exception as err:
                    row = {"model": name, "batch": batch, "error": f"{type(err).__name__}: {err}"[:500],
                           "traceback": traceback.format_exc()[-2000:]}  # fmt: skip
                print(json.dumps(row), flush=True)
                results["rows"].append(row)
                args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
