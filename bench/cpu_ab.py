"""A/B of aic builds at one thread by the calling thread's CPU time: robust on a loaded machine.

    python -m bench.cpu_ab MODEL.onnx old=old.so new=new.so [--rounds 60] [--pause 20]

At one thread the runtime runs every kernel on the calling thread, so `time.thread_time_ns` counts the
model's work and not the time other processes hold the core (which `bench.ab`'s wall clock includes: on
a host at load 4 on 2 cores its quartiles span ±30%, hiding 1-3% effects). Rounds interleave the builds in
every order, as bench.ab does; the report is bench.ab's (medians, paired ratio to the first build).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.ab import build_runners, report, time_rounds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="the ONNX model the builds were compiled from")
    p.add_argument("builds", nargs="+", help="LABEL=path/to/model.so")
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--pause", type=float, default=20.0, help="milliseconds idle before each timed run")
    args = p.parse_args()
    builds = dict(spec.split("=", 1) for spec in args.builds)
    runners, feeds = build_runners(args.model, builds, 1, peers=False)
    samples = time_rounds(runners, feeds, args.rounds, args.pause / 1e3, clock=time.thread_time_ns)
    print(f"{args.model.name}, 1 thread, CPU time of the calling thread, {args.rounds} rounds:")
    print("\n".join(report(samples, list(builds))), flush=True)


if __name__ == "__main__":
    main()
