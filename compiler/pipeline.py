"""The whole compile, model in, shared object out: one readable function.

    model.onnx --frontend--> Graph --bind shapes--> static Graph --passes--> optimised Graph
      --fuse, lower, schedule, plan memory--> loop IR Program --LLVM--> object code
      --link with the C runtime, weights and metadata--> model.so

For a cross target (another triple) the last step writes the link inputs, the runtime
sources and a build.sh into a folder instead, for a cross toolchain to link.
"""

from __future__ import annotations

import gc
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import onnx
from aic.codegen.target import Target, host_triple
from aic.frontend.load import read_model
from aic.ir import Graph
from aic.ir.loop import Program
from aic.runtime.package import export_link_inputs, package_program

from .kernel_table import kernel_table
from .limits import check_sizes
from .passes import optimize
from .program import Schedules, build_program
from .shapes import ShapeSpec, bind_shapes, split_ranges

CPU_ONLY_PASSES = ("fuse-attention", "blocked-layout")
# the expansion's tile (16 positions x one block) wants 32 vector registers: in AVX2 code the fused kernels took
# 5-44% longer than the expand and depthwise kernels apart (BENCHMARKS.md)
AVX512_ONLY_PASSES = ("fuse-expand",)
# one kernel per recurrent step: a GPU needs each step's blocks at once; the quantizer's range as block reductions
GPU_ONLY_PASSES = ("split-recurrence", "split-dynamic-quantize")
COLLECT_EVERY = 16  # compiles between full garbage collections (graphs are reference cycles: node <-> value)
_compiles = itertools.count(1)

Progress = Callable[[int, int, str, float | None], None]  # (step, steps, what, seconds: None when starting)
ModelSource = str | os.PathLike | onnx.ModelProto | Graph | Any  # Any: a TensorFlow model object


def compile_model(
    model: ModelSource,
    target: str | Target = "llvm",
    opt_level: int = 2,
    output: str | os.PathLike | None = None,
    shapes: ShapeSpec | None = None,
    progress: Progress | None = None,
    disable_passes: Sequence[str] = (),
    schedules: Schedules | None = None,
    embed_weights: bool | None = None,
    symbol_prefix: str | None = None,
) -> Path:
    """Compile `model` (an ONNX file or proto, a TensorFlow model, or a Graph) for `target` at `opt_level`
    (0-3) into a shared object at `output` (default: a new temporary folder) and return
    its path. `shapes` binds symbolic input dims ({"batch": 1} or {"x": (1, 3, 224, 224)}) or
    gives them ranges ({"batch": (1, 64), "seq": (1, 512, 128)}: min, max, opt; compiler/shapes.py).
    `progress` is called as each step starts and as it ends; `disable_passes` names graph
    passes to skip; `schedules` replaces the schedules of the kernels it names
    (compiler/program.py, `Schedules`). Weights go into the .so, or to a side file when large
    (`embed_weights` None), as asked otherwise; `symbol_prefix` also exports the ABI as
    <prefix>_aic_*."""
    if not 0 <= opt_level <= 3:
        raise ValueError(f"opt_level must be 0..3, got {opt_level}")
    target = Target.parse(target)
    cross = target.kind != "cuda" and target.triple != host_triple()
    step = _stepper(progress, total=5 if target.kind == "cuda" else 7)
    with step("read the model"):  # ONNX -> graph IR with inferred types
        graph = read_model(model)
    with step("bind input shapes"):  # symbolic dims -> static sizes, or ranges kept symbolic
        fixed, ranges = split_ranges(graph, shapes)
        graph = bind_shapes(graph, fixed, allow_unbound=bool(ranges))
    with step(f"optimise the graph (-O{opt_level})"):  # folding, simplification, pattern fusion
        graph, _ = optimize(graph, opt_level, disable=_disabled(target, disable_passes), enable=_enabled(target),
                            options=pass_options(target))
    with step("lower to loop IR"):  # fuse, lower, schedule, plan the arena
        check_sizes(graph)  # no tensor too large for 64-bit sizes or any memory
        program = build_program(graph, target, schedules, ranges)
    program.attrs["kernel_calls"] = [r.to_json() for r in kernel_table(program)]  # named in profiles and inspect
    if target.kind == "cuda":  # GPU schedule -> CUDA C -> NVRTC cubins/PTX -> one .so
        from .cuda_build import build_cuda

        with step(f"generate CUDA C, compile with NVRTC for {target.cpu} and link"):
            return build_cuda(
                program, target, Path(output) if output is not None else _default_output(program.name, False), opt_level
            )
    from aic.codegen.llvm import compile_program  # here: the cuda target needs no LLVM

    with step(f"generate code for {target.triple} ({target.cpu})"):  # loop IR -> LLVM -> object code
        code = compile_program(program, target, opt_level)
    # write the weights, then link them (or the side file's digest) with the runtime and metadata
    path = Path(output) if output is not None else _default_output(program.name, cross)
    if cross:
        path = export_link_inputs(program, code.object, target, path, opt_level, embed_weights, step)
    else:
        path = package_program(program, code.object, target, path, opt_level, embed_weights, step, symbol_prefix)
    if next(_compiles) % COLLECT_EVERY == 0:  # else Python's rare full collections let a long-running process grow
        gc.collect()
    return path


def lower_model(
    model: ModelSource,
    target: str | Target = "llvm",
    opt_level: int = 2,
    shapes: ShapeSpec | None = None,
    schedules: Schedules | None = None,
) -> Program:
    """The loop-IR program `compile_model` would generate code for (for inspection and tuning)."""
    graph = read_model(model)
    fixed, ranges = split_ranges(graph, shapes)
    target = Target.parse(target)
    graph, _ = optimize(bind_shapes(graph, fixed, allow_unbound=bool(ranges)), opt_level,
                        disable=_disabled(target, ()), enable=_enabled(target), options=pass_options(target))
    return build_program(graph, target, schedules, ranges)


def _disabled(target: Target, disable: Sequence[str]) -> tuple[str, ...]:
    """The passes to skip: those asked for, for cuda the rewrites whose kernels are CPU-shaped
    (SoftmaxAttention keeps a block of score rows per thread, too few threads for a GPU; the blocked
    channel layout's blocks are CPU vectors), and below 512-bit vectors those measured only with them."""
    if target.kind == "cuda":
        return (*disable, *CPU_ONLY_PASSES)
    return (*disable, *AVX512_ONLY_PASSES) if target.vector_bits < 512 else tuple(disable)


def _enabled(target: Target) -> tuple[str, ...]:
    return GPU_ONLY_PASSES if target.kind == "cuda" else ()


def pass_options(target: Target) -> dict[str, dict[str, int]]:
    """The passes' target-dependent arguments: the blocked layout's channels per block, one vector of float32
    (16 with AVX-512: blocks of 8 left half of each 512-bit FMA unused on cores that run them at full width)."""
    return {"blocked-layout": {"block": 16 if target.vector_bits >= 512 else 8}}


def _default_output(name: str, cross: bool) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="aic-"))
    return folder if cross else folder / f"{name}.so"


def _stepper(progress: Progress | None, total: int) -> Callable[[str], AbstractContextManager[None]]:
    count = [0]

    @contextmanager
    def step(what: str) -> Iterator[None]:
        count[0] += 1
        if progress is not None:
            progress(count[0], total, what, None)
        start = time.perf_counter()
        yield
        if progress is not None:
            progress(count[0], total, what, time.perf_counter() - start)

    return step
