"""Loop IR programs -> LLVM IR -> object code, for the host CPU or a named triple.

The module holds one internal function `aic_k_<kernel>(ptr...)` per kernel and the
entry the runtime calls:

    void aic_entry(uint8_t *arena, void *const *inputs, void *const *outputs, const uint8_t *weights)

which computes each model buffer's address (an input or output pointer, a weight at
its offset in the embedded blob, an arena slice at its planned offset) and calls the
kernels in program order. Weights never enter the LLVM module: they are linked in
by runtime/package.py. Set AIC_DUMP_IR=dir to keep `<program>.ll` and `<program>.opt.ll`;
AIC_DEBUG>=3 prints the optimised LLVM IR to stderr.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import llvmlite.binding as llvm
from aic.ir.loop import Kernel, Program, ProgramBuffer
from llvmlite import ir

from .llvm_expr import ModuleContext
from .llvm_stmt import emit_function
from .llvm_types import I8, PTR, VOID, CodegenError, gep
from .target import Target, host_triple


@dataclass(frozen=True)
class ObjectCode:
    """A compiled program: the object file's bytes and the optimised LLVM IR."""

    object: bytes
    llvm_ir: str
    target: Target


def symbol(name: str) -> str:
    """A C-identifier-safe form of a kernel or program name."""
    return re.sub(r"\W", "_", name) or "_"


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


def build_module(program: Program, target: Target) -> ir.Module:
    """Render `program` as an (unoptimised) llvmlite IR module."""
    tm = target_machine(target, 2)
    module = ir.Module(name=symbol(program.name))
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    ctx = ModuleContext(module)
    kernels = list(program.kernels)
    kernels += [c.kernel for c in program.calls if all(c.kernel is not k for k in kernels)]
    functions = {id(k): _emit_kernel(ctx, k) for k in kernels}
    _emit_entry(ctx, program, functions)
    return module


def _emit_kernel(ctx: ModuleContext, kernel: Kernel) -> ir.Function:
    name = ctx.unique(f"aic_k_{symbol(kernel.name)}")
    fn = ir.Function(ctx.module, ir.FunctionType(VOID, [PTR] * len(kernel.params)), name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    fn.attributes.add("noinline")  # one call each: inlining only slows compiles and hides kernels in profiles
    for arg, buf in zip(fn.args, kernel.params):
        arg.name = symbol(buf.name)
    emit_function(ctx, fn, kernel.name, dict(zip(kernel.params, fn.args)), kernel.body)
    return fn


def _emit_entry(ctx: ModuleContext, program: Program, functions: dict[int, ir.Function]) -> None:
    fn = ir.Function(ctx.module, ir.FunctionType(VOID, [PTR] * 4), "aic_entry")
    fn.attributes.add("nounwind")
    arena, inputs, outputs, weights = fn.args
    for arg, name in zip(fn.args, ("arena", "inputs", "outputs", "weights")):
        arg.name = name
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    addresses: dict[int, ir.Value] = {}

    def address(buf: ProgramBuffer) -> ir.Value:
        if id(buf) not in addresses:
            if buf.kind in ("input", "output"):
                table, order = (inputs, program.inputs) if buf.kind == "input" else (outputs, program.outputs)
                position = next((i for i, p in enumerate(order) if p is buf), None)
                if position is None:
                    raise CodegenError(f"program {program.name}: {buf.kind} {buf.name} is not in the {buf.kind} list")
                slot = gep(b, table, [ir.Constant(ir.IntType(64), position)], PTR)
                addresses[id(buf)] = b.load(slot, typ=PTR, name=symbol(buf.name))
            elif buf.kind in ("weight", "arena"):
                base = weights if buf.kind == "weight" else arena
                offset = ir.Constant(ir.IntType(64), buf.offset)
                addresses[id(buf)] = gep(b, base, [offset], I8, name=symbol(buf.name))
            else:
                raise CodegenError(f"program {program.name}: buffer {buf.name} has unknown kind {buf.kind!r}")
        return addresses[id(buf)]

    for call in program.calls:
        kernel_fn = functions[id(call.kernel)]
        if len(call.args) != len(call.kernel.params):
            params = len(call.kernel.params)
            raise CodegenError(f"call of kernel {call.kernel.name} passes {len(call.args)} buffers for {params} params")
        b.call(kernel_fn, [address(a) for a in call.args])
    b.ret_void()


def optimize(module: llvm.ModuleRef, target: Target, opt_level: int) -> None:
    """Run LLVM's default -O<opt_level> pipeline (new pass manager) tuned for `target`."""
    tm = target_machine(target, opt_level)
    pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def compile_program(program: Program, target: Target | str = "llvm", opt_level: int = 2) -> ObjectCode:
    """Render, verify, optimise and assemble `program` into an object file for `target`."""
    target = Target.parse(target)
    if not 0 <= opt_level <= 3:
        raise ValueError(f"opt_level must be 0..3, got {opt_level}")
    text = str(build_module(program, target))
    try:
        module = llvm.parse_assembly(text)
        module.verify()
        module.get_function("aic_entry").visibility = "hidden"  # called by the runtime, not exported
    except RuntimeError as err:
        raise CodegenError(f"program {program.name}: generated LLVM IR is invalid: {err}") from None
    optimize(module, target, opt_level)
    optimized = str(module)
    _dump(program.name, text, optimized)
    return ObjectCode(target_machine(target, opt_level).emit_object(module), optimized, target)


def _dump(name: str, text: str, optimized: str) -> None:
    if int(os.environ.get("AIC_DEBUG", "0") or 0) >= 3:
        print(f"[aic.codegen] LLVM IR of {name}:\n{optimized}", file=sys.stderr)
    folder = os.environ.get("AIC_DUMP_IR")
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{symbol(name)}.ll").write_text(text)
    (path / f"{symbol(name)}.opt.ll").write_text(optimized)
