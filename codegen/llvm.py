"""Loop IR programs -> LLVM IR -> object code, for the host CPU or a named triple.

The module holds one internal function `aic_k_<kernel>(ptr...)` per kernel and the
entry the runtime calls:

    void aic_entry(uint8_t *arena, void *const *inputs, void *const *outputs, const uint8_t *weights)

which computes each model buffer's address (an input or output pointer, a weight at
its offset in the embedded blob, an arena slice at its planned offset) and calls the
kernels in program order, branching and looping around them for If/Loop/Scan steps.
Each kernel call is bracketed by `if (profiling) aic_profile_mark(n, 0|1)` with n the call's
position in `kernel_calls` order and `profiling` the runtime's `aic_profiling` flag, read
once per run: per-kernel timing by the runtime, one predictable branch per call when off.
Weights never enter the LLVM module: they are linked in by runtime/package.py.
Optimisation and assembly run in a helper process (llvm_worker.py). Set AIC_DUMP_IR=dir to keep
`<program>.ll`, `<program>.opt.ll` and each kernel's loop IR and LLVM IR (`kernels/<kernel>.loop`,
`.ll`); AIC_DEBUG>=3 prints the optimised LLVM IR to stderr.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from aic.ir.loop import (
    IfStep,
    Kernel,
    KernelCall,
    LoopStep,
    Program,
    ProgramBuffer,
    RowView,
    Step,
    kernel_calls,
    step_buffers,
)
from aic.ir.loop_printer import kernel_text
from llvmlite import ir

from .llvm_expr import ModuleContext
from .llvm_machine import optimize, target_machine
from .llvm_stmt import emit_function
from .llvm_types import I8, I64, PTR, VOID, CodegenError, gep
from .llvm_worker import assemble, prepare
from .target import Target


@dataclass(frozen=True)
class ObjectCode:
    """A compiled program: the object file's bytes and the optimised LLVM IR."""

    object: bytes
    llvm_ir: str
    target: Target


def symbol(name: str) -> str:
    """A C-identifier-safe form of a kernel or program name. Long names are cut to a
    prefix and a hash of the whole: LLVM truncates long value names, which would make
    distinct names collide."""
    safe = re.sub(r"\W", "_", name) or "_"
    if len(safe) <= _MAX_SYMBOL:
        return safe
    return f"{safe[: _MAX_SYMBOL - 17]}_{hashlib.sha1(name.encode()).hexdigest()[:16]}"


_MAX_SYMBOL = 96


def build_module(program: Program, target: Target) -> ir.Module:
    """Render `program` as an (unoptimised) llvmlite IR module."""
    tm = target_machine(target, 2)
    module = ir.Module(name=symbol(program.name))
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    ctx = ModuleContext(module, target.features)
    kernels = list(program.kernels)
    kernels += [c.kernel for c in kernel_calls(program.calls) if all(c.kernel is not k for k in kernels)]
    functions = {id(k): _emit_kernel(ctx, k) for k in kernels}
    _emit_entry(ctx, program, functions)
    return module


def kernel_llvm(kernel: Kernel, target: Target | str = "llvm", opt_level: int = 2) -> str:
    """The LLVM IR of one kernel alone, optimised at `opt_level` (0: as generated), for inspection."""
    target = Target.parse(target)
    tm = target_machine(target, opt_level)
    module = ir.Module(name=symbol(kernel.name))
    module.triple, module.data_layout = tm.triple, str(tm.target_data)
    fn = _emit_kernel(ModuleContext(module, target.features), kernel)
    fn.linkage = ""  # kept when optimised alone
    parsed = llvm.parse_assembly(str(module))
    if opt_level:
        optimize(parsed, target, opt_level)
    return str(parsed)


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
    for arg, name in zip(fn.args, ("arena", "inputs", "outputs", "weights")):
        arg.name = name
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    addresses = _addresses(b, program, fn.args)  # all in the entry block, so they dominate every step
    _emit_steps(b, program.calls, addresses, functions, _ProfileHooks(ctx.module, program, b))
    b.ret_void()


