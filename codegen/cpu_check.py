"""Checking an LLVM CPU target's -mcpu and -mattr, and the features a named CPU has.

LLVM only warns about an unknown CPU or feature name (and ignores it), and aborts the
process on a feature without its + or - sign; aic refuses both with a clear error.
A CPU named without -mattr gets that CPU's features recorded, so the artifact's
load-time check refuses a machine that lacks them (rather than dying on an illegal
instruction). LLVM does not list a CPU's features through its C API, so for x86 they are
read from the C compiler aic links with (`cc -march=CPU -dM -E`: the __AVX2__-style
macros), keeping only names LLVM knows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache


@contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptor 2 inside the block."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


@cache
def check_cpu_target(triple: str, cpu: str, features: tuple[str, ...]) -> None:
    """ValueError unless LLVM knows `cpu` and every feature for `triple`."""
    import llvmlite.binding as llvm

    unsigned = [f for f in features if len(f) < 2 or f[0] not in "+-"]
    if unsigned:
        raise ValueError(f"-mattr: each feature needs a + or - sign (e.g. -mattr=+avx2,-avx512f), got {unsigned}")
    llvm.initialize_all_targets()
    try:
        target = llvm.Target.from_triple(triple)
    except RuntimeError as err:
        raise ValueError(f"-mtriple={triple}: this LLVM has no such target ({err})") from None
    with _stderr_captured() as complaints:
        target.create_target_machine(cpu=cpu, features=",".join(features))
    cpus = sorted({m.group(1) for line in complaints if (m := re.match(r"'(.*)' is not a recognized processor", line))})
    feats = sorted({m.group(1) for line in complaints if (m := re.match(r"'(.*)' is not a recognized feature", line))})
    if cpus:
        examples = "e.g. x86-64-v3, skylake-avx512, znver3" if triple.startswith("x86_64") else "e.g. generic"
        raise ValueError(f"-mcpu={cpus[0]} is not a CPU LLVM knows for {triple} ({examples})")
    if feats:
        raise ValueError(f"-mattr: {', '.join(feats)} {'is not a feature' if len(feats) == 1 else 'are not features'} "
                         f"LLVM knows for {triple}")  # fmt: skip


@cache
def cpu_features(cpu: str, known: frozenset[str]) -> tuple[str, ...]:
    """The features of x86 CPU `cpu` ('+avx2', ...) among the `known` LLVM feature names."""
    cc = os.environ.get("CC", "cc").split()
    proc = subprocess.run([*cc, f"-march={cpu}", "-dM", "-E", "-x", "c", os.devnull], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ValueError(
            f"-mcpu={cpu}: cannot tell which features this CPU has (the C compiler {cc[0]} does not know "
            f"-march={cpu}); give them with -mattr, e.g. -mattr=+avx2,+fma"
        )
    found = set()
    for name in re.findall(r"#define __([A-Z0-9_]+)__ 1\b", proc.stdout):
        lower = name.lower()
        for spelling in (lower.replace("_", "."), lower.replace("_", "-"), lower):
            if spelling in known:
                found.add(spelling)
    return tuple(sorted(f"+{f}" for f in found))
