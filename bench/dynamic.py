"""One artifact for a range of sizes against a static compile per size, in the same process.

    python -m bench.dynamic [--models gpt2 resnet50] [--threads 1 2] [--runs 20] [--exporter torchscript]

Each model is exported once with symbolic dims (bench/models/<name>_<exporter>_op17_dyn.onnx,
the axes of its `ModelSpec`) and compiled once with ranges (batch 1..4 opt 1; sequence 1..256
opt 64 for the transformers). At each size, a static compile of that size runs alternately with
the dynamic one, run by run; medians, the dynamic/static ratio, and the dynamic outputs' max
error against onnxruntime's. The goal: within 10% at opt, within 25% elsewhere.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort

import aic
from bench.export_models import export_all, model_path
from bench.models import MODELS, bert_inputs, gpt2_inputs, image_inputs
from bench.run import machine, versions

RANGES = {"batch": (1, 4, 1), "seq": (1, 256, 64)}
SIZES = {  # model -> sizes (batch[, seq]); the first is opt
    "gpt2": [(1, 64), (2, 20), (3, 96), (1, 256)],
    "bert_base": [(1, 64), (2, 20), (3, 96)],
    "resnet50": [(1,), (2,), (4,)],
    "mobilenet_v2": [(1,), (3,)],
}


def feeds_at(name: str, size: tuple[int, ...]) -> dict[str, np.ndarray]:
    if name in ("gpt2", "bert_base"):
        return (gpt2_inputs if name == "gpt2" else bert_inputs)(*size)
    return image_inputs(size[0])


def timed(run, feeds) -> float:
    start = time.perf_counter()
    run(None, feeds)
    return time.perf_counter() - start


def bench(name: str, exporter: str, threads: int, runs: int) -> list[str]:
    path = model_path(name, exporter, 17, dynamic=True)
    if not path.exists():
        export_all([name], [exporter], [17], dynamic=True)
    symbols = {axis_sym for axis_sym, _ in MODELS[name].dynamic_axes.values()}
    ranges = {s: RANGES[s] for s in symbols}
    start = time.perf_counter()
    dynamic = aic.compile(str(path), shapes=ranges, num_threads=threads)
    compile_s = time.perf_counter() - start
    session = ort.InferenceSession(str(path))
    lines = []
    for size in SIZES[name]:
        feeds = feeds_at(name, size)
        static = aic.compile(str(path), shapes={k: v.shape for k, v in feeds.items()}, num_threads=threads)
        want = session.run(None, feeds)
        got = dynamic.run(None, feeds)
        err = max(float(np.max(np.abs(g - w)) / max(float(np.max(np.abs(w))), 1e-30)) for g, w in zip(got, want))
        for _ in range(3):
            timed(static.run, feeds), timed(dynamic.run, feeds)
        ts, td = [], []
        for _ in range(runs):
            ts.append(timed(static.run, feeds))
            td.append(timed(dynamic.run, feeds))
        s, d = statistics.median(ts) * 1e3, statistics.median(td) * 1e3
        where = "opt" if size == SIZES[name][0] else ""
        lines.append(f"| {name} | {threads} | {'x'.join(map(str, size))} {where} | {s:.2f} | {d:.2f} | "
                     f"{d / s:.3f} | {err:.1e} |")  # fmt: skip
        print(lines[-1], flush=True)
    print(f"{name}: dynamic compile {compile_s:.1f} s", flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["gpt2", "resnet50"], choices=sorted(SIZES))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--exporter", default="torchscript", choices=["torchscript", "dynamo"])
    args = parser.parse_args()
    print(f"machine: {machine()}\nversions: {versions()}")
    print("| model | threads | size | static ms | dynamic ms | dynamic/static | max rel err vs ORT |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        for threads in args.threads:
            bench(name, args.exporter, threads, args.runs)


if __name__ == "__main__":
    main()
