"""Where two threads lose: per-kernel times at 1 and at N threads, with each kernel's parallel split.

    python -m bench.threads MODEL.onnx [--threads 2] [--rounds 6] [--runs 5] [--top 20] [--pause MS]

The model is compiled once and loaded twice in one process (1 thread and N threads); the two are
profiled in turns (`rounds` x `runs` runs each, aic's per-kernel timing) and each kernel call's time is its
median. The loop IR of the same compile gives each kernel's parallel loops: their iteration counts and the
balance of those iterations over N threads (the most any thread runs over the even share). A kernel's loss
is its N-thread time minus its 1-thread time / N. The cause column reads: `serial` (no parallel loop),
`imbalance` (a parallel loop's balance above 1.05), else `sync/memory` (barriers, wake-ups, shared
bandwidth: what the structure does not explain). `--pause 50` idles 50 ms before each profiled run, as the
benchmark does: the first kernels then show what an idle core's wake-up and cold caches cost.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from aic.compiler.kernel_table import kernel_calls
from aic.compiler.pipeline import compile_model, lower_model
from aic.ir.loop import For, ForKind, Kernel
from aic.ir.loop_tools import static_int, stmts_of

import aic
from aic.profile import Profile, profile_module

IMBALANCED = 1.05


def balance(n: int, threads: int) -> float:
    """The most iterations one thread runs over the even share n / threads (1.0 is perfect)."""
    return -(-n // threads) / (n / threads) if n > 0 else 1.0


def parallel_loops(kernel: Kernel) -> list[int]:
    """The iteration counts of the kernel's parallel loops (0: a run-time count)."""
    loops = [s for s in stmts_of(kernel.body) if isinstance(s, For) and s.kind is ForKind.PARALLEL]
    return [static_int(s.extent) or 0 for s in loops]


def merged(profiles: list[Profile]) -> dict[int, float]:
    """Each call's median over the profiles' per-call medians."""
    calls = {k.call for p in profiles for k in p.kernels}
    return {c: float(np.median([k.seconds for p in profiles for k in p.kernels if k.call == c])) for c in calls}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--runs", type=int, default=5, help="profiled runs per round and thread count")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--pause", type=float, default=0.0, help="milliseconds idle before each profiled run")
    args = p.parse_args()

    kernels = [c.kernel for c in kernel_calls(lower_model(args.model).calls)]
    so = compile_model(args.model, output=Path(tempfile.mkdtemp()) / "model.so")
    one, many = aic.load(so, num_threads=1), aic.load(so, num_threads=args.threads)
    feeds = {i.name: np.random.default_rng(0).random(i.shape).astype(i.dtype) for i in one.inputs}  # ids: 0
    runs: dict[int, list[Profile]] = {1: [], args.threads: []}
    for _ in range(args.rounds):
        runs[1].append(profile_module(one, feeds, args.runs, pause=args.pause / 1e3))
        runs[args.threads].append(profile_module(many, feeds, args.runs, pause=args.pause / 1e3))
    t1, tn = merged(runs[1]), merged(runs[args.threads])
    n = args.threads
    wall1 = np.median([r.run_seconds for r in runs[1]])
    walln = np.median([r.run_seconds for r in runs[n]])
    jobs = sum(len(parallel_loops(kernels[c])) for c in t1 if c < len(kernels))
    print(f"{args.model.name}: run {wall1 * 1e3:.2f} ms at 1 thread, {walln * 1e3:.2f} ms at {n} "
          f"({wall1 / walln:.2f}x); kernels {sum(t1.values()) * 1e3:.2f} / {sum(tn.values()) * 1e3:.2f} ms; "
          f"{jobs} parallel loops per run")  # fmt: skip
    rows, by_cause = [], {"serial": 0.0, "imbalance": 0.0, "sync/memory": 0.0}
    for c in sorted(t1):
        kernel = kernels[c] if c < len(kernels) else None
        extents = parallel_loops(kernel) if kernel is not None else []
        worst = max((balance(e, n) for e in extents if e), default=1.0)
        cause = "serial" if not extents else "imbalance" if worst > IMBALANCED else "sync/memory"
        loss = tn[c] - t1[c] / n
        by_cause[cause] += loss
        name = kernel.name if kernel is not None else f"call {c}"
        rows.append((loss, c, name, t1[c], tn[c], extents, worst, cause))
    print("loss by cause (ms): " + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in by_cause.items()))
    print(f"{'#':>4} {'1T ms':>8} {f'{n}T ms':>8} {'x':>5} {'loss ms':>8}  {'cause':<11} kernel: parallel loops")
    for loss, c, name, a, b, extents, worst, cause in sorted(rows, reverse=True)[: args.top]:
        loops = " ".join(str(e) for e in extents) or "-"
        print(f"{c:>4} {a * 1e3:8.3f} {b * 1e3:8.3f} {a / b if b else 0:5.2f} {loss * 1e3:8.3f}  {cause:<11} "
              f"{name}: {loops} (balance {worst:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
