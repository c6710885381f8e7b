"""`aic profile`: per-kernel times of a compiled model, the top kernels first.

    aic profile model.onnx [--runs N] [--threads N] [--top K] [--trace trace.json]

The model is compiled (or a .so loaded), warmed up, and run `runs` times with the runtime's
per-kernel timing on (runtime/profiling.py). Each kernel call's time is its median over
the runs (a call inside a loop: the sum of its iterations in a run); its share is of the
summed kernel time; GFLOP/s and GB/s divide the call's estimated FLOPs and compulsory
bytes (compiler/kernel_table.py) by that time. `--trace` writes the Chrome trace.

The time outside the kernels is measured run by run: a run's wall time (the Python call and
the reading of its kernel events included) less the kernel time of that same run. It is never
the median run less the sum of per-call medians: on a loaded host most runs hold a few kernels
slowed by other processes, which the per-call medians drop and the run's median keeps. Where
Linux reports it (/proc/thread-self/schedstat), the calling thread's time spent ready but
waiting for a CPU is given too: the part of the run that other processes took.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class KernelProfile:
    call: int
    kernel: str
    group: str
    calls_per_run: int
    seconds: float  # median per run
    share: float
    flops: int
    bytes: int

    @property
    def gflops(self) -> float:
        return self.flops * self.calls_per_run / self.seconds / 1e9 if self.seconds > 0 else 0.0

    @property
    def gbytes(self) -> float:
        return self.bytes * self.calls_per_run / self.seconds / 1e9 if self.seconds > 0 else 0.0


@dataclass
class Profile:
    model: str
    threads: int
    runs: int
    run_seconds: float  # median wall time of a run
    kernels: list[KernelProfile] = field(default_factory=list)  # in program order
    trace: str = ""
    kernel_run_seconds: float = 0.0  # median over runs of a run's summed kernel time
    outside_seconds: float = 0.0  # median over runs of (run wall time - that run's kernel time)
    cpu_wait_seconds: float | None = None  # median time per run the caller waited for a CPU (None: not known)

    @property
    def kernel_seconds(self) -> float:
        return sum(k.seconds for k in self.kernels)

    def top(self, count: int | None = None) -> list[KernelProfile]:
        return sorted(self.kernels, key=lambda k: -k.seconds)[:count]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for entry, k in zip(out["kernels"], self.kernels):
            entry["gflops"], entry["gbytes"] = k.gflops, k.gbytes
        return out

    def text(self, count: int = 15) -> str:
        waited = "" if self.cpu_wait_seconds is None else f"; waiting for a CPU {duration(self.cpu_wait_seconds)}"
        lines = [
            f"aic profile {self.model}: {self.runs} runs on {self.threads} thread(s), median run "
            f"{duration(self.run_seconds)}: kernels {duration(self.kernel_run_seconds)}, outside them "
            f"{duration(self.outside_seconds)}{waited} (medians of each run's own figures)",
            f"{len(self.kernels)} kernel calls, per-call medians summing to {duration(self.kernel_seconds)}",
            f"{'#':>4}  {'time':>10}  {'share':>6}  {'GFLOP/s':>8}  {'GB/s':>7}  kernel",
        ]
        for k in self.top(count):
            repeat = f" x{k.calls_per_run}" if k.calls_per_run > 1 else ""
            lines.append(f"{k.call:>4}  {duration(k.seconds):>10}  {100 * k.share:5.1f}%  {k.gflops:8.2f}  "
                         f"{k.gbytes:7.2f}  {k.group}{repeat}")  # fmt: skip
        if self.trace:
            lines.append(f"trace: {self.trace}")
        return "\n".join(lines)


def duration(seconds: float) -> str:
    """A time in ms, or in us below a millisecond."""
    return f"{seconds * 1e3:.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def profile_module(
    module: Any, feeds: Mapping[str, np.ndarray], runs: int = 20, trace: str | None = None, pause: float = 0.0
) -> Profile:
    """Time every kernel call of a loaded `module` over `runs` runs (after one warm-up run), each after
    `pause` seconds of idling (as a service between requests; 0: back to back)."""
    import time

    module.run(None, feeds)
    prefix = str(Path(trace).with_suffix("")) if trace else os.path.join(_scratch(), "aic_profile")
    module.enable_profiling(prefix)
    walls, waits, per_call = [], [], []
    for _ in range(max(runs, 1)):
        if pause > 0:
            time.sleep(pause)
        waited, start = _cpu_wait_ns(), time.perf_counter()
        module.run(None, feeds)
        walls.append(time.perf_counter() - start)
        after = _cpu_wait_ns()
        waits.append(None if waited is None or after is None else after - waited)
        totals: dict[int, list[float]] = {}
        for e in module.last_profile:
            totals.setdefault(e.call, []).append(e.seconds)
        per_call.append(totals)
    path = module.end_profiling()
    if trace:
        os.replace(path, trace)
    else:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    calls = module.metadata.get("kernel_calls") or []
    result = summarize(str(module.path.name), module.num_threads, walls, per_call, calls, waits)
    result.trace = trace or ""
    return result


def summarize(
    model: str,
    threads: int,
    walls: list[float],
    per_call: list[dict[int, list[float]]],
    calls: list[dict[str, Any]],
    waits: list[int | None] | None = None,
) -> Profile:
    """The profile of runs with wall times `walls` (seconds), each run's kernel times `per_call`
    (call -> seconds of its iterations) and waits for a CPU `waits` (ns; None where unknown)."""
    in_run = [sum(sum(t) for t in totals.values()) for totals in per_call]
    result = Profile(model, threads, len(walls), float(np.median(walls)),
                     kernel_run_seconds=float(np.median(in_run)),
                     outside_seconds=float(np.median([w - k for w, k in zip(walls, in_run)])))  # fmt: skip
    if waits and all(w is not None for w in waits):
        result.cpu_wait_seconds = float(np.median(waits)) * 1e-9
    for call in sorted({c for totals in per_call for c in totals}):
        times = [sum(t.get(call, [0.0])) for t in per_call]
        count = max(len(t.get(call, [])) for t in per_call)
        info = calls[call] if call < len(calls) else {}
        result.kernels.append(KernelProfile(call, info.get("kernel", f"call{call}"), info.get("group", f"call {call}"),
                                            count, float(np.median(times)), 0.0, int(info.get("flops", 0)),
                                            int(info.get("bytes", 0))))  # fmt: skip
    total = result.kernel_seconds
    for k in result.kernels:
        k.share = k.seconds / total if total > 0 else 0.0
    return result


def _cpu_wait_ns() -> int | None:
    """Nanoseconds this thread has spent runnable but not running (Linux schedstat), or None."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def profile(
    model: str | os.PathLike,
    runs: int = 20,
    threads: int | None = None,
    shapes: Mapping[str, Any] | None = None,
    opt_level: int = 2,
    trace: str | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
) -> Profile:
    """Compile `model` (an .onnx file; a .so is loaded) and profile it on random or given inputs."""
    import aic

    from .bench import _compile, _Progress, _random
    from .checker import random_inputs

    if Path(model).suffix == ".so":
        module = aic.load(model, threads)
        feeds = {t.name: _random(t.shape, t.dtype) for t in module.get_inputs()}
    else:
        from aic.compiler.shapes import bind_shapes
        from aic.frontend.load import read_model

        graph = bind_shapes(read_model(model), shapes)
        module = _compile(graph, opt_level, threads, _Progress(False))
        feeds = random_inputs(graph)
    result = profile_module(module, {**feeds, **(inputs or {})}, runs, trace)
    result.model = str(model)
    return result


