"""Per op class, aic's kernel time against onnxruntime's per-node time, at 1 and 2 threads.

    python -m bench.op_classes MODEL.onnx [MODEL.onnx ...] [--threads 1 2] [--runs 10] [--pause 150]

aic: `aic.profile`'s per-kernel times (the model compiled once, loaded per thread count), summed by the
class of the kernel's op group. onnxruntime: its own profiler (ORT_ENABLE_ALL, `intra_op_num_threads` = the
thread count), each node's time summed by the class of the node's op type; its products of two batched
operands (QK^T, PV: rank 4) count as attention. Products (MatMul, Gemm, Conv and their fused forms) are one
class; the rest is what bench/ab.py's whole-model figures hide. Both engines run the same random feeds in one
process, one run of each per round, in turns (both see the same minute of the host); per class, the median
over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

import aic
from aic.profile import profile_module

from .ab import random_feeds

# First match wins: the class of an aic op group ("Transpose+Softmax...") or an onnxruntime op type.
CLASSES: list[tuple[str, tuple[str, ...]]] = [
    ("attention", ("attention",)),
    ("conv front end", ("conv",)),
    ("products", ("matmul", "gemm", "fusedconv")),
    ("norm", ("layernorm", "rmsnorm", "simplifiedlayernorm", "skiplayernorm", "normalization")),
    ("softmax", ("softmax",)),
    ("gelu", ("gelu", "erf", "tanh")),
    ("gather/embedding", ("gather",)),
    ("movement", ("transpose", "reshape", "split", "concat", "slice", "squeeze", "expand", "copy")),
]


def op_class(name: str) -> str:
    lowered = name.lower()
    for label, keys in CLASSES:
        if any(k in lowered for k in keys):
            return label
    return "elementwise/other"


def aic_classes(module: aic.Module, feeds: dict, pause: float) -> dict[str, float]:
    """ms per op class of one profiled run."""
    out: dict[str, float] = defaultdict(float)
    for k in profile_module(module, feeds, 1, pause=pause).kernels:
        out[op_class(k.group)] += k.seconds * 1e3
    return out


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_rounds(session: ort.InferenceSession, rounds: int) -> list[dict[str, float]]:
    """ms per op class of each of the session's last `rounds` runs, from its profile."""
    trace = session.end_profiling()
    events = json.loads(Path(trace).read_text())
    os.unlink(trace)
    per_node: dict[str, list[float]] = defaultdict(list)
    op_of: dict[str, str] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[e["name"]].append(e["dur"] / 1e3)
            op = e["args"].get("op_name", "")
            # a product of two batched operands (QK^T, PV: [batch, heads, rows, cols]) is attention's
            shapes = [next(iter(x.values())) for x in e["args"].get("input_type_shape", [])]
            if op in ("MatMul", "FusedMatMul") and len(shapes) >= 2 and min(len(shapes[0]), len(shapes[1])) >= 4:
                op = "Attention" + op
            op_of[e["name"]] = op
    out: list[dict[str, float]] = [defaultdict(float) for _ in range(rounds)]
    for node, times in per_node.items():
        for r, t in enumerate(times[-rounds:]):
            out[r][op_class(op_of[node])] += t
    return out


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    labels = {c for r in rounds for c in r}
    return {c: float(np.median([r.get(c, 0.0) for r in rounds])) for c in labels} | {
        "total": float(np.median([sum(r.values()) for r in rounds]))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--pause", type=float, default=150.0, help="milliseconds idle before each run")
    args = p.parse_args()
    labels = [c for c, _ in CLASSES] + ["elementwise/other"]
    for path in args.models:
        with tempfile.TemporaryDirectory() as scratch:
            so = Path(scratch) / "model.so"
            aic.compile(str(path), output=so)
            for threads in args.threads:
                module = aic.load(so, num_threads=threads)
                feeds = random_feeds(module)
                session = ort_session(path, threads)
                session.run(None, feeds)
                ours = []
                for _ in range(args.runs):  # in turns: both engines see the same minute of the host
                    ours.append(aic_classes(module, feeds, args.pause / 1e3))
                    time.sleep(args.pause / 1e3)
                    session.run(None, feeds)
                mine, theirs = medians(ours), medians(ort_rounds(session, args.runs))
                print(f"\n{path.stem}, {threads} thread(s): ms per run, aic | onnxruntime")
                for label in [*labels, "total"]:
                    if mine.get(label) or theirs.get(label):
                        print(f"  {label:18s} {mine.get(label, 0.0):9.2f} | {theirs.get(label, 0.0):9.2f}", flush=True)


if __name__ == "__main__":
    main()
