"""Check the generated CUDA kernels one by one, each against the loop IR it was scheduled from.

`kernel_checks(model)` lowers a model for cuda (exact FP32), schedules it for the GPU and renders
the CUDA C; for every launch kernel it pairs the scheduled kernel with the part of the original
loop-IR kernel it came from (compiler/schedule_gpu.py makes one launch per top-level statement).
`check_kernel` fills every parameter with the same random data for both, runs the part in the
loop-IR evaluator (ir/loop_eval.py) as the reference, launches the CUDA kernel alone (`launch`:
the emulator, or `cupy.RawModule` from the kernel's cubin or PTX on a GPU) and compares every
parameter afterwards. The two launches of a split-K contraction (partial tiles into a workspace, then
their sum with the epilogue: compiler/schedule_gpu_splitk.py) are checked together against their part,
the workspace filled with NaN first. A model compiled for ranges of sizes gets random sizes in its dims
parameter (clamped to the ranges by the kernels), and each launch's grid is computed from them.
"""

from __future__ import annotations

import ctypes
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from aic.codegen.cuda import CudaKernel, CudaSource, render_program, symbol
from aic.compiler.pipeline import lower_model
from aic.compiler.schedule_gpu import launch_parts, schedule_gpu_program
from aic.compiler.schedule_gpu_grid import bind_lets
from aic.ir.loop import INDEX, Buffer, Const, For, Kernel, Store
from aic.ir.loop_eval import run_kernel

Launcher = Callable[[CudaKernel, list[np.ndarray]], list[np.ndarray]]


@dataclass
class KernelCheck:
    reference: Kernel  # the part of the original kernel
    info: CudaKernel  # the rendered launch: name, grid, block, shared bytes
    scheduled: Kernel  # the GPU-bound kernel (its grid loop's extent: the grid at run-time sizes)
    ranges: list[tuple[int, int]]  # a ranged model's symbols, in dims order: (min, max)
    then: list[tuple[CudaKernel, Kernel]] = field(default_factory=list)  # launches of the same part, after it


def kernel_checks(model, shapes=None) -> tuple[CudaSource, list[KernelCheck]]:
    program = lower_model(model, "cuda -arch=sm_80 -fp32-exact", shapes=shapes)
    parts: dict[str, Kernel] = {}
    for k in program.kernels:
        sizes, stmts = launch_parts(k)
        for i, part in enumerate(stmts):
            name = k.name if len(stmts) == 1 else f"{k.name}_{i}"
            parts[name] = Kernel(k.name, k.params, bind_lets(sizes.lets, part))
    scheduled = schedule_gpu_program(program, tensor_cores=False)
    source = render_program(scheduled)
    by_symbol = {info.name: info for info in source.kernels}  # each kernel's symbol: its name, unique here
    ranges = [(r["min"], r["max"]) for r in program.attrs.get("symbols", [])]
    checks: dict[str, KernelCheck] = {}
    for k in scheduled.kernels:
        part, info = k.attrs.get("part", k.name), by_symbol[symbol(k.name)]
        if part in checks:
            checks[part].then.append((info, k))
        else:
            checks[part] = KernelCheck(parts[part], info, k, ranges)
    return source, list(checks.values())


def random_arguments(kernel: Kernel, rng: np.random.Generator, ranges: list[tuple[int, int]]) -> list[np.ndarray]:
    """One flat array per parameter: floats ~ N(0, 1), integers in 0..3 (valid indices), random bools;
    run-time sizes (the "dims" parameter) in their `ranges`."""
    out = []
    for p in kernel.params:
        dt = np.dtype(p.dtype.numpy)
        size = int(p.size)
        if p.name.startswith("dims") and p.dtype == INDEX and len(ranges) == size:
            out.append(np.array([rng.integers(lo, hi + 1) for lo, hi in ranges], dt))
        elif dt.kind == "f":
            out.append(rng.standard_normal(size).astype(dt))
        elif dt.kind == "b":
            out.append(rng.random(size) > 0.5)
        else:
            out.append(rng.integers(0, 4, size).astype(dt))
    return out