def _scratch() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="aic-profile-")


# the `aic profile` command -------------------------------------------------


def add_profile(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "profile",
        help="per-kernel times: the top kernels with time, share, GFLOP/s and GB/s",
        description="Compile MODEL (or load a .so), run it with per-kernel timing and print the kernels that take "
        "the most time; --trace writes a Chrome trace (Perfetto, chrome://tracing).",
    )
    p.add_argument("model", help="an .onnx file or a .so built by `aic compile`")
    p.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    p.add_argument("--threads", type=int, help="thread count (default: all available CPUs)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=N", help="bind a symbolic dim; repeatable")
    p.add_argument("-O", dest="opt_level", type=int, choices=range(4), default=2, help="optimisation level")
    p.add_argument("--top", type=int, default=15, help="kernels to list (default 15)")
    p.add_argument("--trace", metavar="FILE.json", help="write the Chrome trace of the timed runs")
    p.add_argument("--json", metavar="FILE", help="write every kernel's figures as JSON")
    p.set_defaults(run=run_profile)


def run_profile(args: argparse.Namespace) -> int:
    from aic.cli_compile import parse_shapes

    try:
        result = profile(args.model, args.runs, args.threads, parse_shapes(args.shape), args.opt_level, args.trace)
    except (ValueError, RuntimeError, OSError) as err:
        print(f"aic: error: {err}", file=sys.stderr)
        return 1
    print(result.text(args.top))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2))
    return 0
