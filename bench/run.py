"""The benchmark: aic against onnxruntime and OpenVINO on the same models, in the same run, same threads.

    python -m bench.run [--models resnet50 bert_base] [--threads 1 2] [--runs 30] [--warmup 5] [--pause 150]
                        [--exporter dynamo|torchscript] [--opset 17|20] [--out bench/out]

For each model (static shapes, exported once to bench/models/ if missing): compile it with
`aic.compile` (timed), then for each thread count time the aic module and an onnxruntime
session (ORT_ENABLE_ALL, intra_op_num_threads = the same count) and, when the `openvino` package
is installed, an OpenVINO CPU model (f32, LATENCY, one stream, INFERENCE_NUM_THREADS = the count)
alternately, run by run, so all see the same machine state; after the warm-up runs, report
medians, aic's ratio to the best peer, and the quartiles of the paired ratio (aic's run over the faster
peer's run of the same round, robust to a shared host's slow minutes). aic's outputs are
checked against onnxruntime's (max|aic - ORT| / max|ORT|). FLOPs come from aic's model
summary. A model aic fails to compile is still timed on onnxruntime, and the failure is
listed. Results go to <out>/results.json and <out>/results.md, with the machine, versions
and date; compiled models to <out>/so/.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from aic.compiler.summary import summarize
from aic.frontend.onnx import load_model

import aic
from aic.peak import measure_peak
from bench.check_interp import relative_error
from bench.export_models import EXPORTERS, model_path
from bench.models import MODELS
from bench.peers import Runner, ort_runner, ov_runner

OUT_DIR = Path(__file__).resolve().parent / "out"


@dataclass
class Row:
    """One model at one thread count."""

    model: str
    threads: int
    gflop: float
    ort_ms: float
    aic_ms: float | None = None
    compile_s: float | None = None
    arena_bytes: int | None = None
    max_rel_err: float | None = None
    error: str = ""  # why aic failed to compile or run the model
    ov_ms: float | None = None  # OpenVINO, when installed
    paired: tuple[float, float, float] | None = None  # quartiles of aic / best peer of the same round


    @property
    def best_ms(self) -> float:
        return min(self.ort_ms, self.ov_ms) if self.ov_ms else self.ort_ms

    @property
    def best_ratio(self) -> float | None:
        return self.aic_ms / self.best_ms if self.aic_ms else None

    @property
    def ratio(self) -> float | None:
        return self.aic_ms / self.ort_ms if self.aic_ms else None

    def gflops(self, ms: float | None) -> float | None:
        return self.gflop / (ms / 1e3) if ms else None


SETTLE_S = 0.15  # pause before each timed run: longer than onnxruntime's workers spin after one


def time_interleaved(
    runners: dict[str, Runner], feeds: dict[str, np.ndarray], warmup: int, runs: int, pause: float = SETTLE_S
) -> dict[str, list[float]]:
    """Milliseconds of each timed run per runner; one run of each per round, the order alternating by round.

    Each timed run starts after a pause (150 ms by default, as a service between requests). onnxruntime's worker
    keeps ~40% of a CPU busy for ~100 ms after a 2-thread run, so after a shorter pause whoever runs right after
    onnxruntime shares a core with it (BENCHMARKS.md, "Two threads on every model")."""
    samples: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for i in range(warmup + runs):
        for name in order if i % 2 == 0 else order[::-1]:
            time.sleep(pause)
            start = time.perf_counter_ns()
            runners[name](feeds)
            elapsed = (time.perf_counter_ns() - start) / 1e6
            if i >= warmup:
                samples[name].append(elapsed)
    return samples


def paired_quartiles(samples: dict[str, list[float]]) -> tuple[float, float, float] | None:
    """Quartiles of aic's time over the faster peer's time in the same round.

    Both ran within the same second, so a slow minute of a shared host moves numerator and denominator together:
    the spread of these ratios is the spread of the comparison, not of the host."""
    if "aic" not in samples:
        return None
    peers = [s for name, s in samples.items() if name != "aic"]
    ratios = [a / min(p) for a, *p in zip(samples["aic"], *peers)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q1, q2, q3 = statistics.quantiles(ratios, n=4)
    return q1, q2, q3


def bench_model(
    name: str, path: Path, args: argparse.Namespace, peak: float, feeds: dict[str, np.ndarray] | None = None
) -> list[Row]:
    """All thread counts of one model: compile once, check numerics once, time per thread count. `feeds` default
    to the benchmark's model table's inputs for `name`."""
    feeds = MODELS[name].inputs() if feeds is None else feeds
    gflop = summarize(load_model(path)).flops / 1e9
    ort_outputs = ort_runner(path, 1)(feeds)
    so_path = args.out / "so" / f"{path.stem}.so"
    compiled, aic_outputs, compile_s, error = compile_aic(path, feeds, so_path, args.opt_level)
    err = None if aic_outputs is None else max(relative_error(a, o) for a, o in zip(aic_outputs, ort_outputs))
    rows = []
    for t in args.threads:
        runners = {"ort": ort_runner(path, t)}
        ov = ov_runner(path, t)
        if ov is not None:
            runners["ov"] = ov
        if compiled is not None:
            runners["aic"] = aic_runner(so_path, t)
        samples = time_interleaved(runners, feeds, args.warmup, args.runs, args.pause / 1e3)
        medians = {name: statistics.median(s) for name, s in samples.items()}
        arena = None if compiled is None else compiled.metadata.get("arena_bytes")
        rows.append(Row(name, t, gflop, medians["ort"], medians.get("aic"), compile_s, arena, err, error,
                        medians.get("ov"), paired_quartiles(samples)))
        print(markdown_row(rows[-1], peak), flush=True)
    return rows


def compile_aic(
    path: Path, feeds: dict[str, np.ndarray], so_path: Path, opt_level: int
) -> tuple[aic.Module | None, list | None, float | None, str]:
    """Compile `path` to `so_path`: (loaded module, its outputs, compile seconds, error)."""
    start = time.perf_counter()
    try:
        so_path.parent.mkdir(parents=True, exist_ok=True)
        module = aic.compile(str(path), opt_level=opt_level, output=so_path)
        seconds = time.perf_counter() - start
        return module, module.run(None, feeds), seconds, ""
    except Exception as err:  # a model aic cannot compile yet still gets its ORT timing
        message = " / ".join(line.strip() for line in str(err).splitlines() if line.strip())
        return None, None, None, f"{type(err).__name__}: {message[:500]}"


def aic_runner(so_path: Path, threads: int) -> Runner:
    module = aic.load(so_path, num_threads=threads)
    return lambda feeds: module.run(None, feeds)


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def fmt_ms(value: float | None) -> str:
    return fmt(value, ".3f" if value is not None and value < 1 else ".2f")


HEADER = [
    "| model | threads | aic ms | ORT ms | OpenVINO ms | aic/ORT | aic/best | paired aic/best (quartiles) "
    "| aic GFLOP/s | aic % peak | ORT GFLOP/s | GFLOP | compile s | arena MiB | max rel err |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]


def markdown_row(r: Row, peak_per_core: float) -> str:
    aic_gflops = r.gflops(r.aic_ms)
    peak = None if aic_gflops is None else 100 * aic_gflops / (peak_per_core * r.threads)
    arena = None if r.arena_bytes is None else r.arena_bytes / 2**20
    aic_ms = "failed" if r.error else fmt_ms(r.aic_ms)
    cells = [
        r.model,
        str(r.threads),
        aic_ms,
        fmt_ms(r.ort_ms),
        fmt_ms(r.ov_ms),
        fmt(r.ratio, ".2f"),
        fmt(r.best_ratio, ".2f"),
        "n/a" if r.paired is None else f"{r.paired[1]:.2f} ({r.paired[0]:.2f}–{r.paired[2]:.2f})",
        fmt(aic_gflops, ".1f"),
        fmt(peak, ".0f"),
        fmt(r.gflops(r.ort_ms), ".1f"),
        f"{r.gflop:.2f}",
        fmt(r.compile_s, ".1f"),
        fmt(arena, ".1f"),
        fmt(r.max_rel_err, ".1e"),
    ]
    return "| " + " | ".join(cells) + " |"


def machine() -> dict[str, object]:
    """CPU model, cores and vector features (from lscpu), and the CPUs this process may use."""
    fields: dict[str, str] = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in out.splitlines()))
    except (OSError, subprocess.CalledProcessError):
        pass
    flags = set(fields.get("Flags", "").split())
    return {
        "cpu": fields.get("Model name", platform.processor()),
        "sockets": fields.get("Socket(s)"),
        "cores_per_socket": fields.get("Core(s) per socket"),
        "threads_per_core": fields.get("Thread(s) per core"),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "load_average_1min": os.getloadavg()[0],  # other work on the machine skews timings
        "vector_features": sorted(flags & {"avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_tile"}),
        "os": platform.platform(),
    }


def versions() -> dict[str, str]:
    found = {"aic": aic.__version__, "python": platform.python_version()}
    for package in ("onnxruntime", "openvino", "onnx", "llvmlite", "torch", "numpy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "absent"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        found["aic_commit"] = commit.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return found


def ensure_exported(name: str, exporter: str, opset: int) -> Path:
    path = model_path(name, exporter, opset)
    if not path.exists():
        from bench.export_models import export_all  # imports torch: only when a model is missing

        export_all([name], [exporter], [opset])
    return path


def write_results(rows: list[Row], settings: dict[str, object], peak: float, out: Path) -> str:
    """Write results.json and results.md under `out`; return the markdown."""
    info = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "machine": machine()}
    info["machine"]["measured_peak_gflops_per_core"] = round(peak, 1)
    info["versions"] = versions()
    m, v = info["machine"], info["versions"]
    lines = [
        f"aic {v['aic']} ({v.get('aic_commit', '?')}) vs onnxruntime {v['onnxruntime']} and OpenVINO "
        f"{v['openvino']}, {info['date']}; "
        f"{m['cpu']}, {m['usable_cpus']} usable of {m['logical_cpus']} CPUs; "
        f"aic -O{settings['opt_level']}; {settings['exporter']} export opset {settings['opset']}, "
        f"median of {settings['runs']} runs "
        f"after {settings['warmup']} warm-up, interleaved; paired aic/best: aic's time over the faster peer's "
        f"in the same round. % peak: of {peak:.0f} GFLOP/s per thread "
        "(FP32 FMA peak of one core, measured at the start).",
        "",
        *HEADER,
        *(markdown_row(r, peak) for r in rows),
    ]
    errors = [f"- {r.model}: {r.error}" for r in rows if r.error and r.threads == rows[0].threads]
    if errors:
        lines += ["", "aic failures:", *errors]
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    records = [
        asdict(r) | {"ratio": r.ratio, "best_ratio": r.best_ratio, "aic_gflops": r.gflops(r.aic_ms),
                     "ort_gflops": r.gflops(r.ort_ms)}
        for r in rows
    ]
    (out / "results.json").write_text(json.dumps(info | {"settings": settings, "results": records}, indent=2))
    (out / "results.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--pause", type=float, default=SETTLE_S * 1e3,
                        help="milliseconds idle before each timed run (onnxruntime's workers spin ~100 ms after a run)")
    parser.add_argument("--exporter", default="dynamo", choices=list(EXPORTERS))
    parser.add_argument("--opset", type=int, default=20)
    parser.add_argument("--opt-level", type=int, default=2, help="aic optimisation level (0-3)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    keys = ("models", "threads", "runs", "warmup", "exporter", "opset", "opt_level")
    settings = {k: getattr(args, k) for k in keys}
    peak = measure_peak().gflops_per_core
    print(f"FP32 FMA peak of one core: {peak:.1f} GFLOP/s", *HEADER, sep="\n", flush=True)
    rows = []
    for name in args.models:
        path = ensure_exported(name, args.exporter, args.opset)
        rows += bench_model(name, path, args, peak)
    print()
    print(write_results(rows, settings, peak, args.out))


if __name__ == "__main__":
    main()
