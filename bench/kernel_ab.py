"""A/B of two builds kernel by kernel: per-kernel times of both, profiled in turns in one process.

    python -m bench.kernel_ab old=a.so new=b.so [--threads 2] [--rounds 16] [--runs 3] [--pause 150]
                              [--percentile 10] [--top 8]

Each round profiles every build (`runs` runs, aic's per-kernel timing, `--pause` ms idle before each run as
the benchmark does), the order reversed every other round. A kernel call's time is the given percentile of
its per-round medians: on a shared machine a low percentile is the run least disturbed by other processes,
so an effect of a few kernels stays visible where whole-run medians scatter by tens of percent. Prints the
kernel sums and the calls whose times moved most. The builds must come from the same model (calls are matched
by their position in the run).
"""

from __future__ import annotations

import argparse

import numpy as np

import aic
from aic.profile import Profile, profile_module
from bench.ab import random_feeds


def per_call(profiles: list[Profile], percentile: float) -> dict[int, tuple[str, float]]:
    """Kernel name and the percentile of its per-profile times (seconds), per call."""
    names = {k.call: k.kernel for p in profiles for k in p.kernels}
    times: dict[int, list[float]] = {}
    for p in profiles:
        for k in p.kernels:
            times.setdefault(k.call, []).append(k.seconds)
    return {c: (names[c], float(np.percentile(v, percentile))) for c, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("builds", nargs=2, help="LABEL=path/to/model.so (the first is the base)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--runs", type=int, default=3, help="profiled runs per round and build")
    p.add_argument("--pause", type=float, default=150.0, help="milliseconds idle before each profiled run")
    p.add_argument("--percentile", type=float, default=10.0)
    p.add_argument("--top", type=int, default=8)
    args = p.parse_args()

    builds = dict(spec.split("=", 1) for spec in args.builds)
    modules = {label: aic.load(path, num_threads=args.threads) for label, path in builds.items()}
    feeds = random_feeds(next(iter(modules.values())))
    profiles: dict[str, list[Profile]] = {label: [] for label in modules}
    for r in range(args.rounds):
        for label in list(modules)[:: 1 if r % 2 == 0 else -1]:
            profiles[label].append(profile_module(modules[label], feeds, args.runs, pause=args.pause / 1e3))
    (a, pa), (b, pb) = ((label, per_call(ps, args.percentile)) for label, ps in profiles.items())
    sums = ", ".join(
        f"{label} {sum(t for _, t in calls.values()) * 1e3:.3f} ms (run median "
        f"{np.median([q.run_seconds for q in profiles[label]]) * 1e3:.3f})"
        for label, calls in ((a, pa), (b, pb))
    )
    print(f"{args.threads} thread(s), {args.rounds} rounds, p{args.percentile:g} per kernel: {sums}")
    moved = sorted((pb[c][1] - pa[c][1], c) for c in pa if c in pb)
    shown = moved[: args.top] + [m for m in moved[-args.top :] if m[0] > 0 and m not in moved[: args.top]]
    for _, c in shown:
        print(f"  call {c:4} {pa[c][0]:36} {a} {pa[c][1] * 1e3:8.3f} ms  {b} {pb[c][1] * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
