"""Link compiled kernels, the C runtime, the weights and the metadata into one .so.

The link inputs, all in a scratch folder:
- kernels.o: the object code from codegen (no weights inside).
- weights.bin: every weight at its planned byte offset.
- model.s (model_asm.py): `.incbin "weights.bin"` as `aic_weights`, and the signature
  tables with the metadata JSON as `aic_model_data`.
- the runtime object, compiled once from aic_runtime.c and cached (AIC_CACHE_DIR, else
  ~/.cache/aic).
One `cc -shared` assembles and links them; the .so depends only on libc, libm and
libpthread. The linked file is sealed with its size and SHA-256 (artifact.py). Set
AIC_DEBUG=4 to print the compiler commands.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aic.ir.loop import Program, ProgramBuffer

from .artifact import seal
from .model_asm import TensorSpec, model_assembly

if TYPE_CHECKING:
    from aic.codegen.target import Target

RUNTIME_DIR = Path(__file__).resolve().parent
RUNTIME_SOURCES = ("aic_runtime.c", "aic.h", "aic_internal.h")
C_FLAGS = ["-O2", "-fPIC", "-fvisibility=hidden", "-std=gnu11", "-Wall"]


class PackageError(RuntimeError):
    """The C compiler or linker failed."""


def compiler() -> list[str]:
    return shlex.split(os.environ.get("CC", "cc"))


def _run(cmd: Sequence[str], what: str, cwd: str | None = None) -> None:
    if int(os.environ.get("AIC_DEBUG", "0") or 0) >= 4:
        print("aic:", shlex.join(cmd), file=sys.stderr)
    proc = subprocess.run(list(cmd), capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise PackageError(f"{what} failed ({shlex.join(cmd)}):\n{proc.stderr.strip()}")


def cache_dir() -> Path:
    root = os.environ.get("AIC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aic"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def runtime_object() -> Path:
    """The runtime compiled for this machine, cached by source and compiler."""
    digest = hashlib.sha256(" ".join(compiler() + C_FLAGS).encode())
    for name in RUNTIME_SOURCES:
        digest.update((RUNTIME_DIR / name).read_bytes())
    path = cache_dir() / f"aic_runtime-{digest.hexdigest()[:16]}.o"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp.o")
        _run([*compiler(), *C_FLAGS, "-c", str(RUNTIME_DIR / "aic_runtime.c"), "-o", str(tmp)], "compiling the runtime")
        os.replace(tmp, path)  # atomic: concurrent compiles race benignly
    return path


def weight_blob(weights: Sequence[tuple[int, np.ndarray]]) -> bytes:
    """All weights at their byte offsets, zero padding between them."""
    size = max((offset + array.nbytes for offset, array in weights), default=0)
    blob = bytearray(size)
    for offset, array in weights:
        blob[offset : offset + array.nbytes] = np.ascontiguousarray(array).tobytes()
    return bytes(blob)


def write_link_inputs(
    folder: Path,
    object_code: bytes,
    metadata: dict[str, Any],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    weights: Sequence[tuple[int, np.ndarray]],
) -> list[Path]:
    """Write kernels.o, weights.bin and model.s into `folder`; return the link inputs."""
    (folder / "kernels.o").write_bytes(object_code)
    blob = folder / "weights.bin"
    blob.write_bytes(weight_blob(weights))
    (folder / "model.s").write_text(model_assembly(metadata, inputs, outputs, blob.name))
    return [folder / "model.s", folder / "kernels.o"]


def link_shared_object(
    output: str | os.PathLike,
    object_code: bytes,
    metadata: dict[str, Any],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    weights: Sequence[tuple[int, np.ndarray]],
) -> Path:
    """Build the model .so at `output` for this machine."""
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aic-link-") as tmp:
        sources = write_link_inputs(Path(tmp), object_code, metadata, inputs, outputs, weights)
        partial = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        cmd = [*compiler(), "-shared", *map(str, sources), str(runtime_object()), "-o", str(partial),
               "-lm", "-lpthread", "-Wl,-z,noexecstack", "-Wl,--as-needed"]  # fmt: skip
        _run(cmd, "linking the model", cwd=tmp)
        seal(partial)  # size and checksum, checked by aic.load before dlopen (artifact.py)
        os.replace(partial, output)  # a loaded .so being replaced keeps its old inode
    return output


def program_metadata(program: Program, target: Target, opt_level: int) -> dict[str, Any]:
    """What aic_signature() returns: the model's interface and how it was built."""
    from aic import __version__

    return {
        "format": 1,
        "name": program.name,
        "aic_version": __version__,
        "target": {"kind": target.kind, "triple": target.triple, "cpu": target.cpu, "features": list(target.features)},
        "opt_level": opt_level,
        "inputs": [tensor_spec(b).to_json() for b in program.inputs],
        "outputs": [tensor_spec(b).to_json() for b in program.outputs],
        "arena_bytes": int(program.arena_bytes),
        "weights_bytes": sum(int(np.asarray(w.data).nbytes) for w in program.weights),
        "error_slot": int(program.attrs.get("error_slot", -1)),  # where kernels report bad indices
        "error_sites": list(program.attrs.get("error_sites", [])),  # what each run-time check tests
    }


