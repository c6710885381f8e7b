"""Throughput of the AVX2 int8 multiply instructions and of the int8 kernels' inner-loop mixes.

    python -m bench.int8_uops [--steps 20000000] [--repeats 5]

Each loop is LLVM IR compiled for the host by llvmlite (and linked by `cc`) and timed as a whole (medians of `repeats`):
- `vpmaddwd` / `vpmaddubsw` alone: 8 independent dependency chains (the instruction's throughput);
- `dotw` tile: one K step of aic's exact 4 x 16 tile on int16 pairs: 2 weight loads, 4 `vpbroadcastd`,
  8 `vpmaddwd`, 8 `vpaddd` (128 products);
- `ubsw` tile: one K step of the 4 x 16 tile on bytes: 2 weight loads, 4 `vpbroadcastd`, 8 `vpmaddubsw`,
  8 `vpmaddwd` by ones, 8 `vpaddd` (256 products; onnxruntime's AVX2 mix).
Needs an AVX2 host. Prints instructions (or multiply-adds) per second and per cycle at `--ghz`.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np

WD, UBSW = "llvm.x86.avx2.pmadd.wd", "llvm.x86.avx2.pmadd.ub.sw"
DECLS = (f"declare <8 x i32> @{WD}(<16 x i16>, <16 x i16>)\n"
         f"declare <16 x i16> @{UBSW}(<32 x i8>, <32 x i8>)\n")


def _chains(fn: str) -> str:
    """8 independent chains of one multiply instruction, `steps` iterations."""
    ret, arg = ("<8 x i32>", "<16 x i16>") if fn == WD else ("<16 x i16>", "<32 x i8>")
    phis, body, outs = [], [], []
    for i in range(8):
        phis.append(f"  %c{i} = phi {ret} [ zeroinitializer, %entry ], [ %n{i}, %loop ]")
        body.append(f"  %x{i} = bitcast {ret} %c{i} to {arg}\n"
                    f"  %n{i} = call {ret} @{fn}({arg} %x{i}, {arg} %y)")
        outs.append(f"  %o{i} = bitcast {ret} %n{i} to <8 x i32>\n  %p{i} = getelementptr <8 x i32>, ptr %out, "
                    f"i64 {i}\n  store <8 x i32> %o{i}, ptr %p{i}, align 4")
    return _function("\n".join(phis), "\n".join(body), "\n".join(outs), f"  %y = load {arg}, ptr %w, align 4")


def _tile(bytes_: bool) -> str:
    """One K step of a 4-row x 2-vector int32 tile, weights from a 16 KiB ring (L1), activations broadcast."""
    phis, body, outs = [], [], []
    body.append("  %slot = and i64 %i, 255\n  %wo = mul i64 %slot, 2")
    for v in range(2):
        body.append(f"  %wi{v} = add i64 %wo, {v}\n  %wp{v} = getelementptr <8 x i32>, ptr %w, i64 %wi{v}\n"
                    f"  %wv{v} = load <8 x i32>, ptr %wp{v}, align 4")
    for r in range(4):
        body.append(f"  %ai{r} = add i64 %slot, {256 * r}\n  %ap{r} = getelementptr i32, ptr %a, i64 %ai{r}\n"
                    f"  %as{r} = load i32, ptr %ap{r}\n  %ab{r} = insertelement <8 x i32> undef, i32 %as{r}, i32 0\n"
                    f"  %av{r} = shufflevector <8 x i32> %ab{r}, <8 x i32> undef, <8 x i32> zeroinitializer")
        for v in range(2):
            t = f"{r}_{v}"
            phis.append(f"  %c{t} = phi <8 x i32> [ zeroinitializer, %entry ], [ %n{t}, %loop ]")
            if bytes_:
                body.append(f"  %ua{t} = bitcast <8 x i32> %av{r} to <32 x i8>\n"
                            f"  %sb{t} = bitcast <8 x i32> %wv{v} to <32 x i8>\n"
                            f"  %h{t} = call <16 x i16> @{UBSW}(<32 x i8> %ua{t}, <32 x i8> %sb{t})\n"
                            f"  %d{t} = call <8 x i32> @{WD}(<16 x i16> %h{t}, <16 x i16> "
                            f"<{', '.join(['i16 1'] * 16)}>)")
            else:
                body.append(f"  %ua{t} = bitcast <8 x i32> %av{r} to <16 x i16>\n"
                            f"  %sb{t} = bitcast <8 x i32> %wv{v} to <16 x i16>\n"
                            f"  %d{t} = call <8 x i32> @{WD}(<16 x i16> %ua{t}, <16 x i16> %sb{t})")
            body.append(f"  %n{t} = add <8 x i32> %c{t}, %d{t}")
            outs.append(f"  %p{t} = getelementptr <8 x i32>, ptr %out, i64 {2 * r + v}\n"
                        f"  store <8 x i32> %n{t}, ptr %p{t}, align 4")
    return _function("\n".join(phis), "\n".join(body), "\n".join(outs), "")


def _function(phis: str, body: str, outs: str, pre: str) -> str:
    return (DECLS + "define void @run(i64 %steps, ptr %w, ptr %a, ptr %out) {\nentry:\n" + pre +
            "\n  br label %loop\nloop:\n  %i = phi i64 [ 0, %entry ], [ %j, %loop ]\n" + phis + "\n" + body +
            "\n  %j = add i64 %i, 1\n  %more = icmp ult i64 %j, %steps\n  br i1 %more, label %loop, label %done\n"
            "done:\n" + outs + "\n  ret void\n}\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20_000_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--ghz", type=float, default=3.66, help="clock for the per-cycle figures")
    args = p.parse_args()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    machine = target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                           features=llvm.get_host_cpu_features().flatten(), opt=3, reloc="pic")
    tmp = Path(tempfile.mkdtemp())
    w, a, out = np.ones(4096, np.int32), np.ones(1024, np.int32), np.zeros(128, np.int32)
    loops = {  # name: (IR, instructions per step counted, multiply-adds per step)
        "vpmaddwd x8 chains": (_chains(WD), 8, 0),
        "vpmaddubsw x8 chains": (_chains(UBSW), 8, 0),
        "dotw tile 4x16 (exact, 2 K)": (_tile(False), 0, 4 * 16 * 2),
        "ubsw tile 4x16 (saturating, 4 K)": (_tile(True), 0, 4 * 16 * 4),
    }
    for n, (name, (text, per, macs)) in enumerate(loops.items()):
        module = llvm.parse_assembly(text)
        module.verify()
        (tmp / f"l{n}.o").write_bytes(machine.emit_object(module))
        subprocess.run(["cc", "-shared", "-o", tmp / f"l{n}.so", tmp / f"l{n}.o"], check=True)
        fn = ctypes.CDLL(str(tmp / f"l{n}.so")).run
        fn.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn(args.steps, w.ctypes.data, a.ctypes.data, out.ctypes.data)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        rate = (per or macs) * args.steps / t
        unit = "instr" if per else "MAC"
        print(f"{name:34s} {t * 1e3:8.1f} ms  {rate / 1e9:6.1f} G{unit}/s  {rate / args.ghz / 1e9:5.2f} {unit}/cycle"
              f"  (spread {min(times) * 1e3:.1f}-{max(times) * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
