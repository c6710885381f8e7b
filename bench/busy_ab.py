"""A/B of aic builds split by how busy the core was: a fixed probe timed in every round.

    python -m bench.busy_ab MODEL.onnx old=old.so new=new.so [--threads 1 2] [--rounds 12] [--pause 150] [--peers]

Each round times a probe (ten 384^3 float32 products by numpy on one thread: FMA-bound, in L2) before and
after the runs of every build (and of onnxruntime and OpenVINO with `--peers`), in rotating order, each run
after `--pause` ms idle. The probe's time says how fast the core was in that round (another tenant on the
physical core, or other processes on the vCPU, slow it). Rounds are reported all together and split in
thirds by the probe: "quiet" (fastest probe) and "busy" (slowest). Per third and clock (wall, process CPU):
each engine's median, the paired median of every build's per-round ratio to the first build, and each
build's ratio to the best peer.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the probe runs on one thread (before numpy loads BLAS)

import statistics
import time
from collections.abc import Callable

import numpy as np

from bench.ab import ab_parser, build_runners, labelled

PEERS = ("ort", "ov")


def numpy_probe() -> Callable[[], float]:
    """Thread CPU ms of ten 384^3 float32 products by numpy."""
    a = np.random.default_rng(0).random((384, 384), np.float32)

    def probe() -> float:
        start = time.thread_time_ns()
        for _ in range(10):
            a @ a
        return (time.thread_time_ns() - start) / 1e6

    return probe


def time_probed(
    runners: dict, feeds: dict, rounds: int, pause: float, probe: Callable[[], float]
) -> tuple[dict[str, dict[str, list[float]]], list[float]]:
    """{clock: {runner: ms per round}} for clocks "wall" and "cpu" (process CPU), and `probe`'s ms per round
    (the mean of one probe before and one after the round's runs)."""
    names = list(runners)
    for run in runners.values():  # warm-up
        run(feeds)
    times: dict[str, dict[str, list[float]]] = {"wall": {n: [] for n in names}, "cpu": {n: [] for n in names}}
    probes = []
    for r in range(rounds):
        before = probe()
        for name in names[r % len(names):] + names[: r % len(names)]:
            time.sleep(pause)
            start, cpu = time.perf_counter_ns(), time.process_time_ns()
            runners[name](feeds)
            times["wall"][name].append((time.perf_counter_ns() - start) / 1e6)
            times["cpu"][name].append((time.process_time_ns() - cpu) / 1e6)
        probes.append((before + probe()) / 2)
    return times, probes


def summary(times: dict[str, dict[str, list[float]]], probes: list[float], builds: list[str]) -> list[str]:
    order = np.argsort(probes)
    third = max(1, len(order) // 3)
    lines = []
    for label, rows in (("all", order), ("quiet", order[:third]), ("busy", order[-third:])):
        for clock, runs in times.items():
            med = {n: statistics.median(np.asarray(v)[rows]) for n, v in runs.items()}
            line = f"  {label:>5} {clock:>4} ms: " + ", ".join(f"{n} {v:.2f}" for n, v in med.items())
            for b in builds[1:]:
                paired = [runs[b][r] / runs[builds[0]][r] for r in rows]
                q1, q3 = np.percentile(paired, [25, 75])
                line += f"; {b}/{builds[0]} {statistics.median(paired):.3f} ({q1:.3f}-{q3:.3f})"
            peers = [p for p in PEERS if p in med]
            if peers:
                best = min(med[p] for p in peers)
                paired = {b: statistics.median(runs[b][r] / min(runs[p][r] for p in peers) for r in rows)
                          for b in builds}
                line += "; /best peer " + ", ".join(f"{b} {med[b] / best:.2f} (paired {paired[b]:.2f})"
                                                     for b in builds)
            lines.append(line)
    probe_ms = np.percentile(probes, [10, 50, 90])
    lines.append(f"  probe ms p10/p50/p90 {probe_ms[0]:.1f}/{probe_ms[1]:.1f}/{probe_ms[2]:.1f}")
    return lines


def main() -> None:
    args = ab_parser(__doc__, rounds=12, pause=150.0).parse_args()
    builds = labelled(args.builds)
    for threads in args.threads:
        runners, feeds = build_runners(args.model, builds, threads, args.peers)
        times, probes = time_probed(runners, feeds, args.rounds, args.pause / 1e3, numpy_probe())
        print(f"{args.model.name}, {threads} thread(s), {args.rounds} rounds, {args.pause:.0f} ms pause:")
        print("\n".join(summary(times, probes, list(builds))), flush=True)


if __name__ == "__main__":
    main()
