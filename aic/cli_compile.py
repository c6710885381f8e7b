"""`aic compile` and `aic run`: build a model .so, and run one on .npy inputs.

    aic compile model.onnx -o model.so [--target T] [-O0..-O3] [--shape batch=1] [--shape x=1,3,224,224]
                                       [--shape batch=1..64 --shape seq=1..512:128]
    aic run model.so --input x=x.npy [--output-dir out/] [--threads N]

`aic run` loads the model through the runtime only (no compiler, no LLVM).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np


def fail(message: str) -> int:
    print(f"aic: error: {message}", file=sys.stderr)
    return 1


def add_model_source(p: argparse.ArgumentParser, what: str) -> None:
    """The MODEL argument and the TensorFlow options that say how to read it."""
    p.add_argument("model", help=f"an .onnx file, a TensorFlow SavedModel folder, frozen .pb or .keras file{what}")
    p.add_argument("--signature", help="the SavedModel signature to read (default serving_default)")
    p.add_argument("--outputs", metavar="A,B", help="a frozen GraphDef's output nodes (default: those nothing reads)")


# aic compile ----------------------------------------------------------------


def add_compile(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compile",
        help="compile a model into one native shared object",
        description="Compile an ONNX or TensorFlow model into a shared object (model + weights + runtime) for the "
        "host CPU or a named target. For another triple, OUT is a folder of link inputs with a build.sh.",
    )
    add_model_source(p, "")
    p.add_argument("-o", "--output", required=True, help="the .so to write (a folder for a cross target)")
    p.add_argument(
        "--target",
        default="llvm",
        help='"llvm" (this CPU, the default) or e.g. "llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1"',
    )
    p.add_argument("-O", dest="opt_level", type=int, choices=range(4), default=2, help="optimisation level (default 2)")
    p.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=N",
        help="bind a symbolic dim (batch=1), give it a range compiled once (batch=1..64, seq=1..512:128 for "
        "min..max:opt) or give an input's whole shape (x=1,3,224,224); repeatable",
    )
    p.add_argument(
        "--disable-pass", action="append", default=[], metavar="NAME", help="skip this graph pass (repeatable)"
    )
    weights = p.add_mutually_exclusive_group()
    weights.add_argument(
        "--embed-weights", dest="embed_weights", action="store_const", const=True, default=None,
        help="keep the weights inside the .so (default: embedded up to 64 MiB, else a side file OUT.weights)",
    )  # fmt: skip
    weights.add_argument(
        "--weights-file", dest="embed_weights", action="store_const", const=False,
        help="write the weights to a side file OUT.weights (mapped when the .so loads), whatever their size",
    )  # fmt: skip
    p.add_argument(
        "--symbol-prefix",
        metavar="NAME",
        help="also export the C ABI as NAME_aic_* (to link several models into one program)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run_compile)


def parse_shapes(items: list[str]) -> dict[str, int | tuple[int, ...] | str]:
    shapes: dict[str, int | tuple[int, ...] | str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if ".." in value:  # a range, read by compiler/shapes.py
            shapes[name.strip()] = value.strip()
            continue
        parts = [v.strip() for v in re.split(r"[,x]", value)] if sep else []
        if not name.strip() or not parts or not all(v.isdigit() for v in parts):
            raise ValueError(
                f"--shape expects NAME=N, NAME=MIN..MAX[:OPT] or NAME=N,N,... with non-negative integers, got '{item}'"
            )
        dims = tuple(int(v) for v in parts)
        shapes[name.strip()] = dims[0] if len(dims) == 1 and "," not in value and "x" not in value else dims
    return shapes


def _progress(step: int, steps: int, what: str, seconds: float | None) -> None:
    if seconds is None:
        print(f"[{step}/{steps}] {what} ...", end="", file=sys.stderr, flush=True)
    else:
        print(f" {seconds:.2f}s", file=sys.stderr, flush=True)


def run_compile(args: argparse.Namespace) -> int:
    from aic.compiler.pipeline import compile_model
    from aic.frontend.load import model_source
    from aic.runtime.artifact import weights_path

    start = time.perf_counter()
    try:
        shapes = parse_shapes(args.shape)
        path = compile_model(
            model_source(args.model, args.signature, args.outputs),
            args.target,
            args.opt_level,
            args.output,
            shapes,
            None if args.quiet else _progress,
            disable_passes=args.disable_pass,
            embed_weights=args.embed_weights,
            symbol_prefix=args.symbol_prefix,
        )
    except (ValueError, RuntimeError, OSError) as err:
        if not args.quiet:
            print(file=sys.stderr)
        return fail(str(err))
    if not args.quiet:
        files = list(path.rglob("*")) if path.is_dir() else [p for p in (path, weights_path(path)) if p.is_file()]
        size = sum(f.stat().st_size for f in files)
        print(f"wrote {path} ({size / 1024:.0f} KiB) in {time.perf_counter() - start:.2f}s", file=sys.stderr)
    return 0


# aic run --------------------------------------------------------------------


def add_run(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a compiled model on .npy inputs",
        description="Run a model .so on inputs read from .npy files; print each output's dtype, shape and "
        "statistics, and save them as .npy files with --output-dir.",
    )
    p.add_argument("model", help="a .so built by `aic compile`")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy", help="an input; repeatable")
    p.add_argument("--output-dir", type=Path, help="write each output to DIR/<name>.npy")
    p.add_argument("--threads", type=int, help="thread count (default: AIC_NUM_THREADS, else all CPUs)")
    p.add_argument("--emulate", action="store_true", default=None,
                   help="run a cuda model in the CPU emulator (also AIC_CUDA_EMULATE=1)")  # fmt: skip
    p.set_defaults(run=run_run)


def _read_inputs(items: list[str]) -> dict[str, np.ndarray]:
    feeds = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise ValueError(f"--input expects NAME=FILE.npy, got '{item}'")
        try:
            feeds[name] = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"--input {name}: cannot read {file}: {err}") from None
    return feeds


def _stats(array: np.ndarray) -> str:
    if array.size == 0:
        return "empty"
    values = array.astype(np.float64)
    return f"min {values.min():.6g}  max {values.max():.6g}  mean {values.mean():.6g}"


def run_run(args: argparse.Namespace) -> int:
    from aic.runtime.module import ModelLoadError, load

    try:
        feeds = _read_inputs(args.input)
        module = load(args.model, args.threads, emulate=args.emulate)
        start = time.perf_counter()
        outputs = module.run(None, feeds)
        elapsed = time.perf_counter() - start
    except (ValueError, ModelLoadError, RuntimeError) as err:
        return fail(str(err))
    print(f"ran {Path(args.model).name} in {elapsed * 1e3:.3f} ms on {module.num_threads} thread(s)")
    for info, array in zip(module.outputs, outputs):
        print(f"  {info.name}: {array.dtype.name}{list(array.shape)}  {_stats(array)}")
        if args.output_dir is not None:
            args.output_dir.mkdir(parents=True, exist_ok=True)
            np.save(args.output_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', info.name)}.npy", array)
    return 0
