"""Measure this core's FP32 FMA peak: a JIT-compiled loop of independent vector FMAs.

    python -m bench.peak

Twelve accumulators cover the FMA latency of every current x86 core (latency 4-5 cycles,
two pipes); the vector width is the host's widest (16 lanes with AVX-512, else 8).
"""

from __future__ import annotations

import ctypes
import time

import llvmlite.binding as llvm

ACCUMULATORS = 12


def fma_loop_ir(lanes: int) -> str:
    """LLVM IR of `float k(i64 n)`: n rounds of ACCUMULATORS independent `lanes`-wide FMAs."""
    vt = f"<{lanes} x float>"
    fma = f"@llvm.fma.v{lanes}f32"
    lines = [
        f"declare {vt} {fma}({vt}, {vt}, {vt})",
        "define float @k(i64 %n) {",
        "entry:",
        "  br label %loop",
        "loop:",
        "  %i = phi i64 [0, %entry], [%i1, %loop]",
    ]
    lines += [f"  %a{a} = phi {vt} [zeroinitializer, %entry], [%b{a}, %loop]" for a in range(ACCUMULATORS)]
    # x * (1 + 2^-23) + 2^-23: stays finite and cannot be simplified away
    lines += [
        f"  %b{a} = call {vt} {fma}({vt} %a{a}, {vt} splat (float 0x3FF0000020000000), "
        f"{vt} splat (float 0x3E80000000000000))"
        for a in range(ACCUMULATORS)
    ]
    lines += ["  %i1 = add i64 %i, 1", "  %c = icmp slt i64 %i1, %n", "  br i1 %c, label %loop, label %done", "done:"]
    total = "%b0"
    for a in range(1, ACCUMULATORS):
        lines.append(f"  %s{a} = fadd {vt} {total}, %b{a}")
        total = f"%s{a}"
    lines += [f"  %r = extractelement {vt} {total}, i32 0", "  ret float %r", "}"]
    return "\n".join(lines)


def measure_peak_gflops(seconds: float = 0.2, repeats: int = 5) -> float:
    """Best of `repeats` timings of about `seconds` each, in GFLOP/s on the calling thread's core."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    features = llvm.get_host_cpu_features()
    lanes = 16 if features.get("avx512f") else 8
    machine = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=features.flatten(), opt=3
    )
    module = llvm.parse_assembly(fma_loop_ir(lanes))
    module.verify()
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    kernel = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64)(engine.get_function_address("k"))
    rounds = 1_000_000
    start = time.perf_counter()
    kernel(rounds)
    rounds = max(rounds, int(rounds * seconds / (time.perf_counter() - start)))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        kernel(rounds)
        best = max(best, rounds * ACCUMULATORS * lanes * 2 / (time.perf_counter() - start) / 1e9)
    return best


if __name__ == "__main__":
    print(f"{llvm.get_host_cpu_name()}: {measure_peak_gflops():.1f} GFLOP/s FP32 FMA peak on one core")