def check_kernel(check: KernelCheck, launch: Launcher, rng: np.random.Generator, rtol: float = 1e-4) -> None:
    args = random_arguments(check.reference, rng, check.ranges)
    expected = [a.copy() for a in args]
    run_kernel(check.reference, expected)
    extra = [np.full(int(p.size), np.nan, np.dtype(p.dtype.numpy)) for p in check.scheduled.params[len(args):]]
    actual = [a.copy() for a in args] + extra  # the workspace of split-K launches
    for info, scheduled in [(check.info, check.scheduled), *check.then]:
        grid = grid_at(scheduled, actual)
        actual = launch(replace(info, grid=grid), actual) if min(grid) > 0 else actual
    for param, got, want in zip(check.reference.params, actual, expected):
        what = f"kernel {check.info.name} ({check.info.rule}), parameter {param.name}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, equal_nan=True, err_msg=what)


def grid_at(kernel: Kernel, args: list[np.ndarray]) -> tuple[int, int, int]:
    """The grid of a GPU-bound kernel when its parameters hold `args` (run-time sizes included)."""
    grid, s = [1, 1, 1], kernel.body
    while isinstance(s, For) and s.kind.is_gpu:
        if s.kind.value.startswith("block"):
            out = Buffer("grid", INDEX, 1)
            value = np.zeros(1, np.int64)
            run_kernel(Kernel("grid", [*kernel.params, out], Store(out, Const(0, INDEX), s.extent)), [*args, value])
            grid["xyz".index(s.kind.value[-1])] = int(value[0])
        s = s.body
    return tuple(grid)  # type: ignore[return-value]


def emulator_launcher(source: CudaSource) -> Launcher:
    """Launch kernels of `source` alone in the CPU emulator (host memory stands for device memory)."""
    from aic.runtime.cuda_module import emulator_library

    lib = ctypes.CDLL(str(emulator_library(source.text)))
    lib.aic_emu_launch.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p]

    def launch(info: CudaKernel, arrays: list[np.ndarray]) -> list[np.ndarray]:
        ptrs = [ctypes.c_void_p(a.ctypes.data) for a in arrays]
        params = (ctypes.c_void_p * max(1, len(ptrs)))(*[ctypes.addressof(p) for p in ptrs])
        grid, block = (ctypes.c_uint * 3)(*info.grid), (ctypes.c_uint * 3)(*info.block)
        assert lib.aic_emu_launch(info.name.encode(), grid, block, info.smem_bytes, params) == 0, info.name
        return arrays

    launch.library = lib  # type: ignore[attr-defined]  # keeps it loaded
    return launch


def gpu_launcher(source: CudaSource) -> Launcher:
    """Launch kernels of `source` alone on the GPU through `cupy.RawModule`, from the cubin for the
    device's architecture (NVRTC, compiled here) or else the PTX."""
    import cupy
    from aic.codegen.cuda_nvrtc import compile_cuda

    arch = f"sm_{cupy.cuda.Device().compute_capability}"  # "90" on an H100/H200
    nvrtc = compile_cuda(source.text, (arch,))
    image = next((im for im in nvrtc.images if not im.ptx), None) or nvrtc.images[0]
    folder = Path(tempfile.mkdtemp(prefix="aic-kernels-"))
    path = folder / ("kernels.ptx" if image.ptx else "kernels.cubin")
    path.write_bytes(image.data.rstrip(b"\0") if image.ptx else image.data)
    module = cupy.RawModule(path=str(path))

    def launch(info: CudaKernel, arrays: list[np.ndarray]) -> list[np.ndarray]:
        device = [cupy.asarray(a) for a in arrays]
        fn = module.get_function(info.name)
        fn(info.grid, info.block, tuple(device), shared_mem=info.smem_bytes)
        cupy.cuda.Device().synchronize()
        return [cupy.asnumpy(d) for d in device]

    return launch
