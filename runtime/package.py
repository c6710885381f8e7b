"""Link compiled kernels, the C runtime, the weights and the metadata into one .so.

The link inputs, all in a scratch folder:
- kernels.o: the object code from codegen (no weights inside).
- weights.bin: every weight at its planned byte offset.
- model.s (model_asm.py): `.incbin "weights.bin"` as `aic_weights`, and the signature
  tables with the metadata JSON as `aic_model_data`.
- the runtime objects, compiled once from aic_runtime.c, aic_pool.c and aic_weights.c and cached
  (AIC_CACHE_DIR, else ~/.cache/aic).
One `cc -shared` assembles and links them; the .so depends only on libc, libm and
libpthread. The linked file is sealed with its size and SHA-256 (artifact.py). Set
AIC_DEBUG=4 to print the compiler commands.

Weights larger than EMBED_LIMIT go instead to a side file next to the .so
(`model.so` -> `model.weights`: the blob, then a trailer with its size and sha256),
which the runtime maps read-only when the .so is loaded and checks against the digest
recorded in the .so. Writing one file and linking a small .so is much faster than
assembling and linking the weights into it; `embed_weights=True` keeps one file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aic.ir.loop import Program, ProgramBuffer

from .artifact import seal, weights_path
from .model_asm import TensorSpec, model_assembly

if TYPE_CHECKING:
    from aic.codegen.target import Target

RUNTIME_DIR = Path(__file__).resolve().parent
RUNTIME_C = ("aic_runtime.c", "aic_pool.c", "aic_weights.c")
RUNTIME_SOURCES = (*RUNTIME_C, "aic.h", "aic_internal.h", "aic_pool.h", "aic_tables.h", "aic_kernel_error.h")
C_FLAGS = ["-O2", "-fPIC", "-fvisibility=hidden", "-std=gnu11", "-Wall"]
EMBED_LIMIT = 64 << 20  # weights above this many bytes go to a side file unless embedding is asked for
WEIGHTS_MAGIC = b"AICWGT01"
WEIGHTS_TRAILER = struct.Struct("<8sQ32s16x")  # magic, blob bytes, sha256 of the blob; aic_weights.c reads it
Step = Callable[[str], AbstractContextManager[None]]


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


def runtime_objects() -> list[Path]:
    """The runtime compiled for this machine, cached by source and compiler."""
    digest = hashlib.sha256(" ".join(compiler() + C_FLAGS).encode())
    for name in RUNTIME_SOURCES:
        digest.update((RUNTIME_DIR / name).read_bytes())
    paths = []
    for source in RUNTIME_C:
        path = cache_dir() / f"{Path(source).stem}-{digest.hexdigest()[:16]}.o"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp.o")
            _run([*compiler(), *C_FLAGS, "-c", str(RUNTIME_DIR / source), "-o", str(tmp)], "compiling the runtime")
            os.replace(tmp, path)  # atomic: concurrent compiles race benignly
        paths.append(path)
    return paths


def _blob_chunks(weights: Sequence[tuple[int, np.ndarray]]) -> Iterator[bytes | memoryview]:
    """All weights at their byte offsets, zero padding between them, as consecutive chunks."""
    end = 0
    for offset, array in weights:
        if offset > end:
            yield bytes(offset - end)
        data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        yield memoryview(data)
        end = offset + data.nbytes


def write_weights(path: Path, weights: Sequence[tuple[int, np.ndarray]], trailer: bool) -> tuple[int, bytes]:
    """Write the weight blob to `path` (with the side-file trailer if asked); return its size and sha256."""
    digest, size = hashlib.sha256(), 0
    with open(path, "wb") as f:
        for chunk in _blob_chunks(weights):
            f.write(chunk)
            digest.update(chunk)
            size += len(chunk) if isinstance(chunk, bytes) else chunk.nbytes
        if trailer:
            f.write(WEIGHTS_TRAILER.pack(WEIGHTS_MAGIC, size, digest.digest()))
    return size, digest.digest()


def weights_bytes(weights: Sequence[tuple[int, np.ndarray]]) -> int:
    return max((offset + array.nbytes for offset, array in weights), default=0)


def embeds(weights: Sequence[tuple[int, np.ndarray]], embed_weights: bool | None) -> bool:
    """Whether the weights go into the .so: as asked, else when at most EMBED_LIMIT bytes."""
    return weights_bytes(weights) <= EMBED_LIMIT if embed_weights is None else embed_weights


def write_link_inputs(
    folder: Path,
    object_code: bytes,
    metadata: dict[str, Any],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    weights: Sequence[tuple[int, np.ndarray]],
    side_file: Path | None = None,
    step: Step | None = None,
) -> list[Path]:
    """Write kernels.o, model.s and the weights (weights.bin in `folder`, or the side file)
    into `folder`; return the link inputs."""
    step = step or (lambda _: nullcontext())
    (folder / "kernels.o").write_bytes(object_code)
    where = "side file" if side_file else "embedded"
    with step(f"write the weights ({weights_bytes(weights) / 2**20:.1f} MiB, {where})"):
        blob = side_file or folder / "weights.bin"
        size, digest = write_weights(blob, weights, trailer=side_file is not None)
    weights_info = {"external": side_file is not None, "bytes": size, "sha256": digest}
    metadata = {**metadata, "weights_file": side_file is not None}  # aic inspect says where the weights are
    (folder / "model.s").write_text(model_assembly(metadata, inputs, outputs, blob.name, weights_info))
    return [folder / "model.s", folder / "kernels.o"]


def link_shared_object(
    output: str | os.PathLike,
    object_code: bytes,
    metadata: dict[str, Any],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    weights: Sequence[tuple[int, np.ndarray]],
    embed_weights: bool | None = None,
    step: Step | None = None,
    symbol_prefix: str | None = None,
) -> Path:
    """Build the model .so at `output` for this machine (and its side weights file when the
    weights are not embedded). `symbol_prefix` also exports every aic_* function as
    <prefix>_aic_*, so that several models link into one program."""
    step = step or (lambda _: nullcontext())
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    side = weights_path(output)
    with tempfile.TemporaryDirectory(prefix="aic-link-") as tmp:
        partial_side = None if embeds(weights, embed_weights) else side.with_name(f".{side.name}.{os.getpid()}.tmp")
        sources = write_link_inputs(Path(tmp), object_code, metadata, inputs, outputs, weights, partial_side, step)
        with step("link the model"):
            partial = output.with_name(f".{output.name}.{os.getpid()}.tmp")
            cmd = [*compiler(), "-shared", *map(str, sources), *map(str, runtime_objects()), "-o", str(partial),
                   "-Wl,-Bsymbolic", *prefix_aliases(symbol_prefix),
                   "-lm", "-lpthread", "-ldl", "-Wl,-z,noexecstack", "-Wl,--as-needed"]  # fmt: skip
            _run(cmd, "linking the model", cwd=tmp)
            seal(partial)  # size and checksum, checked by aic.load before dlopen (artifact.py)
            if partial_side is not None:
                os.replace(partial_side, side)
            os.replace(partial, output)  # a loaded .so being replaced keeps its old inode
    return output


def abi_functions() -> list[str]:
    """The functions aic.h declares."""
    return sorted(set(re.findall(r"\b(aic_\w+)\(", (RUNTIME_DIR / "aic.h").read_text())))


def prefix_aliases(prefix: str | None) -> list[str]:
    """Linker flags exporting each ABI function also as <prefix>_aic_* (an alias of the same code)."""
    if not prefix:
        return []
    if not prefix.isidentifier() or not prefix.isascii():
        raise ValueError(f"symbol prefix {prefix!r} must be a C identifier")
    return [f"-Wl,--defsym={prefix}_{name}={name}" for name in abi_functions()]


def program_metadata(program: Program, target: Target, opt_level: int) -> dict[str, Any]:
    """What aic_signature() returns: the model's interface and how it was built."""
    from aic import __version__

    keys = ("symbols", "input_dims", "output_dims", "dims_slot", "arena_bytes_at")
    ranged = {k: program.attrs[k] for k in keys if k in program.attrs}
    return {
        **ranged,  # sizes given at run time: the symbols' ranges, input and output dims, where kernels read them
        "format": 1,
        "name": program.name,
        "aic_version": __version__,
        "target": {"kind": target.kind, "triple": target.triple, "cpu": target.cpu, "features": list(target.features)},
        "opt_level": opt_level,
        "inputs": [tensor_spec(b).to_json() for b in program.inputs],
        "outputs": [tensor_spec(b).to_json() for b in program.outputs],
        "arena_bytes": int(program.arena_bytes),
        "weights_bytes": sum(int(np.asarray(w.data).nbytes) for w in program.weights),
        "kernel_calls": program.attrs.get("kernel_calls", []),  # what the profile's call numbers name
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
                    opt_level: int = 2, embed_weights: bool | None = None, step: Step | None = None,
                    symbol_prefix: str | None = None) -> Path:  # fmt: skip
    """Link `program`'s object code into the model .so at `output` (weights: see embeds())."""
    metadata = program_metadata(program, target, opt_level)
    inputs = [tensor_spec(b) for b in program.inputs]
    outputs = [tensor_spec(b) for b in program.outputs]
    weights = program_weights(program)
    return link_shared_object(output, object_code, metadata, inputs, outputs, weights, embed_weights, step,
                              symbol_prefix)  # fmt: skip