class _ProfileHooks:
    """`if (aic_profiling) aic_profile_mark(call, end)` around each kernel call (aic_runtime.c).
    The flag is read once, in the entry block: it cannot change during a run."""

    def __init__(self, module: ir.Module, program: Program, entry: ir.IRBuilder) -> None:
        i32 = ir.IntType(32)
        flag = ir.GlobalVariable(module, i32, "aic_profiling")
        self.on = entry.icmp_signed("!=", entry.load(flag, typ=i32), ir.Constant(i32, 0), name="profiling")
        self.mark = ir.Function(module, ir.FunctionType(VOID, [i32, i32]), "aic_profile_mark")
        self.index = {id(call): i for i, call in enumerate(kernel_calls(program.calls))}

    def emit(self, b: ir.IRBuilder, call: KernelCall, end: int) -> None:
        with b.if_then(self.on, likely=False):
            b.call(self.mark, [ir.Constant(ir.IntType(32), self.index[id(call)]), ir.Constant(ir.IntType(32), end)])


def _addresses(b: ir.IRBuilder, program: Program, args: list[ir.Argument]) -> dict[int, ir.Value]:
    """The address of every buffer the steps use: an input or output pointer, or an offset
    into the weight blob or the arena."""
    arena, inputs, outputs, weights = args
    addresses: dict[int, ir.Value] = {}
    for buf in step_buffers(program.calls):
        if id(buf) in addresses:
            continue
        if buf.kind in ("input", "output"):
            table, order = (inputs, program.inputs) if buf.kind == "input" else (outputs, program.outputs)
            position = next((i for i, p in enumerate(order) if p is buf), None)
            if position is None:
                raise CodegenError(f"program {program.name}: {buf.kind} {buf.name} is not in the {buf.kind} list")
            slot = gep(b, table, [ir.Constant(I64, position)], PTR)
            addresses[id(buf)] = b.load(slot, typ=PTR, name=symbol(buf.name))
        elif buf.kind in ("weight", "arena"):
            base = weights if buf.kind == "weight" else arena
            addresses[id(buf)] = gep(b, base, [ir.Constant(I64, buf.offset)], I8, name=symbol(buf.name))
        else:
            raise CodegenError(f"program {program.name}: buffer {buf.name} has unknown kind {buf.kind!r}")
    return addresses


def _emit_steps(
    b: ir.IRBuilder,
    steps: list[Step],
    addresses: dict[int, ir.Value],
    functions: dict[int, ir.Function],
    hooks: _ProfileHooks,
) -> None:
    """Kernel calls in order; an IfStep branches on its flag, a LoopStep counts in its counter buffer."""
    for step in steps:
        if isinstance(step, KernelCall):
            if len(step.args) != len(step.kernel.params):
                n, params = len(step.args), len(step.kernel.params)
                raise CodegenError(f"call of kernel {step.kernel.name} passes {n} buffers for {params} params")
            args = [_address(b, a, addresses) for a in step.args]
            hooks.emit(b, step, 0)
            b.call(functions[id(step.kernel)], args)
            hooks.emit(b, step, 1)
        elif isinstance(step, IfStep):
            with b.if_else(_flag(b, addresses[id(step.cond)])) as (then, otherwise):
                with then:
                    _emit_steps(b, step.then, addresses, functions, hooks)
                with otherwise:
                    _emit_steps(b, step.orelse, addresses, functions, hooks)
        else:
            _emit_loop(b, step, addresses, functions, hooks)


