"""The cuda target's half of the pipeline: GPU schedule, CUDA C, NVRTC, link (one .so).

Called by compiler/pipeline.py after the loop-IR program is built for a cuda target.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aic.codegen.cuda import CudaSource, host_size, render_program
from aic.codegen.cuda_nvrtc import NvrtcResult, compile_cuda
from aic.codegen.target import Target
from aic.ir.loop import INDEX, Buffer, Const, Load, Program
from aic.ir.loop_tools import subst
from aic.runtime.cuda_package import package_cuda_program

from .lower.sizes import SymbolRange, Symbols, as_expr
from .schedule_gpu import schedule_gpu_program


def render_cuda(program: Program, target: Target) -> tuple[Program, CudaSource]:
    """`program` scheduled for a GPU, and its CUDA C."""
    scheduled = schedule_gpu_program(program, tensor_cores="fp32-exact" not in target.options)
    return scheduled, render_program(scheduled)


def cuda_kernel_records(source: CudaSource, nvrtc: NvrtcResult | None, target: Target) -> list[dict[str, Any]]:
    """Each CUDA kernel's launch shape, schedule rule and (with `nvrtc`) ptxas figures per architecture."""
    resources = nvrtc.resources if nvrtc is not None else {}
    return [
        {"name": k.name, "grid": list(k.grid), "block": list(k.block), "smem_bytes": k.smem_bytes, "rule": k.rule,
         "ptxas": {arch: resources[arch].get(k.name, {}) for arch in target.cuda_archs if arch in resources},
         **({"grid_expr": list(k.grid_expr)} if any(k.grid_expr) else {})}  # run-time grid sizes, C of the dims d[k]
        for k in source.kernels
    ]  # fmt: skip


def build_cuda(program: Program, target: Target, output: str | os.PathLike, opt_level: int = 2) -> Path:
    """Schedule `program` for a GPU, render it as CUDA C, compile it with NVRTC for the target's
    architectures and link the model .so at `output`."""
    scheduled, source = render_cuda(program, target)
    nvrtc = compile_cuda(source.text, target.cuda_archs)
    kernels = cuda_kernel_records(source, nvrtc, target)
    extra = {
        "cuda": {
            "archs": list(target.cuda_archs),
            "ptx": [f"compute_{im.arch}" for im in nvrtc.images if im.ptx],
            "nvrtc": nvrtc.version,
            "fp32_exact": "fp32-exact" in target.options,
            "launches": len(source.launches),
            "splitk_workspace_bytes": scheduled.attrs.get("splitk_workspace_bytes", 0),
            "kernels": kernels,
        }
    }
    return package_cuda_program(scheduled, source, nvrtc, target, output, opt_level, extra, output_dims_c(program))


def output_dims_c(program: Program) -> list[list[str]] | None:
    """For a model compiled for ranges of sizes, each output dim as host C of the symbols' values
    `d[k]` (the runtime copies outputs at their actual sizes without reading them back); None for
    static shapes."""
    ranges = program.attrs.get("symbols")
    if not ranges:
        return None
    table = Symbols({r["name"]: SymbolRange(r["name"], r["min"], r["max"], r["opt"]) for r in ranges})
    dims = Buffer("dims", INDEX, len(table.order))
    values = {table.vars[name]: Load(dims, Const(k, INDEX)) for k, name in enumerate(table.order)}
    return [[host_size(subst(as_expr(table.size(d)), values), {dims}, f"output {i} dim {j}")
             for j, d in enumerate(shape)] for i, shape in enumerate(program.attrs["output_dims"])]  # fmt: skip
