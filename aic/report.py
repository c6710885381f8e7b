"""`aic report`: one self-contained HTML file about a compiled model.

    aic report model.onnx -o report.html [--shape batch=1] [-O2] [--runs 20] [--no-check]

The page holds the graph before and after the passes (fused groups outlined), the pass log,
the kernel table with profile figures and a roofline against this machine's measured
peaks, the memory plan (arena slots over the kernel sequence, and the bytes alive at each
step) and the `aic check` result. Python gathers the figures into one JSON object embedded
in the page; the page's script (report_page.html, no external resources) draws the SVGs.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PAGE = Path(__file__).with_name("report_page.html")


def report_data(
    model: str | os.PathLike,
    opt_level: int = 2,
    shapes: Mapping[str, Any] | None = None,
    runs: int = 20,
    threads: int | None = None,
    run_check: bool = True,
) -> dict[str, Any]:
    """Compile `model` step by step, profile it, check it; return what the page shows."""
    from aic import __version__
    from aic.codegen.llvm import compile_program
    from aic.codegen.target import Target
    from aic.compiler.kernel_table import kernel_table
    from aic.compiler.passes import optimize
    from aic.compiler.pipeline import pass_options
    from aic.compiler.program import build_program
    from aic.compiler.shapes import bind_shapes
    from aic.frontend.load import read_model
    from aic.runtime.module import load
    from aic.runtime.package import package_program

    from .checker import check, random_inputs
    from .kernel_groups import fused_groups
    from .peak import measure_peak
    from .profile import profile_module

    target = Target.parse("llvm")
    start = time.perf_counter()
    graph = bind_shapes(read_model(model), shapes)
    optimized, passes = optimize(graph, opt_level, options=pass_options(target))
    program = build_program(optimized, target)
    records = kernel_table(program)
    program.attrs["kernel_calls"] = [r.to_json() for r in records]
    code = compile_program(program, target, opt_level)
    with tempfile.TemporaryDirectory(prefix="aic-report-") as folder:
        module = load(package_program(program, code.object, target, Path(folder) / "model.so", opt_level), threads)
    compile_seconds = time.perf_counter() - start
    profile = profile_module(module, random_inputs(graph), runs)
    timed = {k.call: k for k in profile.kernels}  # calls an If did not take have no time
    peak = measure_peak()
    return {
        "model": str(model),
        "aic_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "target": {"triple": target.triple, "cpu": target.cpu},
        "opt_level": opt_level,
        "compile_seconds": compile_seconds,
        "graphs": {"before": graph_json(graph), "after": graph_json(optimized, fused_groups(optimized))},
        "passes": passes_json(passes),
        "kernels": [kernel_json(i, r, timed.get(i)) for i, r in enumerate(records)],
        "profile": {"runs": profile.runs, "run_seconds": profile.run_seconds, "threads": profile.threads,
                    "kernel_run_seconds": profile.kernel_run_seconds, "outside_seconds": profile.outside_seconds},
        "peak": {"gflops": peak.gflops(profile.threads), "gbytes": peak.gbytes_per_s, "threads": profile.threads},
        "memory": memory_json(program),
        "check": check(model, opt_level=opt_level, shapes=shapes).to_json() if run_check else None,
    }


def kernel_json(call: int, record: Any, timed: Any) -> dict[str, Any]:
    figures = {"seconds": 0.0, "share": 0.0, "gflops": 0.0, "gbytes": 0.0, "calls_per_run": 0}
    if timed is not None:
        figures = {"seconds": timed.seconds, "share": timed.share, "gflops": timed.gflops, "gbytes": timed.gbytes,
                   "calls_per_run": timed.calls_per_run}  # fmt: skip
    return {**record.to_json(), "call": call, **figures}


def graph_json(graph: Any, groups: list[Any] | None = None) -> dict[str, Any]:
    """Nodes (graph inputs and outputs as nodes too), edges labelled with shapes, and groups."""
    nodes: list[dict[str, Any]] = []
    producer: dict[int, int] = {}
    edges: list[list[Any]] = []

    def add(name: str, op: str, values: list[Any]) -> int:
        types = [str(v.type) for v in values]
        nodes.append({"id": len(nodes), "name": name, "op": op, "types": types})
        return len(nodes) - 1

    for v in graph.inputs:
        producer[id(v)] = add(v.name, "Input", [v])
    index = {}
    for node in graph.nodes:
        own = index[id(node)] = add(node.name or node.op, node.op, node.outputs)
        weights = sum(1 for v in node.inputs if v is not None and v.is_const)
        nodes[own]["weights"] = weights
        for v in node.inputs:
            if v is not None and id(v) in producer:
                edges.append([producer[id(v)], own, str(v.type)])
        for v in node.outputs:
            producer[id(v)] = own
    for v in graph.outputs:
        out = add(v.name, "Output", [v])
        if id(v) in producer:
            edges.append([producer[id(v)], out, str(v.type)])
    result: dict[str, Any] = {"name": graph.name, "nodes": nodes, "edges": edges}
    if groups is not None:
        result["groups"] = [{"id": g.index, "label": g.label, "nodes": [index[id(n)] for n in g.nodes]} for g in groups]
    return result


def passes_json(report: Any) -> dict[str, Any]:
    return {
        "level": report.level,
        "nodes_before": report.nodes_before,
        "nodes_after": report.nodes_after,
        "seconds": report.seconds,
        "records": [
            {
                "name": r.name,
                "stage": r.stage,
                "round": r.round,
                "nodes_before": r.nodes_before,
                "nodes_after": r.nodes_after,
                "seconds": r.seconds,
                "changes": r.changes(),
                "changed": r.changed,
            }
            for r in report.records
        ],
        "warnings": list(report.warnings),
    }


def memory_json(program: Any) -> dict[str, Any]:
    """Every arena slot with its byte range and the kernel calls from its first to its last use."""
    from aic.ir.loop import RowView, kernel_calls

    spans: dict[int, list[Any]] = {}
    calls = list(kernel_calls(program.calls))
    for step, call in enumerate(calls):
        for buf in call.args:
            while isinstance(buf, RowView):
                buf = buf.base
            if buf.kind == "arena":
                span = spans.setdefault(id(buf), [buf, step, step])
                span[2] = step
    buffers = [
        {
            "name": b.name,
            "offset": int(b.offset),
            "bytes": int(b.dtype.itemsize * _numel(b.shape)),
            "first": f,
            "last": t,
        }
        for b, f, t in spans.values()
    ]
    return {"arena_bytes": int(program.arena_bytes), "steps": len(calls), "buffers": buffers,
            "weights_bytes": int(program.attrs.get("weight_bytes", 0))}  # fmt: skip


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def render(data: dict[str, Any]) -> str:
    """The page with `data` embedded."""
    payload = json.dumps(data, default=float).replace("</", "<\\/")
    title = html.escape(f"aic report: {Path(data['model']).name}")
    return PAGE.read_text().replace("{{TITLE}}", title).replace("{{DATA}}", payload)


def write_report(model: str | os.PathLike, output: str | os.PathLike, **options: Any) -> Path:
    path = Path(output)
    path.write_text(render(report_data(model, **options)))
    return path


# the `aic report` command --------------------------------------------------


def add_report(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="write one self-contained HTML report: graphs, passes, kernels, roofline, memory, check",
        description="Compile, profile and check MODEL and write one HTML file (no external resources) with the "
        "graph before and after the passes, the pass log, the kernel table and roofline, the memory plan and "
        "the `aic check` result.",
    )
    p.add_argument("model", help="an .onnx file")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default report.html)")
    p.add_argument("-O", dest="opt_level", type=int, choices=range(4), default=2, help="optimisation level")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=N", help="bind a symbolic dim; repeatable")
    p.add_argument("--runs", type=int, default=20, help="profiled runs (default 20)")
    p.add_argument("--threads", type=int, help="thread count (default: all available CPUs)")
    p.add_argument("--no-check", action="store_true", help="skip the comparison with onnxruntime")
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from aic.cli_compile import parse_shapes

    try:
        path = write_report(args.model, args.output, opt_level=args.opt_level, shapes=parse_shapes(args.shape),
                            runs=args.runs, threads=args.threads, run_check=not args.no_check)  # fmt: skip
    except (ValueError, RuntimeError, OSError) as err:
        print(f"aic: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0
