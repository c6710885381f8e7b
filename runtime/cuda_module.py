"""Python side of models compiled for the cuda target: the emulator and device arrays.

`attach_emulator(lib)`: compile the CUDA C embedded in the model .so for this CPU with
runtime/aic_cuda_emu.h (g++; cached by source in the aic cache folder) and point the
model's driver table at the emulator, before `aic_create`. The model's own runtime
(runtime/cuda_runtime.c) then runs unchanged: weights upload, arena, launches, graph replay.

`run_device(...)`: inputs that live on a GPU (`__cuda_array_interface__`: cupy, torch,
numba) are passed by pointer without a copy to `aic_run_device`, on cupy's current stream;
outputs are new cupy arrays (at their actual shapes for a model compiled for ranges of sizes,
whose input dims go with the call). `run_device_pointers` is that call on raw device addresses.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
from pathlib import Path
from typing import Any

from .package import RUNTIME_DIR, PackageError, _run, cache_dir

EMU_FLAGS = ["-std=c++17", "-O1", "-fPIC", "-shared", "-w", "-fno-exceptions", "-fno-rtti", "-DAIC_EMU_DRIVER"]
EMU_SOURCES = ("aic_cuda_emu.h", "cuda_driver.h")


def cxx() -> list[str]:
    return shlex.split(os.environ.get("CXX", "g++"))


def emulator_library(source: str) -> Path:
    """The emulated kernels of `source` as a host .so (cached)."""
    digest = hashlib.sha256(" ".join(cxx() + EMU_FLAGS).encode() + source.encode())
    for name in EMU_SOURCES:
        digest.update((RUNTIME_DIR / name).read_bytes())
    path = cache_dir() / f"aic_cuda_emu-{digest.hexdigest()[:20]}.so"
    if not path.exists():
        cu = path.with_suffix(f".{os.getpid()}.cu")
        cu.write_text(source)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.so")
        try:
            _run([*cxx(), *EMU_FLAGS, f"-I{RUNTIME_DIR}", "-include", str(RUNTIME_DIR / "aic_cuda_emu.h"),
                  "-x", "c++", str(cu), "-o", str(tmp)], "compiling the CUDA C for the emulator")  # fmt: skip
        finally:
            cu.unlink(missing_ok=True)
        os.replace(tmp, path)
    return path


def attach_emulator(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Make the model in `lib` run its kernels in the emulator; returns the emulator library
    (keep it loaded as long as the model)."""
    lib.aic_cuda_source.restype = ctypes.c_char_p
    source = lib.aic_cuda_source().decode()
    try:
        emu = ctypes.CDLL(str(emulator_library(source)))
    except PackageError as err:
        raise RuntimeError(f"cannot build the CUDA emulator: {err}") from None
    emu.aic_emu_driver.restype = ctypes.c_void_p
    lib.aic_cuda_use_driver.argtypes = [ctypes.c_void_p]
    lib.aic_cuda_use_driver(emu.aic_emu_driver())
    return emu


def is_device_array(value: Any) -> bool:
    return hasattr(value, "__cuda_array_interface__")


def device_pointer(value: Any, dtype: Any, shape: tuple[int, ...], name: str) -> int:
    """The device address of a C-contiguous GPU array of the expected dtype and shape."""
    import numpy as np

    iface = value.__cuda_array_interface__
    if tuple(iface["shape"]) != tuple(shape):
        raise ValueError(f"input '{name}' has shape {list(iface['shape'])}; the model expects {list(shape)}")
    if np.dtype(iface["typestr"]) != np.dtype(dtype):
        raise ValueError(f"input '{name}' has dtype {np.dtype(iface['typestr']).name}; the model expects {dtype}")
    strides = iface.get("strides")
    if strides is not None and tuple(strides) != tuple(np.empty(shape, dtype).strides):
        raise ValueError(f"input '{name}' is not C-contiguous; pass a contiguous copy")
    return int(iface["data"][0])


def run_device(lib: ctypes.CDLL, handle: int, arrays: list[Any], layout: list[tuple[tuple[int, ...], Any]],
               names: list[str], inputs: list[tuple[tuple[int, ...], Any]],
               dims: list[int] | None = None) -> list[Any]:  # fmt: skip
    """Run on GPU arrays (of the input shapes `inputs`; `dims`: those shapes flattened, for a model
    compiled for ranges of sizes); returns cupy arrays of the output shapes `layout` (no host copy)."""
    import cupy

    ptrs = [device_pointer(a, dt, shape, n) for a, (shape, dt), n in zip(arrays, inputs, names)]
    outs = [cupy.empty(shape, dtype=dtype) for shape, dtype in layout]
    run_device_pointers(lib, handle, ptrs, [o.data.ptr for o in outs], cupy.cuda.get_current_stream().ptr, dims)
    return outs


def run_device_pointers(lib: ctypes.CDLL, handle: int, inputs: list[int], outputs: list[int], stream: int = 0,
                        dims: list[int] | None = None) -> None:  # fmt: skip
    """`aic_run_device_dims` on device addresses (in the emulator: host addresses), the input dims
    (None: the model's largest sizes) and a stream (0: the model's); raises RuntimeError with the
    runtime's message (a bad dim, a kernel's failed check)."""
    ins_t = (ctypes.c_uint64 * max(1, len(inputs)))(*inputs)
    outs_t = (ctypes.c_uint64 * max(1, len(outputs)))(*outputs)
    dims_t = (ctypes.c_int64 * max(1, len(dims)))(*dims) if dims is not None else None
    lib.aic_run_device_dims.argtypes = [ctypes.c_void_p] * 5
    lib.aic_last_error.restype = ctypes.c_char_p
    if lib.aic_run_device_dims(handle, dims_t, ins_t, outs_t, ctypes.c_void_p(stream or None)) != 0:
        raise RuntimeError(lib.aic_last_error().decode(errors="replace"))
