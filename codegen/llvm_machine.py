"""LLVM target machines, optimisation and assembly of LLVM IR text into object code.

Used in-process by codegen/llvm.py (kernel listings) and in the helper process of
codegen/llvm_worker.py (whole programs).
"""

from __future__ import annotations

from functools import cache

import llvmlite.binding as llvm

from .llvm_types import CodegenError
from .target import Target, host_triple


@cache
def _initialized(all_targets: bool) -> bool:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    if all_targets:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
    return True


@cache
def target_machine(target: Target, opt_level: int) -> llvm.TargetMachine:
    """The (cached) LLVM target machine for `target`: PIC, small code model."""
    if target.kind != "llvm":
        raise CodegenError(f"target {target} is not an LLVM CPU target")
    _initialized(target.triple != host_triple())
    try:
        llvm_target = llvm.Target.from_triple(target.triple)
    except RuntimeError as err:
        raise CodegenError(f"this LLVM cannot generate code for {target.triple}: {err}") from None
    return llvm_target.create_target_machine(
        cpu=target.cpu, features=target.feature_string, opt=opt_level, reloc="pic", codemodel="small"
    )


def optimize(module: llvm.ModuleRef, target: Target, opt_level: int) -> None:
    """Run LLVM's default -O<opt_level> pipeline (new pass manager) tuned for `target`."""
    tm = target_machine(target, opt_level)
    pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def assemble_in_process(text: str, target: Target, opt_level: int) -> tuple[bytes, str]:
    """Parse, verify, optimise and assemble LLVM IR `text`: the object code and the optimised IR."""
    try:
        module = llvm.parse_assembly(text)
        module.verify()
        module.get_function("aic_entry").visibility = "hidden"  # called by the runtime, not exported
    except RuntimeError as err:
        raise CodegenError(f"generated LLVM IR is invalid: {err}") from None
    optimize(module, target, opt_level)
    return target_machine(target, opt_level).emit_object(module), str(module)
