"""CUDA C -> cubin and PTX with NVRTC, ahead of time: no GPU or driver is needed.

NVRTC comes from the `nvidia-cuda-nvrtc` wheel (the `aic[cuda]` extra), pinned to 13.0.x:
PTX from a newer NVRTC carries a `.version` that the CUDA 13.0 driver's JIT rejects. Each
architecture gets a cubin (`sm_80`, `sm_90`, ...: what the driver loads when the GPU's
major version matches), and the oldest one also PTX (`compute_80`), which newer GPUs JIT.
ptxas's register, spill and shared-memory figures per kernel are parsed from the log.
"""

from __future__ import annotations

import ctypes
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from .errors import CodegenError

DEFAULT_ARCHS = ("sm_80", "sm_90")


@dataclass(frozen=True)
class CudaImage:
    arch: int  # 80 for sm_80 / compute_80
    ptx: bool
    data: bytes


@dataclass
class NvrtcResult:
    images: list[CudaImage]
    version: str
    resources: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # arch -> kernel -> figures
    log: str = ""


def nvrtc_library_paths() -> list[Path]:
    """Where the nvidia-cuda-nvrtc wheel puts libnvrtc, for this interpreter."""
    paths = []
    for entry in sys.path:
        for sub in ("nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib"):
            folder = Path(entry or ".") / sub
            paths += sorted(folder.glob("libnvrtc.so*"))
    return [p for p in paths if "builtins" not in p.name and ".alt." not in p.name]


@cache
def _nvrtc() -> ctypes.CDLL:
    errors = []
    for path in [*nvrtc_library_paths(), Path("libnvrtc.so.13")]:
        try:
            for builtins in sorted(path.parent.glob("libnvrtc-builtins.so.*")):  # NVRTC dlopens it by soname
                ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
            lib = ctypes.CDLL(str(path))
            break
        except OSError as err:
            errors.append(str(err))
    else:
        raise CodegenError(
            "NVRTC (libnvrtc.so.13) was not found: install the CUDA extra, pip install 'aic[cuda]' "
            "(nvidia-cuda-nvrtc==13.0.*)"
        )
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def available() -> bool:
    try:
        _nvrtc()
        return True
    except CodegenError:
        return False


def nvrtc_version() -> str:
    major, minor = ctypes.c_int(), ctypes.c_int()
    _nvrtc().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"


def _check(status: int, what: str) -> None:
    if status != 0:
        raise CodegenError(f"NVRTC {what}: {_nvrtc().nvrtcGetErrorString(status).decode()}")


def compile_source(source: str, arch: str, name: str = "model.cu", ptx: bool = False) -> tuple[bytes, str]:
    """Compile `source` for `arch` ("sm_90"); returns (cubin, or PTX when `ptx`, and the log)."""
    lib = _nvrtc()
    prog = ctypes.c_void_p()
    _check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None), "create")
    target = arch.replace("sm_", "compute_") if ptx else arch
    opts = [f"--gpu-architecture={target}", "--std=c++17", "--ptxas-options=--verbose"]
    if ptx:
        opts.remove("--ptxas-options=--verbose")
    argv = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    try:
        status = lib.nvrtcCompileProgram(prog, len(opts), argv)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        if status != 0:
            raise CodegenError(f"NVRTC could not compile the generated CUDA C for {arch}:\n{log[-4000:]}")
        get_size, get = (lib.nvrtcGetPTXSize, lib.nvrtcGetPTX) if ptx else (lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN)
        _check(get_size(prog, ctypes.byref(size)), "size")
        out = ctypes.create_string_buffer(size.value)
        _check(get(prog, out), "output")
        return out.raw, log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


_RES = re.compile(r"Compiling entry function '(\w+)' for '(\w+)'(.*?)(?=Compiling entry function|\Z)", re.S)


def parse_resources(log: str) -> dict[str, dict[str, int]]:
    """ptxas -v figures per kernel: registers, spill stores/loads (bytes), stack, shared memory."""
    out: dict[str, dict[str, int]] = {}
    for name, _, text in _RES.findall(log):
        figures = {}
        for key, pattern in (("registers", r"Used (\d+) registers"), ("spill_stores", r"(\d+) bytes spill stores"),
                             ("spill_loads", r"(\d+) bytes spill loads"), ("stack", r"(\d+) bytes stack frame"),
                             ("shared", r"(\d+) bytes smem")):  # fmt: skip
            m = re.search(pattern, text)
            figures[key] = int(m.group(1)) if m else 0
        out[name] = figures
    return out


def compile_cuda(source: str, archs: tuple[str, ...] = DEFAULT_ARCHS) -> NvrtcResult:
    """Cubins for every architecture in `archs` and PTX for the oldest."""
    bad = [a for a in archs if not re.fullmatch(r"sm_\d{2,3}a?", a)]
    if bad or not archs:
        raise CodegenError(f"unknown CUDA architecture(s) {bad or archs}; expected e.g. -arch=sm_80,sm_90")
    images, resources, logs = [], {}, []
    for arch in archs:
        cubin, log = compile_source(source, arch)
        images.append(CudaImage(int(re.sub(r"\D", "", arch)), False, cubin))
        resources[arch] = parse_resources(log)
        logs.append(log)
    oldest = min(archs, key=lambda a: int(re.sub(r"\D", "", a)))
    ptx, _ = compile_source(source, oldest, ptx=True)
    images.append(CudaImage(int(re.sub(r"\D", "", oldest)), True, ptx.rstrip(b"\0") + b"\0"))
    return NvrtcResult(images, nvrtc_version(), resources, "\n".join(logs))
