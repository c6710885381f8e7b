"""Link a model compiled for the cuda target into one .so.

The link inputs, in a scratch folder:
- model.s (model_asm.py, as for CPU models): the weights (`aic_weights`) and the signature;
- images.s: each cubin / PTX image and the CUDA C source, `.incbin`ed;
- plan.c: the launch plan (kernels, grid and block sizes, arguments as arena/weight offsets
  or input/output indices) as `aic_cuda_plan_data` (runtime/cuda_driver.h); a kernel whose grid
  is a run-time size (a model compiled for ranges of sizes) gets a small C function of the
  symbols' values that the runtime calls before each launch of it;
- the runtime object, compiled once from cuda_runtime.c and cached.
The .so depends only on libc, libdl and libpthread: the CUDA driver is dlopen'ed at create.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aic.ir.loop import Program, ProgramBuffer, RowView

from .artifact import seal
from .model_asm import model_assembly, quoted
from .package import (
    C_FLAGS,
    RUNTIME_DIR,
    PackageError,
    _run,
    cache_dir,
    compiler,
    program_metadata,
    program_weights,
    tensor_spec,
    write_weights,
)

if TYPE_CHECKING:
    from aic.codegen.cuda import CudaSource
    from aic.codegen.cuda_nvrtc import NvrtcResult
    from aic.codegen.target import Target

CUDA_RUNTIME_SOURCES = (
    "cuda_runtime.c",
    "cuda_driver.h",
    "cuda_sizes.h",
    "aic.h",
    "aic_internal.h",
    "aic_tables.h",
    "aic_kernel_error.h",
)
_KINDS = {"arena": 0, "input": 1, "output": 2, "weight": 3, "row": 4}
AIC_ARG_CONST, AIC_ARG_NONE = 5, 6


def cuda_runtime_object() -> Path:
    """cuda_runtime.c compiled for this machine, cached by source and compiler."""
    digest = hashlib.sha256(" ".join(compiler() + C_FLAGS).encode())
    for name in CUDA_RUNTIME_SOURCES:
        digest.update((RUNTIME_DIR / name).read_bytes())
    path = cache_dir() / f"aic_cuda_runtime-{digest.hexdigest()[:16]}.o"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp.o")
        _run([*compiler(), *C_FLAGS, "-c", str(RUNTIME_DIR / "cuda_runtime.c"), "-o", str(tmp)],
             "compiling the CUDA runtime")  # fmt: skip
        os.replace(tmp, path)
    return path


class _Args:
    """The argument and row tables of plan.c."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.args: list[str] = []
        self.rows: list[str] = []

    def ref(self, buf: ProgramBuffer | int | None) -> str:
        """An aic_cuda_arg initialiser for a buffer, a constant or nothing."""
        if buf is None:
            return f"{{{AIC_ARG_NONE}, 0}}"
        if isinstance(buf, int):
            return f"{{{AIC_ARG_CONST}, {buf}LL}}"
        if isinstance(buf, RowView):
            assert buf.base is not None and buf.counter is not None
            base = self.add(buf.base)
            row_bytes = int(np.prod(buf.shape, dtype=np.int64)) * buf.dtype.itemsize
            self.rows.append(f"{{{base}, {self.ref(buf.counter)}, {row_bytes}LL, {buf.length}LL, {int(buf.reverse)}}}")
            return f"{{{_KINDS['row']}, {len(self.rows) - 1}LL}}"
        if buf.kind == "input":
            return f"{{{_KINDS['input']}, {next(i for i, b in enumerate(self.program.inputs) if b is buf)}LL}}"
        if buf.kind == "output":
            return f"{{{_KINDS['output']}, {next(i for i, b in enumerate(self.program.outputs) if b is buf)}LL}}"
        if buf.kind in ("arena", "weight"):
            return f"{{{_KINDS[buf.kind]}, {int(buf.offset)}LL}}"
        raise PackageError(f"the cuda target cannot pass buffer {buf.name} of kind {buf.kind}")

    def add(self, buf: ProgramBuffer) -> int:
        """Append `buf` to the argument table; its index."""
        text = self.ref(buf)
        self.args.append(text)
        return len(self.args) - 1