def _address(b: ir.IRBuilder, buf: ProgramBuffer, addresses: dict[int, ir.Value]) -> ir.Value:
    """A buffer's address; a row view's is computed where it is used, from its counter's value."""
    if not isinstance(buf, RowView):
        return addresses[id(buf)]
    i = b.load(addresses[id(buf.counter)], typ=I64, name="row")
    if buf.reverse:
        i = b.sub(ir.Constant(I64, buf.length - 1), i)
    row_bytes = ir.Constant(I64, int(np.prod(buf.shape, dtype=np.int64)) * buf.dtype.itemsize)
    return gep(b, _address(b, buf.base, addresses), [b.mul(i, row_bytes)], I8, name=symbol(buf.name))  # type: ignore[arg-type]


def _emit_loop(
    b: ir.IRBuilder,
    step: LoopStep,
    addresses: dict[int, ir.Value],
    functions: dict[int, ir.Function],
    hooks: _ProfileHooks,
) -> None:
    counter = addresses[id(step.counter)]
    b.store(ir.Constant(I64, 0), counter)
    head = b.append_basic_block("loop.head")
    body = b.append_basic_block("loop.body")
    done = b.append_basic_block("loop.done")
    b.branch(head)
    b.position_at_end(head)
    go: ir.Value = ir.Constant(ir.IntType(1), 1)
    if step.trips is not None:
        if isinstance(step.trips, int):
            trips: ir.Value = ir.Constant(I64, step.trips)
        else:
            trips = b.load(addresses[id(step.trips)], typ=I64, name="trips")
        go = b.icmp_signed("<", b.load(counter, typ=I64, name="i"), trips)
    if step.cond is not None:
        go = b.and_(go, _flag(b, addresses[id(step.cond)]))
    b.cbranch(go, body, done)
    b.position_at_end(body)
    _emit_steps(b, step.body, addresses, functions, hooks)
    b.store(b.add(b.load(counter, typ=I64), ir.Constant(I64, 1)), counter)
    b.branch(head)
    b.position_at_end(done)


def _flag(b: ir.IRBuilder, address: ir.Value) -> ir.Value:
    """A bool buffer's first element as an i1."""
    return b.icmp_unsigned("!=", b.load(address, typ=I8), ir.Constant(I8, 0))


def compile_program(program: Program, target: Target | str = "llvm", opt_level: int = 2) -> ObjectCode:
    """Render, verify, optimise and assemble `program` into an object file for `target`."""
    target = Target.parse(target)
    if not 0 <= opt_level <= 3:
        raise ValueError(f"opt_level must be 0..3, got {opt_level}")
    prepare()  # the helper process starts while the IR is rendered
    text = str(build_module(program, target))
    try:
        obj, optimized = assemble(text, target, opt_level)  # in a helper process (llvm_worker.py)
    except CodegenError as err:
        raise CodegenError(f"program {program.name}: {err}") from None
    _dump(program, text, optimized)
    return ObjectCode(obj, optimized, target)


def _dump(program: Program, text: str, optimized: str) -> None:
    """AIC_DEBUG>=3: print the optimised IR; AIC_DUMP_IR=dir: write the program's LLVM IR before and
    after optimisation, and under kernels/ each kernel's loop IR (.loop) and optimised LLVM IR (.ll)."""
    if int(os.environ.get("AIC_DEBUG", "0") or 0) >= 3:
        print(f"[aic.codegen] LLVM IR of {program.name}:\n{optimized}", file=sys.stderr)
    folder = os.environ.get("AIC_DUMP_IR")
    if not folder:
        return
    path = Path(folder)
    (path / "kernels").mkdir(parents=True, exist_ok=True)
    (path / f"{symbol(program.name)}.ll").write_text(text)
    (path / f"{symbol(program.name)}.opt.ll").write_text(optimized)
    functions = {fn.name: str(fn) for fn in llvm.parse_assembly(optimized).functions}
    for kernel in program.kernels:
        (path / "kernels" / f"{symbol(kernel.name)}.loop").write_text(kernel_text(kernel) + "\n")
        code = functions.get(f"aic_k_{symbol(kernel.name)}")
        if code is not None:
            (path / "kernels" / f"{symbol(kernel.name)}.ll").write_text(code)
