"""`aic bench`: latency and throughput of a model, with peers timed side by side.

    aic bench model.onnx [--threads N] [--shape batch=1] [--compare ort,openvino] [--duration S] [--json F]
    aic bench model.so

Each engine is warmed up, then the engines run in turn, one inference each, until the
duration is spent, so that machine noise hits them alike (interleaved, same process, same
thread count). Reported per engine: latency min/median/p90/p99, throughput, achieved
GFLOP/s (the graph's FLOPs over the median) and its share of this machine's measured peak
(aic/peak.py), and for aic the compile time, the arena and weight bytes and the process's
peak RSS. Peers: onnxruntime (all graph optimisations) and OpenVINO (CPU, f32, latency
hint, one stream; `pip install aic[bench]`). A progress bar (rich) runs while compiling
and measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Runner = Callable[[], object]
PEERS = ("ort", "openvino")


@dataclass
class EngineResult:
    engine: str
    runs: int
    min_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # inferences per second (1 / mean latency)
    gflops: float | None
    peak_share: float | None  # of the measured peak at this thread count
    vs_aic: float | None = None  # this engine's median over aic's: > 1 means aic is faster


@dataclass
class BenchResult:
    model: str
    threads: int
    flops: int | None
    compile_seconds: float | None
    arena_bytes: int
    weights_bytes: int
    peak_rss_bytes: int
    peak_gflops: float
    engines: list[EngineResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        mib = 1 << 20
        head = [f"aic bench {self.model}: {self.threads} thread(s)"]
        if self.compile_seconds is not None:
            head.append(f"compiled in {self.compile_seconds:.2f}s")
        lines = [", ".join(head)]
        lines.append(
            f"memory: arena {self.arena_bytes / mib:.1f} MiB, weights {self.weights_bytes / mib:.1f} MiB, "
            f"process peak RSS {self.peak_rss_bytes / mib:.0f} MiB"
        )
        if self.flops:
            gflop, peak = self.flops / 1e9, self.peak_gflops
            lines.append(f"work: {gflop:.3f} GFLOP per inference; measured peak {peak:.0f} GFLOP/s")
        lines.append(f"{'engine':<10}{'runs':>6}{'min':>10}{'median':>10}{'p90':>10}{'p99':>10}{'inf/s':>10}"
                     f"{'GFLOP/s':>10}{'% peak':>8}{'vs aic':>8}")  # fmt: skip
        for e in self.engines:
            gf = f"{e.gflops:10.1f}" if e.gflops is not None else f"{'-':>10}"
            share = f"{100 * e.peak_share:7.1f}%" if e.peak_share is not None else f"{'-':>8}"
            ratio = f"{e.vs_aic:7.2f}x" if e.vs_aic is not None else f"{'-':>8}"
            lines.append(f"{e.engine:<10}{e.runs:>6}{e.min_ms:>8.3f}ms{e.median_ms:>8.3f}ms{e.p90_ms:>8.3f}ms"
                         f"{e.p99_ms:>8.3f}ms{e.throughput:>10.1f}{gf}{share}{ratio}")  # fmt: skip
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def bench(
    model: str | os.PathLike,
    threads: int | None = None,
    shapes: Mapping[str, Any] | None = None,
    compare: Sequence[str] = (),
    duration: float = 3.0,
    opt_level: int = 2,
    inputs: Mapping[str, np.ndarray] | None = None,
    progress: bool = False,
) -> BenchResult:
    """Benchmark `model` (an .onnx file, or a .so built by aic) and the `compare` peers."""
    import aic
    from aic.peak import measure_peak

    from .checker import random_inputs

    unknown = [p for p in compare if p not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {unknown}; choose from {', '.join(PEERS)}")
    path = Path(model)
    is_onnx = path.suffix != ".so"
    if compare and not is_onnx:
        raise ValueError("peers need the ONNX model: pass the .onnx file, not the compiled .so")
    threads = threads or len(os.sched_getaffinity(0))
    with _Progress(progress) as bar:
        compile_seconds = None
        graph = None
        if is_onnx:
            from aic.compiler.shapes import bind_shapes
            from aic.frontend.load import read_model

            graph = bind_shapes(read_model(path), shapes)
            start = time.perf_counter()
            module = _compile(graph, opt_level, threads, bar)
            compile_seconds = time.perf_counter() - start
            feeds = {**random_inputs(graph, None), **(inputs or {})}
        else:
            module = aic.load(path, threads)
            feeds = {t.name: _random(t.shape, t.dtype) for t in module.get_inputs()} | dict(inputs or {})
        runners: dict[str, Runner] = {"aic": lambda: module.run(None, feeds)}
        notes: list[str] = []
        for peer in compare:
            try:
                runners[peer] = _peer(peer, path, feeds, threads)
            except ImportError as err:
                notes.append(f"{peer} skipped: {err}")
        latencies = _measure(runners, duration, bar)
    flops = _graph_flops(graph) if graph is not None else None
    peak = measure_peak()
    metadata = getattr(module, "metadata", {})
    result = BenchResult(
        str(model), threads, flops, compile_seconds, int(metadata.get("arena_bytes", 0)),
        int(metadata.get("weights_bytes", 0)), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        peak.gflops(threads), notes=notes,
    )  # fmt: skip
    for name, times in latencies.items():
        result.engines.append(_summarise(name, times, flops, peak.gflops(threads)))
    aic_median = result.engines[0].median_ms
    for e in result.engines:
        e.vs_aic = e.median_ms / aic_median if aic_median > 0 else None
    return result


def _compile(graph: Any, opt_level: int, threads: int | None, bar: _Progress) -> Any:
    """Compile with the pipeline's steps on the progress bar; load, and drop the file."""
    from aic.compiler.pipeline import compile_model
    from aic.runtime.artifact import weights_path
    from aic.runtime.module import load

    def step(index: int, steps: int, what: str, seconds: float | None) -> None:
        if seconds is None:
            bar.start(f"compile: {what}", 1) if index == 1 else bar.describe(f"compile: {what}")
        else:
            bar.advance(1 / steps)

    path = compile_model(graph, "llvm", opt_level, progress=step)
    module = load(path, threads)
    for file in (path, weights_path(path)):  # large weights are a side file (mapped when loaded)
        file.unlink(missing_ok=True)
    path.parent.rmdir()
    return module