def plan_source(program: Program, source: CudaSource, nvrtc: NvrtcResult, weight_bytes: int,
                output_dims: list[list[str]] | None = None) -> str:  # fmt: skip
    """plan.c: the launch plan tables; `output_dims`: each output dim as C of the symbols' values d[k]
    (a model compiled for ranges of sizes)."""
    table_args = _Args(program)
    launches = []
    dims_slot = program.attrs.get("dims_slot", -1)
    for launch in source.launches:
        k = source.kernels[launch.kernel]
        if k.dims_param >= 0:  # its grid reads the symbols' values: the argument must be the dims slot
            arg = launch.args[k.dims_param]
            if arg.kind != "arena" or arg.offset != dims_slot or dims_slot < 0:
                raise PackageError(f"kernel {k.name}: its grid is computed from argument {k.dims_param} "
                                   f"({arg.name}), which is not the model's dims slot")  # fmt: skip
        refs = [table_args.ref(b) for b in launch.args]  # rows first, so a launch's arguments stay contiguous
        first = len(table_args.args)
        table_args.args += refs
        launches.append(f"{{{launch.kernel}, {first}, {len(launch.args)}}}")
    steps = []
    for st in source.steps:
        kind = {"launch": 0, "if": 1, "loop": 2}[st.kind]
        refs = ", ".join(table_args.ref(x) for x in (st.cond, st.counter, st.trips))
        steps.append(f"{{{kind}, {st.launch}, {st.then_size}, {st.size}, {refs}}}")
    grids = [_grid_function(i, k.grid_expr) for i, k in enumerate(source.kernels)]
    kernels = [
        f"{{{quoted(k.name)}, {{{', '.join(map(str, k.grid))}}}, {{{', '.join(map(str, k.block))}}}, {k.smem_bytes}, "
        f"{sum(1 << i for i in k.aligned)}ULL, {f'aic_grid{i}' if grid else '0'}}}"
        for i, (k, grid) in enumerate(zip(source.kernels, grids))
    ]
    images = [f"{{{im.arch}, {int(im.ptx)}, aic_cuda_image{i}, {len(im.data)}}}" for i, im in enumerate(nvrtc.images)]
    externs = [f"extern const unsigned char aic_cuda_image{i}[];" for i in range(len(nvrtc.images))]
    args = table_args.args

    def table(kind: str, rows: list[str]) -> str:
        if not rows:
            return f"static const {kind} *const {kind}s = 0;"
        return f"static const {kind} {kind}s[] = {{\n    " + ",\n    ".join(rows) + "\n};"

    return "\n".join([
        "/* Generated by aic: the launch plan of a model compiled for the cuda target. */",
        '#include "cuda_driver.h"',
        *externs,
        "extern const char aic_cuda_source_text[];",
        "static inline int64_t aic_min64(int64_t a, int64_t b) { return a < b ? a : b; }",
        "static inline int64_t aic_max64(int64_t a, int64_t b) { return a > b ? a : b; }",
        *[g for g in grids if g],
        *_output_dims_function(output_dims),
        table("aic_cuda_arg", args),
        table("aic_cuda_kernel", kernels),
        table("aic_cuda_launch", launches),
        table("aic_cuda_image", images),
        table("aic_cuda_step", steps),
        table("aic_cuda_row", table_args.rows),
        "const aic_cuda_plan aic_cuda_plan_data = {",
        f"    {len(kernels)}, {len(launches)}, {len(images)}, {len(steps)}, {len(args)}, aic_cuda_kernels,",
        "    aic_cuda_launchs, aic_cuda_args, aic_cuda_images, aic_cuda_steps, aic_cuda_rows,",
        f"    {int(source.has_control)}, {weight_bytes}, aic_cuda_source_text,",
        f"    {'aic_output_dims' if output_dims is not None else '0'},",
        "};",
        "",
    ])  # fmt: skip


def _output_dims_function(dims: list[list[str]] | None) -> list[str]:
    """`aic_output_dims(d, out)`: every output's dims (output 0's, then output 1's, ...) from the symbols' values."""
    if dims is None:
        return []
    sets = [f"out[{i}] = {e};" for i, e in enumerate(e for shape in dims for e in shape)]
    return [f"static void aic_output_dims(const int64_t *d, int64_t *out) {{ (void)d; (void)out; {' '.join(sets)} }}"]


def _grid_function(index: int, exprs: tuple[str, str, str]) -> str:
    """`aic_grid<index>(d, grid)`: the run-time grid sizes of kernel `index` from the symbols' values d
    ("" when its grid is static)."""
    sets = [f"grid[{axis}] = {e};" for axis, e in enumerate(exprs) if e]
    if not sets:
        return ""
    return f"static void aic_grid{index}(const int64_t *d, int64_t *grid) {{ {' '.join(sets)} }}"


def images_assembly(count: int) -> str:
    lines = ["/* Generated by aic: the GPU images and the CUDA C source. */", '\t.section .rodata.aic_cuda,"a"']
    for i in range(count):
        lines += ["\t.balign 64", f"\t.globl aic_cuda_image{i}", f"\t.hidden aic_cuda_image{i}",
                  f"aic_cuda_image{i}:", f'\t.incbin "image{i}.bin"']  # fmt: skip
    lines += ["\t.globl aic_cuda_source_text", "\t.hidden aic_cuda_source_text", "aic_cuda_source_text:",
              '\t.incbin "kernels.cu"', "\t.byte 0", ""]  # fmt: skip
    return "\n".join(lines)


def package_cuda_program(program: Program, source: CudaSource, nvrtc: NvrtcResult, target: Target,
                         output: str | os.PathLike, opt_level: int = 2,
                         extra_metadata: dict[str, Any] | None = None,
                         output_dims: list[list[str]] | None = None) -> Path:  # fmt: skip
    """Write the model .so for the cuda target at `output` (`output_dims`: see `plan_source`)."""
    metadata = program_metadata(program, target, opt_level)
    metadata.update(extra_metadata or {})
    inputs = [tensor_spec(b) for b in program.inputs]
    outputs = [tensor_spec(b) for b in program.outputs]
    weights = program_weights(program)
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aic-link-") as tmp:
        folder = Path(tmp)
        blob_size, _ = write_weights(folder / "weights.bin", weights, trailer=False)
        (folder / "model.s").write_text(model_assembly(metadata, inputs, outputs, "weights.bin"))
        for i, image in enumerate(nvrtc.images):
            (folder / f"image{i}.bin").write_bytes(image.data)
        (folder / "kernels.cu").write_text(source.text)
        (folder / "images.s").write_text(images_assembly(len(nvrtc.images)))
        (folder / "plan.c").write_text(plan_source(program, source, nvrtc, blob_size, output_dims))
        partial = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        cmd = [*compiler(), *C_FLAGS, f"-I{RUNTIME_DIR}", "-shared", "model.s", "images.s", "plan.c",
               str(cuda_runtime_object()), "-o", str(partial), "-ldl", "-lpthread", "-Wl,-z,noexecstack",
               "-Wl,--as-needed"]  # fmt: skip
        _run(cmd, "linking the model", cwd=tmp)
        seal(partial)  # size and checksum, checked by aic.load before dlopen (artifact.py)
        os.replace(partial, output)
    return output
