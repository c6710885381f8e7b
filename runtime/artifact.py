"""Integrity of a model .so, checked before it is mapped.

`dlopen` trusts the file: a truncated library faults (SIGBUS) when a page past its end is
touched, and a modified one runs whatever it now holds. So `aic.load` first checks the ELF
structure (headers, every segment and section inside the file, a shared object for this
machine) and the seal aic appends when it links a model: a 48-byte record after the ELF
data, "AICSEAL1", the byte size of what precedes it (little-endian uint64) and its SHA-256.
The loader ignores bytes after the ELF data, so the sealed file is still an ordinary .so.
A file without a seal (linked by a cross toolchain from exported link inputs) gets the ELF
checks only, and must end where its ELF data ends.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import platform
import struct
from pathlib import Path

MAGIC = b"AICSEAL1"
SEAL = struct.Struct("<8sQ32s")
_MACHINES = {62: "x86_64", 183: "aarch64"}  # ELF e_machine -> platform.machine()
_HOST = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())


class ArtifactError(ValueError):
    """The file is not an intact model .so for this machine."""


def seal(path: str | os.PathLike) -> None:
    """Append the size-and-checksum record to a freshly linked .so."""
    with open(path, "r+b") as f:
        digest = hashlib.file_digest(f, "sha256").digest()
        size = f.seek(0, os.SEEK_END)
        f.write(SEAL.pack(MAGIC, size, digest))


def verify(path: str | os.PathLike) -> None:
    """Raise ArtifactError unless `path` is a structurally sound ELF shared object for this
    machine whose seal (when present) matches its contents."""
    path = Path(path)
    size = path.stat().st_size
    if size < 64:
        raise ArtifactError(f"{path}: {size} bytes, too small to be a shared object (truncated?)")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        end = _check_seal(path, data, size)
        elf_end = _check_elf(path, data, end)
        if end == size and elf_end < size:  # no seal, yet bytes after the ELF data: a damaged seal
            raise ArtifactError(f"{path}: damaged: {size - elf_end} unexpected bytes after the ELF data "
                                "(a truncated or altered seal)")  # fmt: skip


def _check_seal(path: Path, data: mmap.mmap, size: int) -> int:
    """The size of the ELF data: before the seal if there is one (checked), else the whole file."""
    if size < SEAL.size or data[size - SEAL.size : size - SEAL.size + len(MAGIC)] != MAGIC:
        return size
    _, recorded, digest = SEAL.unpack(data[size - SEAL.size :])
    if recorded != size - SEAL.size:
        raise ArtifactError(f"{path}: damaged: the seal records {recorded} bytes of model, the file holds "
                            f"{size - SEAL.size} (truncated or appended to)")  # fmt: skip
    with memoryview(data) as view, view[:recorded] as body:
        if hashlib.sha256(body).digest() != digest:
            raise ArtifactError(f"{path}: damaged: its SHA-256 does not match the seal aic wrote when it built "
                                "it (the file was modified); rebuild the model")  # fmt: skip
    return recorded


def _check_elf(path: Path, data: mmap.mmap, size: int) -> int:
    """Check the ELF structure within the first `size` bytes; return where its last part ends."""
    if data[:4] != b"\x7fELF":
        raise ArtifactError(f"{path}: not an ELF shared object (bad magic {bytes(data[:4])!r})")
    if data[4] != 2 or data[5] != 1:
        raise ArtifactError(f"{path}: not a 64-bit little-endian ELF file")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 54)
    if e_type != 3:
        raise ArtifactError(f"{path}: an ELF file of type {e_type}, not a shared object")
    machine = _MACHINES.get(e_machine, f"ELF machine {e_machine}")
    if machine != _HOST:
        raise ArtifactError(f"{path}: built for {machine}, this machine is {_HOST}")
    ends = [64]
    for what, offset, count, entry in (("program", phoff, phnum, phentsize), ("section", shoff, shnum, shentsize)):
        if entry < (56 if what == "program" else 64) and count:
            raise ArtifactError(f"{path}: damaged ELF {what} headers (entry size {entry})")
        if offset + count * entry > size:
            raise ArtifactError(f"{path}: truncated or damaged: its {what} headers end at byte "
                                f"{offset + count * entry}, the file has {size}")  # fmt: skip
        ends.append(offset + count * entry)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_filesz and p_offset + p_filesz > size:
            raise ArtifactError(f"{path}: truncated or damaged: segment {i} (type {p_type:#x}) ends at byte "
                                f"{p_offset + p_filesz}, the file has {size}")  # fmt: skip
        ends.append(p_offset + p_filesz)
    for i in range(shnum):
        _, sh_type, _, _, sh_offset, sh_size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        if sh_type != 8 and sh_size and sh_offset + sh_size > size:  # 8: SHT_NOBITS (.bss) has no file bytes
            raise ArtifactError(f"{path}: truncated or damaged: section {i} ends at byte {sh_offset + sh_size}, "
                                f"the file has {size}")  # fmt: skip
        if sh_type != 8:
            ends.append(sh_offset + sh_size)
    return max(ends)


def weights_path(artifact: str | os.PathLike) -> Path:
    """The side weights file of a model .so (runtime/package.py writes it): model.so -> model.weights."""
    path = Path(artifact)
    return path.with_name(path.name.removesuffix(".so") + ".weights")
