"""Winograd layers A/B across builds, and the time of each phase found by leaving it out.

    python -m bench.winograd_layers build DIR [--leave-out products|input|output|copy] [--set NAME=VALUE]
                                    [--only 64x56x56-64 ...]
    python -m bench.winograd_layers time DIR_A DIR_B [...] [--threads 1] [--seconds 2]

`build` compiles a Conv+bias+Relu layer (bench/winograd.py `conv_layer`) of each shape in `SHAPES` into
DIR/<shape>.so with the compiler as it is; `--leave-out` drops one phase of the Winograd kernel, for timing
only (the outputs are then wrong): the 36 products or the phase-split copy of the input (no code), or the
arithmetic of the input or output transform (each output a copy of one input; the loads and stores stay);
`--set` changes a constant of conv_winograd.py (block sizes) for the build. `time` loads the builds of every
directory, checks them against onnxruntime (max error relative to the output's max) and runs them in turns,
one call each per turn: at 1 thread the calling thread's CPU time, at 2 threads wall time; medians (10th
percentiles), and the median of each directory's per-turn ratio to the first.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
from aic.compiler.lower import conv_winograd
from aic.ir.loop import Seq

import aic
from bench.check_interp import ort_session, relative_error
from bench.winograd import conv_layer, feeds_of

SHAPES = [  # C_in, H, W, C_out
    (64, 56, 56, 64), (128, 28, 28, 128), (256, 14, 14, 256),  # ResNet-50 and ResNet-18
    (32, 80, 80, 32), (64, 40, 40, 64), (128, 20, 20, 128), (256, 10, 10, 256),  # YOLO-style head
    (32, 128, 128, 32), (64, 64, 64, 64), (128, 32, 32, 128), (256, 16, 16, 256), (256, 32, 32, 128),  # UNet
    (128, 64, 64, 64), (64, 32, 32, 128), (128, 16, 16, 256),  # UNet's decoder
    (48, 30, 30, 40), (96, 24, 24, 96), (192, 12, 12, 160), (64, 112, 112, 64),  # tuned for by no one
]
NOTHING = Seq(())


def name_of(cin: int, h: int, w: int, cout: int) -> str:
    return f"{cin}x{h}x{w}-{cout}"


def leave_out(stack: ExitStack, phase: str) -> None:
    """Patch conv_winograd so that `phase` emits no code."""
    if phase == "products":
        stack.enter_context(mock.patch.object(conv_winograd, "micro_kernel", lambda *a, **k: NOTHING))
    elif phase == "copy":
        stack.enter_context(mock.patch.object(conv_winograd, "split_copy", lambda *a, **k: NOTHING))
    elif phase == "input":
        stack.enter_context(mock.patch.object(conv_winograd, "combine", lambda ctx, m, values: [values[0]] * len(m)))
    elif phase == "output":
        stack.enter_context(mock.patch.object(conv_winograd, "output_rows", lambda ctx, values: values[:4]))


def build(out: Path, phase: str | None, constants: list[str], only: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for shape in SHAPES:
        if only and name_of(*shape) not in only:
            continue
        with ExitStack() as stack:
            if phase:
                leave_out(stack, phase)
            for assignment in constants:
                name, value = assignment.split("=")
                stack.enter_context(mock.patch.object(conv_winograd, name, int(value)))
            aic.compile(conv_layer(*shape), output=out / f"{name_of(*shape)}.so", cache=False)
        print("built", out / name_of(*shape), flush=True)


def turns(run: dict[str, Callable[[], object]], seconds: float, clock: Callable[[], float]) -> dict[str, list[float]]:
    """Seconds per call of each build, the builds taking turns in a rotating order, one call each per turn."""
    names, samples = list(run), {name: [] for name in run}
    end, turn = time.perf_counter() + seconds * len(run), 0
    while time.perf_counter() < end:
        for name in names[turn % len(names):] + names[: turn % len(names)]:
            t0 = clock()
            run[name]()
            samples[name].append(clock() - t0)
        turn += 1
    return samples


def timing(dirs: list[Path], threads: int, seconds: float) -> None:
    labels = [d.name for d in dirs]
    print(f"| layer | {' | '.join(f'{x} ms (p10)' for x in labels)} | "
          f"{' | '.join(f'{x}/{labels[0]} paired' for x in labels[1:])} | rel err |")
    print("|---|" + "---:|" * (2 * len(labels) - 1) + "---|")
    for shape in SHAPES:
        name = name_of(*shape)
        if not all((d / f"{name}.so").exists() for d in dirs):
            continue
        model = conv_layer(*shape)
        feeds = feeds_of(model)
        want = ort_session(model.SerializeToString()).run(None, feeds)[0]
        modules = {d.name: aic.load(d / f"{name}.so", num_threads=threads) for d in dirs}
        errors = [f"{x}: {relative_error(m.run(None, feeds)[0], want):.1e}" for x, m in modules.items()]
        clock = time.thread_time if threads == 1 else time.perf_counter
        for m in modules.values():
            m.run(None, feeds)
        samples = turns({k: (lambda m=m, f=feeds: m.run(None, f)) for k, m in modules.items()}, seconds, clock)
        base = samples[labels[0]]
        paired = [statistics.median(a / b for a, b in zip(samples[x], base)) for x in labels[1:]]
        times = [f"{statistics.median(t) * 1e3:.3f} ({np.percentile(t, 10) * 1e3:.3f})" for t in samples.values()]
        print(f"| {name} | {' | '.join(times)} | {' | '.join(f'{r:.3f}' for r in paired)} | {', '.join(errors)} |",
              flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("dir", type=Path)
    b.add_argument("--leave-out", choices=["products", "input", "output", "copy"])
    b.add_argument("--set", nargs="*", default=[], help="NAME=VALUE: a constant of conv_winograd.py for this build")
    b.add_argument("--only", nargs="*", default=[], help="layers by name (C_inxHxW-C_out), else all")
    t = sub.add_parser("time")
    t.add_argument("dirs", type=Path, nargs="+")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    if args.command == "build":
        build(args.dir, args.leave_out, args.set, args.only)
    else:
        timing(args.dirs, args.threads, args.seconds)


if __name__ == "__main__":
    main()