def tensor_spec(buf: ProgramBuffer) -> TensorSpec:
    dynamic = tuple((dim, symbol, offset) for dim, (symbol, offset) in sorted(buf.dynamic.items()))
    return TensorSpec(buf.name, buf.dtype.name, tuple(int(d) for d in buf.shape), dynamic)


def program_weights(program: Program) -> list[tuple[int, np.ndarray]]:
    """(offset, array) per weight, checked not to overlap."""
    placed = sorted(((w.offset, np.asarray(w.data, dtype=w.dtype.numpy), w.name) for w in program.weights),
                    key=lambda t: t[0])  # fmt: skip
    end, last = 0, ""
    for offset, array, name in placed:
        if offset < end:
            raise PackageError(f"weights {last} and {name} overlap in the weight blob (offset {offset} < {end})")
        end, last = offset + array.nbytes, name
    return [(offset, array) for offset, array, _ in placed]


def package_program(program: Program, object_code: bytes, target: Target, output: str | os.PathLike,
                    opt_level: int = 2) -> Path:  # fmt: skip
    """Link `program`'s object code into the model .so at `output`."""
    metadata = program_metadata(program, target, opt_level)
    inputs = [tensor_spec(b) for b in program.inputs]
    outputs = [tensor_spec(b) for b in program.outputs]
    return link_shared_object(output, object_code, metadata, inputs, outputs, program_weights(program))


def export_link_inputs(program: Program, object_code: bytes, target: Target, folder: str | os.PathLike,
                       opt_level: int = 2) -> Path:  # fmt: skip
    """For a cross target: write every link input, the runtime sources and build.sh into `folder`."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    metadata = program_metadata(program, target, opt_level)
    inputs = [tensor_spec(b) for b in program.inputs]
    outputs = [tensor_spec(b) for b in program.outputs]
    sources = write_link_inputs(path, object_code, metadata, inputs, outputs, program_weights(program))
    for name in RUNTIME_SOURCES:
        (path / name).write_bytes((RUNTIME_DIR / name).read_bytes())
    triple = target.triple.replace("-unknown", "")
    cc = f"${{CC:-{triple}-gcc}}"
    files = " ".join(p.name for p in [*sources, Path("aic_runtime.c")])
    flags = " ".join(C_FLAGS)
    script = [
        "#!/bin/sh",
        f"# Link the model for {target.triple} with a cross C compiler.",
        "set -e",
        'cd "$(dirname "$0")"',
        f"{cc} {flags} -shared -I. {files} -o model.so -lm -lpthread",
    ]
    (path / "build.sh").write_text("\n".join(script) + "\n")
    (path / "build.sh").chmod(0o755)
    return path
