"""The whole compile, model in, shared object out: one readable function.

    model.onnx --frontend--> Graph --bind shapes--> static Graph --passes--> optimised Graph
      --fuse, lower, schedule, plan memory--> loop IR Program --LLVM--> object code
      --link with the C runtime, weights and metadata--> model.so

For a cross target (another triple) the last step writes the link inputs, the runtime
sources and a build.sh into a folder instead, for a cross toolchain to link.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import onnx
from aic.codegen.llvm import compile_program
from aic.codegen.target import Target, host_triple
from aic.frontend.onnx import load_model
from aic.ir import Graph
from aic.runtime.package import export_link_inputs, package_program

from .passes import optimize
from .program import build_program
from .shapes import ShapeSpec, bind_shapes

Progress = Callable[[int, int, str, float | None], None]  # (step, steps, what, seconds: None when starting)
ModelSource = str | os.PathLike | onnx.ModelProto | Graph


def compile_model(
    model: ModelSource,
    target: str | Target = "llvm",
    opt_level: int = 2,
    output: str | os.PathLike | None = None,
    shapes: ShapeSpec | None = None,
    progress: Progress | None = None,
    disable_passes: Sequence[str] = (),
) -> Path:
    """Compile `model` (an ONNX file or proto, or a Graph) for `target` at `opt_level`
    (0-3) into a shared object at `output` (default: a new temporary folder) and return
    its path. `shapes` binds symbolic input dims ({"batch": 1} or {"x": (1, 3, 224, 224)}).
    `progress` is called as each step starts and as it ends; `disable_passes` names graph
    passes to skip."""
    if not 0 <= opt_level <= 3:
        raise ValueError(f"opt_level must be 0..3, got {opt_level}")
    target = Target.parse(target)
    cross = target.triple != host_triple() and target.kind != "cuda"
    step = _stepper(progress, total=6)
    with step("read the model"):  # ONNX -> graph IR with inferred types
        graph = model if isinstance(model, Graph) else load_model(model)
    with step("bind input shapes"):  # symbolic dims -> static sizes
        graph = bind_shapes(graph, shapes)
    with step(f"optimise the graph (-O{opt_level})"):  # folding, simplification, pattern fusion
        graph, _ = optimize(graph, opt_level, disable=disable_passes)
    with step("lower to loop IR"):  # fuse, lower, schedule, plan the arena
        program = build_program(graph, target)
    if target.kind == "cuda":  # GPU schedule -> CUDA C -> NVRTC cubins/PTX -> one .so
        from .cuda_build import build_cuda

        with step(f"generate CUDA C, compile with NVRTC for {target.cpu} and link"):
            return build_cuda(
                program, target, Path(output) if output is not None else _default_output(program.name, False), opt_level
            )
    with step(f"generate code for {target.triple} ({target.cpu})"):  # loop IR -> LLVM -> object code
        code = compile_program(program, target, opt_level)
    with step("link the model" if not cross else "write the link inputs"):  # + runtime, weights, metadata
        path = Path(output) if output is not None else _default_output(program.name, cross)
        if cross:
            return export_link_inputs(program, code.object, target, path, opt_level)
        return package_program(program, code.object, target, path, opt_level)


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
