"""What a program's kernels are: per call in program order, the fused group it computes
(its nodes, and the fusions refused around it), its kernel and schedule records, FLOPs,
bytes moved and the buffers it reads and writes with their arena offsets.

"Bytes moved" is the size of every buffer the call is passed (each read or written once):
the least memory traffic the kernel can have.
"""

from __future__ import annotations

from typing import Any

from aic.ir.loop import KernelCall, Program, ProgramBuffer, kernel_calls
from aic.ir.schedule import schedule_text

from .storage import nbytes
from .summary import human_bytes, human_count


def _arg(b: ProgramBuffer) -> dict[str, Any]:
    where = {"arena": "offset", "weight": "offset"}.get(b.kind)
    out = {"name": b.name, "kind": b.kind, "dtype": b.dtype.name, "shape": list(b.shape), "bytes": nbytes(b)}
    return {**out, "offset": b.offset} if where else out


def call_report(call: KernelCall) -> dict[str, Any]:
    """One kernel call as JSON-ready data."""
    kernel = call.kernel
    return {
        "kernel": kernel.name,
        "group": call.attrs.get("group", ""),
        "nodes": call.attrs.get("nodes", []),
        "schedule": [str(r) for r in kernel.attrs.get("schedule", [])],
        "flops": call.attrs.get("flops"),
        "bytes": sum(nbytes(b) for b in call.args),
        "args": [_arg(b) for b in call.args],
        "fusion_refused": call.attrs.get("refusals", []),
    }


def kernels_report(program: Program) -> dict[str, Any]:
    """Every kernel call of `program` (control-flow bodies included) and the totals."""
    calls = [call_report(c) for c in kernel_calls(program.calls)]
    return {
        "kernel_calls": calls,
        "kernels": len(program.kernels),
        "arena_bytes": program.arena_bytes,
        "weight_bytes": program.attrs.get("weight_bytes", 0),
        "memory": program.attrs.get("memory_report", ""),
    }


def kernels_text(report: dict[str, Any]) -> str:
    """The report as text: one block per kernel call."""
    calls = report["kernel_calls"]
    lines = [f"{len(calls)} kernel calls of {report['kernels']} kernels; {report['memory']}"]
    for i, c in enumerate(calls):
        flops = "?" if c["flops"] is None else f"{human_count(c['flops'])}FLOP"
        lines.append(f"#{i} {c['kernel']}: {c['group']}  ({flops}, {human_bytes(c['bytes'])} moved)")
        if c["nodes"]:
            lines.append(f"    nodes: {', '.join(c['nodes'])}")
        lines.append(f"    schedule: {schedule_text(c['schedule'])}")
        args = [a["name"] + (f" @{a['offset']}" if "offset" in a else "") + f" ({a['kind']})" for a in c["args"]]
        lines.append(f"    buffers: {', '.join(args)}")
        lines += [f"    fusion refused: {why}" for why in c["fusion_refused"]]
    return "\n".join(lines)
