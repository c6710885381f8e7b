"""Checking an LLVM CPU target's -mcpu and -mattr, and the features a named CPU has.

LLVM only warns about an unknown CPU or feature name (and ignores it), and aborts the
process on a feature without its + or - sign; aic refuses both with a clear error.
A CPU named without -mattr gets that CPU's features recorded, so the artifact's
load-time check refuses a machine that lacks them (rather than dying on an illegal
instruction). LLVM's C API does not list a CPU's features, so they are asked of LLVM's
inliner, which refuses to inline code that needs a feature into a CPU without it.
"""

from __future__ import annotations

import os
import re
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
def cpu_features(triple: str, cpu: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """The features of `cpu` ('+avx2', ...) among the `known` LLVM feature names, as LLVM itself
    decides: a function compiled for `cpu` may inline one that needs feature f only if the CPU
    has f, so one tiny callee per feature is offered to the inliner and the inlined ones count."""
    import llvmlite.binding as llvm

    lines = []
    for i, feature in enumerate(known):
        lines += [
            f'define internal i32 @needs{i}(i32 %x) #{2 * i} {{\n  %y = add i32 %x, {i + 1}\n  ret i32 %y\n}}',
            f"define i32 @calls{i}(i32 %x) #{2 * i + 1} {{\n  %r = call i32 @needs{i}(i32 %x)\n  ret i32 %r\n}}",
            f'attributes #{2 * i} = {{ "target-features"="+{feature}" }}',
            f'attributes #{2 * i + 1} = {{ "target-cpu"="{cpu}" }}',
        ]
    module = llvm.parse_assembly("\n".join(lines))
    machine = llvm.Target.from_triple(triple).create_target_machine(cpu=cpu, opt=2)
    module.triple = machine.triple
    builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=2))
    builder.getModulePassManager().run(module, builder)
    callers = {f.name: str(f) for f in module.functions if f.name.startswith("calls")}
    return tuple(f"+{f}" for i, f in enumerate(known) if f"@needs{i}(" not in callers[f"calls{i}"])
