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


def run_inspect_artifact(args: Any) -> int:
    """`aic inspect model.so [--json]`."""
    import sys

    try:
        text = json.dumps(artifact_metadata(args.model), indent=2) if args.json else describe_artifact(args.model)
    except (OSError, ValueError) as err:
        print(f"aic: error: {err}", file=sys.stderr)
        return 1
    print(text)
    return 0
