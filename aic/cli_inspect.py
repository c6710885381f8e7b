"""`aic inspect`: a model's summary, its graph IR, what each optimisation pass did, and its
kernels (fused groups, schedules, FLOPs, bytes moved, arena offsets; one kernel's loop IR or LLVM IR).

The compiler and the ONNX frontend are imported when the command runs, so that other
subcommands (`aic run`) do not load them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from aic.cli_compile import add_model_source, fail
from aic.tensorboard import add_tensorboard_argument


def add_inspect(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="show a model's inputs, outputs, op histogram, parameters and FLOPs",
        description="Read a model and summarise it: inputs and outputs with types, op histogram, node count, "
        "parameter count and bytes, and a FLOP estimate.",
    )
    add_model_source(p, ", or a .so")
    p.add_argument("--ir", action="store_true", help="print the graph IR text instead of the summary")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="SYMBOL=N",
        help="value of a symbolic dim for the FLOP count (repeatable; unbound symbols count as 1)",
    )
    p.add_argument(
        "-O",
        dest="opt_level",
        type=int,
        choices=range(4),
        default=None,
        help="show the graph optimised at this level (default: as read)",
    )
    p.add_argument("--passes", action="store_true", help="with -O: print what each pass did, and its time")
    p.add_argument(
        "--disable-pass", action="append", default=[], metavar="NAME", help="with -O: skip this pass (repeatable)"
    )
    p.add_argument(
        "--kernels",
        action="store_true",
        help="lower the model (at -O, default 2; symbolic dims bound by --dim) and list its kernel calls: fused "
        "groups and their nodes, schedule records, FLOPs, bytes moved, buffers with arena offsets, refused "
        "fusions (with --json: in the JSON, under \"kernels\"); with --target cuda also each CUDA kernel's rule, grid, "
        "block, shared memory and ptxas registers/spills/stack per architecture. On a .so: its kernel calls, and a "
        "cuda artifact's CUDA kernels with their ptxas figures",
    )
    p.add_argument("--loop-ir", metavar="KERNEL", help="print the loop IR of one kernel (as --kernels names it)")
    p.add_argument("--llvm", metavar="KERNEL", help="print the optimised LLVM IR of one kernel")
    p.add_argument("--target", default="llvm", help="the target to lower for (default: this CPU)")
    add_tensorboard_argument(p)
    p.set_defaults(run=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from aic.artifact_info import is_artifact, run_inspect_artifact

    if is_artifact(args.model):  # a compiled .so: its signature, target and metadata
        return run_inspect_artifact(args)
    if args.tensorboard:
        from aic.tensorboard import run_tensorboard

        return run_tensorboard(args)
    from aic.codegen.target import Target
    from aic.compiler.passes import optimize
    from aic.compiler.pipeline import pass_options
    from aic.compiler.summary import summarize
    from aic.frontend.load import model_source, read_model
    from aic.frontend.onnx import FrontendError
    from aic.ir import print_graph

    lowering = args.kernels or args.loop_ir or args.llvm
    if lowering and args.opt_level is None:
        args.opt_level = 2
    try:
        bindings = parse_bindings(args.dim)
        graph = read_model(model_source(args.model, args.signature, args.outputs))
        if args.opt_level is not None:
            graph, report = optimize(graph, args.opt_level, disable=args.disable_pass,
                                     options=pass_options(Target.parse(args.target)))
            if args.passes:
                print(report.format(verbose=True), file=sys.stderr if args.json else sys.stdout)
        elif args.passes or args.disable_pass:
            raise ValueError("--passes and --disable-pass need an optimisation level (-O1, -O2 or -O3)")
        kernels = _lower(graph, bindings, args) if lowering else None
    except (FrontendError, ValueError) as err:
        return fail(str(err))
    if args.ir:
        print(print_graph(graph))
        return 0
    if kernels is not None and not args.kernels:
        print(kernels)
        return 0
    summary = summarize(graph, bindings).to_json() if args.json else summarize(graph, bindings).text()
    if args.json:
        print(json.dumps({**summary, **({"kernels": kernels} if kernels is not None else {})}, indent=2))
    else:
        print(summary + ("\n\n" + kernels if kernels is not None else ""))  # type: ignore[operator]
    return 0


def _lower(graph, bindings: dict[str, int], args: argparse.Namespace):
    """The kernel report (JSON data with --json, else text), or one kernel's loop IR or LLVM IR."""
    from aic.codegen.target import Target
    from aic.compiler.kernel_report import kernels_report, kernels_text
    from aic.compiler.program import build_program
    from aic.compiler.shapes import bind_shapes
    from aic.ir.loop_printer import kernel_text

    symbols = {d for v in graph.inputs for d in v.type.shape if isinstance(d, str)}
    target = Target.parse(args.target)
    program = build_program(bind_shapes(graph, {k: v for k, v in bindings.items() if k in symbols}), target)
    if args.kernels:
        report = kernels_report(program)
        cuda = _cuda_kernels(program, target) if target.kind == "cuda" else None
        if args.json:
            return {**report, "cuda_kernels": cuda} if cuda is not None else report
        return kernels_text(report) + (f"\n\n{_cuda_text(cuda)}" if cuda is not None else "")
    name = args.loop_ir or args.llvm
    kernel = next((k for k in program.kernels if k.name == name), None)
    if kernel is None:
        raise ValueError(f"no kernel named {name!r}; the kernels are {', '.join(k.name for k in program.kernels)}")
    if args.loop_ir:
        return kernel_text(kernel)
    from aic.codegen.llvm import kernel_llvm

    return kernel_llvm(kernel, target, 2)


def _cuda_kernels(program, target) -> list[dict]:
    """The GPU launches of a cuda program, with ptxas's figures where NVRTC is installed."""
    from aic.codegen.cuda_nvrtc import available as nvrtc_available
    from aic.codegen.cuda_nvrtc import compile_cuda
    from aic.compiler.cuda_build import cuda_kernel_records, render_cuda

    _, source = render_cuda(program, target)
    nvrtc = compile_cuda(source.text, target.cuda_archs) if nvrtc_available() else None
    return cuda_kernel_records(source, nvrtc, target)


def _cuda_text(kernels: list[dict]) -> str:
    from aic.artifact_info import cuda_kernels_text

    missing = not any(k["ptxas"] for k in kernels)
    note = " (no ptxas figures: NVRTC is not installed, pip install aic[cuda])" if missing else ""
    return f"CUDA kernels{note}\n{cuda_kernels_text(kernels)}"


def parse_bindings(items: Sequence[str]) -> dict[str, int]:
    bindings = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise ValueError(f"--dim expects SYMBOL=N with N a non-negative integer, got '{item}'")
        bindings[name.strip()] = int(value)
    return bindings
