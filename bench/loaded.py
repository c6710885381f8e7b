"""A/B of aic builds and the peers on a quiet host and beside a co-runner that loads one shared resource.

    python -m bench.loaded MODEL.onnx old=old.so new=new.so [--load quiet stream l3 compute] [--threads 1 2]
        [--rounds 12] [--pause 150] [--peers]

Per load, a co-runner process starts (none for `quiet`), the timed rounds of bench/ab.py run, and the
co-runner stops. At 1 thread the timing process is pinned to the first CPU and the co-runner to the last,
so they share only what two cores share (L3, the memory controller); with `--same-core` the co-runner is
pinned to the first CPU too and takes turns with the timed runs (as the processes of a busy host do: each
turn finds the caches holding the other's data). At 2 threads the co-runner is not pinned.

- `stream`: copies a 256 MiB array into another, again and again (DRAM bandwidth);
- `l3`: gathers random elements of a 24 MiB array (L3 capacity and misses, little bandwidth);
- `compute`: 48 x 48 matrix products that stay in L1 (the FMA units, little memory traffic).

Each line reports every engine's median and the paired ratio of each build to the first; the loss under
load is each engine's median loaded over its median quiet. `--clock cpu` times the process's CPU time
instead of wall time (at 1 thread: what the co-runner costs through shared caches and memory, without the
time other processes of a busy host take the core away). Results: BENCHMARKS.md, "Products beside other
work".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

LOADS = ("quiet", "stream", "l3", "compute")


def corun(kind: str) -> None:
    """Load one resource until killed (the co-runner's body; numpy single-threaded)."""
    rng = np.random.default_rng(0)
    if kind == "stream":
        a, b = np.ones(64 << 20, np.float32), np.empty(64 << 20, np.float32)
        while True:
            np.copyto(b, a)
    elif kind == "l3":
        a = np.ones(6 << 20, np.float32)
        where = rng.integers(0, a.size, 1 << 16)
        while True:
            a[where].sum()
            where = (where * 1103515245 + 12345) % a.size
    elif kind == "compute":
        x = rng.random((48, 48), np.float32)
        y = rng.random((48, 48), np.float32)
        while True:
            for _ in range(1000):
                np.dot(x, y, out=y)
                y *= 1e-2
    else:
        raise SystemExit(f"unknown load {kind!r}: one of {', '.join(LOADS[1:])}")


def start_corunner(kind: str, cpu: int | None) -> subprocess.Popen | None:
    if kind == "quiet":
        return None
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bench.loaded", "--corun", kind]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, env=env)
    time.sleep(1.0)  # its arrays allocated and touched
    return proc


def main() -> None:
    from bench.ab import CLOCKS, ab_parser, build_runners, labelled, report, time_rounds

    p = ab_parser(__doc__, rounds=12, pause=150.0, optional=True)
    p.add_argument("--corun", choices=LOADS[1:], help=argparse.SUPPRESS)
    p.add_argument("--load", nargs="+", choices=LOADS, default=list(LOADS))
    p.add_argument("--same-core", action="store_true", help="at 1 thread, the co-runner on the timed CPU")
    p.add_argument("--clock", choices=CLOCKS, default="wall", help="wall time or the process's CPU time")
    args = p.parse_args()
    if args.corun:
        corun(args.corun)
        return
    if args.model is None or not args.builds:
        p.error("give MODEL.onnx and at least one LABEL=path.so")

    clock = CLOCKS[args.clock]
    cpus = sorted(os.sched_getaffinity(0))
    builds = labelled(args.builds)
    for threads in args.threads:
        runners, feeds = build_runners(args.model, builds, threads, args.peers)
        pinned = threads == 1 and len(cpus) > 1
        for load in args.load:
            os.sched_setaffinity(0, cpus[:1] if pinned else cpus)
            proc = start_corunner(load, (cpus[0] if args.same_core else cpus[-1]) if pinned else None)
            try:
                samples = time_rounds(runners, feeds, args.rounds, args.pause / 1e3, clock)
            finally:
                if proc is not None:
                    proc.kill()
                    proc.wait()
                os.sched_setaffinity(0, cpus)
            where = " on the same core" if pinned and args.same_core and load != "quiet" else ""
            print(f"{args.model.name}, {threads} thread(s), load {load}{where}, {args.rounds} rounds, "
                  f"{args.pause:.0f} ms pause, {args.clock} time:")
            print("\n".join(report(samples, list(builds))), flush=True)


if __name__ == "__main__":
    main()
