"""Build hand-written loop IR into a model .so and run it: the harness of the codegen tests.

Several kernels ("cases") go into one program so a test file pays for few compiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aic.codegen.llvm import compile_program
from aic.codegen.target import Target
from aic.ir.loop import Buffer, Kernel, KernelCall, Program, ProgramBuffer, Stmt
from aic.runtime.module import Module, load
from aic.runtime.package import package_program


@dataclass
class Case:
    """One kernel: `body` reads `inputs` (buffer -> data) and writes `outputs`."""

    name: str
    body: Stmt
    inputs: dict[Buffer, np.ndarray]
    outputs: list[Buffer]
    weights: dict[Buffer, np.ndarray] = field(default_factory=dict)


def build_program(cases: list[Case]) -> Program:
    kernels, calls, ins, outs, weights = [], [], [], [], []
    offset = 0
    for case in cases:
        params = list(case.inputs) + list(case.weights) + case.outputs
        kernel = Kernel(case.name, params, case.body)
        args = []
        for buf, data in case.inputs.items():
            ins.append(ProgramBuffer(f"{case.name}.{buf.name}", buf.dtype, np.shape(data), "input"))
            args.append(ins[-1])
        for buf, data in case.weights.items():
            data = np.asarray(data, dtype=buf.dtype.numpy)
            weights.append(ProgramBuffer(f"{case.name}.{buf.name}", buf.dtype, data.shape, "weight", offset, data))
            offset += (data.nbytes + 63) // 64 * 64
            args.append(weights[-1])
        for buf in case.outputs:
            outs.append(ProgramBuffer(f"{case.name}.{buf.name}", buf.dtype, (int(buf.size),), "output"))
            args.append(outs[-1])
        kernels.append(kernel)
        calls.append(KernelCall(kernel, args))
    return Program("test", kernels, calls, ins, outs, weights, 0)


def build(cases: list[Case], folder: Path, opt_level: int = 2, num_threads: int | None = None,
          target_text: str = "llvm") -> Module:
    program = build_program(cases)
    target = Target.parse(target_text)
    code = compile_program(program, target, opt_level)
    return load(package_program(program, code.object, target, folder / "model.so", opt_level), num_threads)


def run_cases(cases: list[Case], folder: Path, opt_level: int = 2, num_threads: int | None = None,
              target: str = "llvm") -> dict[str, list]:
    """Run every case (compiled for `target`, which must run on this machine); return case name -> its outputs."""
    module = build(cases, folder, opt_level, num_threads, target)
    feeds = {f"{c.name}.{b.name}": np.asarray(d, dtype=b.dtype.numpy) for c in cases for b, d in c.inputs.items()}
    results = dict(zip([o.name for o in module.outputs], module.run(None, feeds)))
    return {c.name: [results[f"{c.name}.{b.name}"] for b in c.outputs] for c in cases}