def export_link_inputs(program: Program, object_code: bytes, target: Target, folder: str | os.PathLike,
                       opt_level: int = 2, embed_weights: bool | None = None,
                       step: Step | None = None) -> Path:  # fmt: skip
    """For a cross target: write every link input, the runtime sources and build.sh into `folder`
    (the weights as model.weights beside model.so unless embedded)."""
    step = step or (lambda _: nullcontext())
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    metadata = program_metadata(program, target, opt_level)
    inputs = [tensor_spec(b) for b in program.inputs]
    outputs = [tensor_spec(b) for b in program.outputs]
    weights = program_weights(program)
    side = None if embeds(weights, embed_weights) else path / "model.weights"
    sources = write_link_inputs(path, object_code, metadata, inputs, outputs, weights, side, step)
    with step("write the runtime sources and build.sh"):
        _write_build_script(path, target, sources)
    return path


def _write_build_script(path: Path, target: Target, sources: list[Path]) -> None:
    for name in RUNTIME_SOURCES:
        (path / name).write_bytes((RUNTIME_DIR / name).read_bytes())
    triple = target.triple.replace("-unknown", "")
    cc = f"${{CC:-{triple}-gcc}}"
    files = " ".join(p.name for p in [*sources, *map(Path, RUNTIME_C)])
    flags = " ".join(C_FLAGS)
    script = [
        "#!/bin/sh",
        f"# Link the model for {target.triple} with a cross C compiler.",
        "set -e",
        'cd "$(dirname "$0")"',
        f"{cc} {flags} -shared -I. {files} -o model.so -Wl,-Bsymbolic -lm -lpthread -ldl",
    ]
    (path / "build.sh").write_text("\n".join(script) + "\n")
    (path / "build.sh").chmod(0o755)
