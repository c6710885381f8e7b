"""A/B of aic builds in one process: the same model compiled by two (or more) versions of aic, timed in turns.

    python -m bench.ab MODEL.onnx old=old.so new=new.so [--threads 1 2] [--rounds 30] [--pause 50] [--peers]
                       [--clock wall|cpu]

Each round runs every build once (and onnxruntime and OpenVINO with `--peers`), in every order in turn, each
run after `--pause` ms idle as in bench/run.py. Per build: the median and quartiles, the median of its
per-round ratio to the first build (paired: both saw the same minute of a noisy machine), its minimum (the run
that met the fewest other processes), and its median by the runner that ran just before it (a runtime whose
workers keep spinning after its run slows whoever runs next). The build loaded first can run a few percent
faster or slower than an identical one loaded second: repeat with the builds swapped and take the geometric
mean of the two ratios. `--clock cpu` times the process's CPU time instead of wall time: on a loaded host it
leaves out the time other processes hold the cores (at one thread aic runs every kernel on the calling thread).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import aic

CLOCKS: dict[str, Callable[[], int]] = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}


def random_feeds(module: aic.Module) -> dict[str, np.ndarray]:
    """Uniform [0, 1) floats; integer inputs (token ids, types) 0 or 1."""
    rng = np.random.default_rng(0)
    return {
        i.name: (rng.integers(0, 2, i.shape) if np.dtype(i.dtype).kind in "iub" else rng.random(i.shape)).astype(
            i.dtype
        )
        for i in module.inputs
    }


def module_runner(module: aic.Module):
    return lambda feeds: module.run(None, feeds)


def time_rounds(
    runners: dict, feeds: dict, rounds: int, pause: float, clock: Callable[[], int] = time.perf_counter_ns
) -> dict[str, list[tuple[float, str, int]]]:
    """(ms, runner before it, round) per run of each runner by `clock` (ns), every order of the runners in turn."""
    orders = list(itertools.permutations(runners))
    samples: dict[str, list[tuple[float, str, int]]] = {name: [] for name in runners}
    for run in runners.values():  # warm-up
        run(feeds)
    previous = ""
    for r in range(rounds):
        for name in orders[r % len(orders)]:
            time.sleep(pause)
            start = clock()
            runners[name](feeds)
            samples[name].append(((clock() - start) / 1e6, previous, r))
            previous = name
    return samples


def report(samples: dict[str, list[tuple[float, str, int]]], builds: list[str]) -> list[str]:
    lines = []
    first = {r: ms for ms, _, r in samples[builds[0]]}
    for name, runs in samples.items():
        ms = [m for m, _, _ in runs]
        q1, q3 = np.percentile(ms, [25, 75])
        line = f"  {name:>8}: median {statistics.median(ms):8.3f} ms (quartiles {q1:.3f}-{q3:.3f}, min {min(ms):.3f})"
        if name in builds[1:]:
            ratios = [m / first[r] for m, _, r in runs]
            r1, r3 = np.percentile(ratios, [25, 75])
            line += f", {name}/{builds[0]} paired {statistics.median(ratios):.3f} ({r1:.3f}-{r3:.3f})"
        before = {q: [m for m, b, _ in runs if b == q] for q in samples}
        lines.append(line + "; after " + ", ".join(f"{q} {statistics.median(v):.2f}" for q, v in before.items() if v))
    return lines


def build_runners(model: Path, builds: dict[str, str], threads: int, peers: bool) -> tuple[dict, dict]:
    """Runners of each labelled build (and of onnxruntime and OpenVINO on `model` if `peers`), and random feeds."""
    modules = {label: aic.load(path, num_threads=threads) for label, path in builds.items()}
    runners = {label: module_runner(m) for label, m in modules.items()}
    if peers:
        from bench.peers import ort_runner, ov_runner

        runners["ort"] = ort_runner(model, threads)
        ov = ov_runner(model, threads)
        if ov is not None:
            runners["ov"] = ov
    return runners, random_feeds(next(iter(modules.values())))


def ab_parser(doc: str, rounds: int, pause: float, optional: bool = False) -> argparse.ArgumentParser:
    """The arguments every A/B script takes: MODEL.onnx, LABEL=path.so builds, --threads, --rounds, --pause,
    --peers (`optional`: model and builds may be left out)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, nargs="?" if optional else None,
                   help="the ONNX model the builds were compiled from (for the peers)")
    p.add_argument("builds", nargs="*" if optional else "+", help="LABEL=path/to/model.so")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--pause", type=float, default=pause, help="milliseconds idle before each timed run")
    p.add_argument("--peers", action="store_true", help="also time onnxruntime and OpenVINO")
    return p


def labelled(builds: list[str]) -> dict[str, str]:
    """{label: path} of LABEL=path arguments."""
    return dict(spec.split("=", 1) for spec in builds)


def main() -> None:
    p = ab_parser(__doc__, rounds=30, pause=50.0)
    p.add_argument("--clock", choices=CLOCKS, default="wall", help="wall time or the process's CPU time")
    args = p.parse_args()

    builds = labelled(args.builds)
    for threads in args.threads:
        runners, feeds = build_runners(args.model, builds, threads, args.peers)
        samples = time_rounds(runners, feeds, args.rounds, args.pause / 1e3, CLOCKS[args.clock])
        print(f"{args.model.name}, {threads} thread(s), {args.rounds} rounds, {args.pause:.0f} ms pause, "
              f"{args.clock} time:")
        print("\n".join(report(samples, list(builds))), flush=True)


if __name__ == "__main__":
    main()