def _random(shape: Sequence[Any], dtype: np.dtype) -> np.ndarray:
    rng = np.random.default_rng(0)
    dims = tuple(d if isinstance(d, int) else 1 for d in shape)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(dims).astype(dtype)
    return np.zeros(dims, dtype)  # int inputs of an artifact: zeros are in range of any index


def _graph_flops(graph: Any) -> int | None:
    from aic.compiler.summary import summarize

    flops = summarize(graph).flops
    return int(flops) if flops else None


def _peer(name: str, path: Path, feeds: Mapping[str, np.ndarray], threads: int) -> Runner:
    if name == "ort":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        ort_feeds = {k: v for k, v in feeds.items() if k in names}
        return lambda: session.run(None, ort_feeds)
    try:
        import openvino as ov
    except ImportError:
        raise ImportError("openvino is not installed (pip install 'aic[bench]')") from None
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
              "INFERENCE_PRECISION_HINT": "f32"}  # fmt: skip
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    return lambda: request.infer(dict(feeds))


def _measure(runners: dict[str, Runner], duration: float, bar: _Progress) -> dict[str, list[float]]:
    """Warm each engine up, then run them in turn until `duration` seconds are spent."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    bar.start("warm-up", len(runners))
    for run in runners.values():
        deadline = time.perf_counter() + min(1.0, duration / 10)
        run()
        while time.perf_counter() < deadline:
            run()
        bar.advance()
    bar.start("measure", duration)
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < duration or min(len(t) for t in times.values()) < 10:
        for name, run in runners.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
        now = time.perf_counter() - start
        bar.advance(min(now, duration) - min(elapsed, duration))
        elapsed = now
    return times


def _summarise(name: str, seconds: list[float], flops: int | None, peak_gflops: float) -> EngineResult:
    ms = np.array(seconds) * 1e3
    median = float(np.median(ms))
    gflops = flops / (median * 1e-3) / 1e9 if flops and median > 0 else None
    return EngineResult(
        name, len(ms), float(ms.min()), median, float(np.percentile(ms, 90)), float(np.percentile(ms, 99)),
        1e3 / float(ms.mean()), gflops, gflops / peak_gflops if gflops is not None and peak_gflops else None,
    )  # fmt: skip


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description:<40}"), BarColumn(), TimeElapsedColumn(),
                                     transient=True)  # fmt: skip
            self.progress.__enter__()
        return self

    def start(self, what: str, total: float) -> None:
        if self.enabled:
            if self.task is not None:
                self.progress.update(self.task, visible=False)
            self.task = self.progress.add_task(what, total=total)

    def describe(self, what: str) -> None:
        if self.enabled:
            self.progress.update(self.task, description=what)

    def advance(self, amount: float = 1.0) -> None:
        if self.enabled:
            self.progress.advance(self.task, amount)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.__exit__(None, None, None)


# the `aic bench` command ---------------------------------------------------


def add_bench(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time a model: latency percentiles, throughput, GFLOP/s, peers side by side",
        description="Compile MODEL (or load a compiled .so), warm up, then time it and the --compare peers "
        "interleaved in one process with the same thread count.",
    )
    p.add_argument("model", help="an .onnx file or a .so built by `aic compile`")
    p.add_argument("--threads", type=int, help="thread count for every engine (default: all available CPUs)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=N", help="bind a symbolic dim; repeatable")
    p.add_argument("--compare", default="", metavar="ort,openvino", help="peers to time side by side")
    p.add_argument("--duration", type=float, default=3.0, metavar="S", help="seconds of measurement (default 3)")
    p.add_argument("-O", dest="opt_level", type=int, choices=range(4), default=2, help="optimisation level")
    p.add_argument("--input", dest="inputs", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input (repeatable); the others are random")  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from aic.cli_compile import _read_inputs, parse_shapes

    try:
        result = bench(
            args.model,
            args.threads,
            parse_shapes(args.shape),
            [p.strip() for p in args.compare.split(",") if p.strip()],
            args.duration,
            args.opt_level,
            _read_inputs(args.inputs),
            progress=not args.quiet,
        )
    except (ValueError, RuntimeError, OSError) as err:
        print(f"aic: error: {err}", file=sys.stderr)
        return 1
    print(result.text())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2))
    return 0
