"""This machine's measured peaks, the ceilings of `aic bench` percentages and of rooflines.

- FP32 FMA throughput of one core: a JIT-compiled loop of independent vector FMA chains
  (as many chains as it takes to cover the FMA latency), at the widest vector width the
  CPU has; the multi-thread peak is that times the thread count.
- Memory bandwidth of one core: the best of a few copies of a 64 MiB array (bytes read
  plus bytes written, per second).
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from functools import cache

import numpy as np

_CHAINS = 12  # independent accumulators: covers 4-cycle FMA latency on 2-3 pipes


@dataclass(frozen=True)
class Peak:
    gflops_per_core: float
    gbytes_per_s: float

    def gflops(self, threads: int) -> float:
        return self.gflops_per_core * max(threads, 1)


@cache
def measure_peak() -> Peak:
    """Measured once per process (about 0.3 s)."""
    return Peak(_fma_gflops(), _copy_gbytes())


def _fma_ir(lanes: int) -> str:
    vec = f"<{lanes} x float>"
    init = ", ".join(f"float {i + 1}.0" for i in range(lanes))
    half = ", ".join(["float 5.000000e-01"] * lanes)
    lines = [
        "define void @fma_loop(i64 %n, ptr %out) {",
        "entry:",
        "  br label %loop",
        "loop:",
        "  %i = phi i64 [0, %entry], [%i1, %loop]",
    ]
    for c in range(_CHAINS):
        lines.append(f"  %a{c} = phi {vec} [<{init}>, %entry], [%b{c}, %loop]")
    for c in range(_CHAINS):
        args = f"{vec} %a{c}, {vec} <{half}>, {vec} %a{(c + 1) % _CHAINS}"
        lines.append(f"  %b{c} = call {vec} @llvm.fma.v{lanes}f32({args})")
    lines += ["  %i1 = add i64 %i, 1", "  %more = icmp slt i64 %i1, %n", "  br i1 %more, label %loop, label %done"]
    lines.append("done:")
    total = "%b0"
    for c in range(1, _CHAINS):
        lines.append(f"  %s{c} = fadd {vec} {total}, %b{c}")
        total = f"%s{c}"
    lines += [f"  store {vec} {total}, ptr %out, align 4", "  ret void", "}"]
    lines.append(f"declare {vec} @llvm.fma.v{lanes}f32({vec}, {vec}, {vec})")
    return "\n".join(lines)


def _fma_gflops() -> float:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    features = llvm.get_host_cpu_features()
    lanes = 16 if features.get("avx512f") else 8 if features.get("avx") else 4
    target = llvm.Target.from_default_triple()
    machine = target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=features.flatten(), opt=2)
    module = llvm.parse_assembly(_fma_ir(lanes))
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    loop = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p)(engine.get_function_address("fma_loop"))
    out = (ctypes.c_float * lanes)()
    n, best = 200_000, 0.0
    for _ in range(5):
        start = time.perf_counter()
        loop(n, ctypes.addressof(out))
        best = max(best, 2 * lanes * _CHAINS * n / (time.perf_counter() - start))
    return best / 1e9


def _copy_gbytes() -> float:
    src = np.ones(16 << 20, np.float32)
    dst = np.empty_like(src)
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, 2 * src.nbytes / (time.perf_counter() - start))
    return best / 1e9
