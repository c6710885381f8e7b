"""`aic inspect model.so`: what a compiled artifact is, read from the file.

The signature JSON that `aic_signature()` serves is stored as text in the .so, so it is
read without loading the library: this works for an artifact built for another CPU or
triple, and for one whose side weights file is missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aic.runtime.artifact import weights_path

_ELF = b"\x7fELF"
_MARKER = b'{"aic_version": '  # the signature JSON is written with sorted keys


def is_artifact(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == _ELF
    except OSError:
        return False


def artifact_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The signature JSON stored in a model .so; ValueError if it has none."""
    data = Path(path).read_bytes()
    start = data.find(_MARKER)
    while start >= 0:
        end = data.find(b"\0", start)
        try:
            return json.loads(data[start:end].decode())
        except (UnicodeDecodeError, ValueError):
            start = data.find(_MARKER, start + 1)
    raise ValueError(f"{path}: a shared object, but not one aic built (no signature inside)")


def describe_artifact(path: str | os.PathLike) -> str:
    """A readable summary: signature, target, build options, memory, weights."""
    meta = artifact_metadata(path)
    target = meta.get("target", {})
    lines = [
        f"artifact   {path} ({Path(path).stat().st_size / 1024:.0f} KiB)",
        f"model      {meta.get('name', '?')}, built by aic {meta.get('aic_version', '?')} "
        f"at -O{meta.get('opt_level', '?')}",
        f"target     {target.get('kind', '?')} {target.get('triple', '?')}, cpu {target.get('cpu', '?')}",
        f"features   {' '.join(f for f in target.get('features', []) if f.startswith('+')) or '(none recorded)'}",
    ]
    for s in meta.get("symbols", []):
        where = f"{s['min']}..{s['max']}, given at run time"
        lines.append(f"dim        {s['name']}: {where} (schedules chosen for {s['opt']})")
    for kind in ("inputs", "outputs"):
        ranged = meta.get(f"{kind[:-1]}_dims", [])
        for i, t in enumerate(meta.get(kind, [])):
            shape = list(ranged[i]) if i < len(ranged) else list(t["shape"])
            for dim, symbol in t.get("dynamic_dims", []):
                if not ranged:
                    shape[dim] = f"{symbol}<={shape[dim]}"
            lines.append(f"{kind[:-1]:<10} {t['name']}: {t['dtype']}{shape}")
    lines.append(f"arena      {meta.get('arena_bytes', 0) / 2**20:.2f} MiB of scratch memory per instance")
    if meta.get("arena_bytes_at"):  # planned for the largest sizes
        at = meta["arena_bytes_at"]
        peaks = ", ".join(f"{which} {at[which] / 2**10:.0f} KiB" for which in ("min", "opt", "max") if which in at)
        lines.append(f"           planned for the largest sizes; the peak needed at {peaks}")
    weights = meta.get("weights_bytes", 0) / 2**20
    side = weights_path(path)
    external = meta.get("weights_file", False)
    where = f"side file {side.name} ({'present' if side.is_file() else 'MISSING'})" if external else "embedded"
    lines.append(f"weights    {weights:.2f} MiB, {where}")
    return "\n".join(lines)


def cuda_kernels_text(kernels: list[dict[str, Any]]) -> str:
    """The CUDA kernels of a cuda artifact, one row each: schedule rule, grid, block, shared memory,
    and ptxas's figures per architecture (registers, spill stores/loads in bytes, stack bytes)."""
    archs = sorted({arch for k in kernels for arch in k.get("ptxas", {})})
    rows = [["kernel", "rule", "grid", "block", "smem B", *(f"{a} regs/spill/stack" for a in archs)]]
    spilling = []
    for k in kernels:
        figures = []
        for arch in archs:
            f = k.get("ptxas", {}).get(arch) or {}
            spills = f.get("spill_stores", 0) + f.get("spill_loads", 0)
            figures.append(f"{f.get('registers', '?')}/{spills}/{f.get('stack', '?')}" if f else "-")
            if spills:
                spilling.append(f"{k['name']} ({arch})")
        exprs = k.get("grid_expr") or [""] * len(k.get("grid", []))
        grid = "x".join("?" if e else str(d) for d, e in zip(k.get("grid", []), exprs, strict=True))
        block = "x".join(str(d) for d in k.get("block", []))
        rows.append([k["name"], k.get("rule", "?"), grid, block, str(k.get("smem_bytes", 0)), *figures])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    spills = f"register spills in {', '.join(spilling)}" if spilling else "no spills"
    lines.append(f"{len(kernels)} kernels; {spills}")
    if any(k.get("grid_expr") for k in kernels):
        lines.append("grid ?: computed from the run's sizes before each launch (the expressions: --json, grid_expr)")
    return "\n".join(lines)


def artifact_kernels_text(meta: dict[str, Any]) -> str:
    """`aic inspect model.so --kernels`: the kernel calls (group, FLOPs, bytes), and for cuda the kernels."""
    calls = meta.get("kernel_calls", [])
    lines = [f"{len(calls)} kernel calls"]
    for i, c in enumerate(calls):
        cost = f"{c['flops'] / 1e6:.3g} MFLOP, {c['bytes'] / 2**10:.1f} KiB moved"
        lines.append(f"#{i} {c['kernel']}: {c['group']}  ({cost})")
    if "cuda" in meta:
        cuda = meta["cuda"]
        lines += ["", f"CUDA kernels (NVRTC {cuda.get('nvrtc', '?')}, cubins for {', '.join(cuda.get('archs', []))}, "
                      f"PTX {', '.join(cuda.get('ptx', [])) or 'none'}; {cuda.get('launches', '?')} launches per run)",
                  cuda_kernels_text(cuda.get("kernels", []))]  # fmt: skip
    return "\n".join(lines)


def run_inspect_artifact(args: Any) -> int:
    """`aic inspect model.so [--kernels] [--json]`."""
    import sys

    try:
        meta = artifact_metadata(args.model)
        text = json.dumps(meta, indent=2) if args.json else describe_artifact(args.model)
        if args.kernels and not args.json:
            text += "\n\n" + artifact_kernels_text(meta)
    except (OSError, ValueError) as err:
        print(f"aic: error: {err}", file=sys.stderr)
        return 1
    print(text)
    return 0
