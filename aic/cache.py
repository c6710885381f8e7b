"""The compile cache: `aic.compile` of an unchanged model is a lookup.

An artifact is keyed on the model's bytes (an ONNX file, its external data files, or a
serialised ModelProto), the resolved target (triple, CPU, features), the options that
change the code (opt level, shapes, weight placement) and the compiler itself (its
version and a digest of its sources, so an edited compiler never serves stale code).
Entries live in `AIC_CACHE_DIR/models/<key>/` (default `$XDG_CACHE_HOME/aic`, else
`~/.cache/aic`); the cache holds at most `AIC_CACHE_SIZE` bytes (default 2G; `0` turns
model caching off), evicting the least recently used entries (processes storing at the
same time may overshoot it until their next store). `aic cache info` and
`aic cache clear` show and empty it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import onnx

from aic.runtime.artifact import weights_path
from aic.runtime.package import cache_dir

DEFAULT_SIZE = 2 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_LAYERS = ("aic", "aic.ir", "aic.frontend", "aic.compiler", "aic.codegen", "aic.runtime")


def parse_size(text: str) -> int:
    """'500M', '2G', '1048576' -> bytes."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _UNITS and value[-1:] else ""
    number = value[: len(value) - len(unit)].strip()
    try:
        size = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"AIC_CACHE_SIZE={text!r} is not a size such as 2G, 500M or 1048576") from None
    if size < 0:
        raise ValueError(f"AIC_CACHE_SIZE={text!r} is negative")
    return int(size)


def size_limit() -> int:
    text = os.environ.get("AIC_CACHE_SIZE", "")
    return parse_size(text) if text.strip() else DEFAULT_SIZE


@cache
def compiler_digest() -> str:
    """A digest of aic's own sources (Python, C runtime): part of every key."""
    from aic import __version__

    digest = hashlib.sha256(__version__.encode())
    for package in _LAYERS:
        spec = importlib.util.find_spec(package)
        for root in spec.submodule_search_locations or [] if spec else []:
            for path in sorted(Path(root).rglob("*")):
                if path.suffix in (".py", ".c", ".h") and "__pycache__" not in path.parts:
                    digest.update(str(path.relative_to(root)).encode())
                    digest.update(path.read_bytes())
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _external_files(path: Path) -> set[str]:
    """The external data files an ONNX file names (read without loading them); none for a file
    that does not parse (the frontend then refuses it with a clear error)."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends: not a model, nothing external to hash
        return set()
    tensors = list(proto.graph.initializer)
    tensors += [a.t for n in proto.graph.node for a in n.attribute if a.HasField("t")]
    return {
        entry.value
        for t in tensors
        if t.data_location == onnx.TensorProto.EXTERNAL
        for entry in t.external_data
        if entry.key == "location"
    }


def compile_key(model_sha256: str, target: Any, options: Mapping[str, Any]) -> str:
    """The cache key of one compile: model, target (a resolved aic Target), options, compiler."""
    record = {
        "model": model_sha256,
        "target": [target.kind, target.triple, target.cpu, list(target.features)],
        "options": {k: options[k] for k in sorted(options)},
        "compiler": compiler_digest(),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=list).encode()).hexdigest()


_TOTALS: dict[Path, int] = {}  # per cache: its size as this process last knew it


@dataclass(frozen=True)
class CacheEntry:
    key: str
    folder: Path
    nbytes: int
    last_used: float
    source: str

    @property
    def artifact(self) -> Path:
        return self.folder / "model.so"


class CompileCache:
    """Compiled models under `root`/models, at most `max_bytes` in all (LRU)."""

    def __init__(self, root: str | os.PathLike | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir()
        self.models = self.root / "models"
        self.max_bytes = size_limit() if max_bytes is None else max_bytes
        self._external: dict[Path, list[str]] = {}

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def model_digest(self, model: str | os.PathLike | bytes | onnx.ModelProto) -> str:
        """sha256 of the model: its bytes, plus any external data files it names. A file's
        digest is remembered by its path, size, inode and times, so a big unchanged model is
        not read again."""
        if isinstance(model, onnx.ModelProto):
            return hashlib.sha256(model.SerializeToString()).hexdigest()
        if isinstance(model, bytes):
            return hashlib.sha256(model).hexdigest()
        path = Path(model).resolve()
        own = self._file_digest(path, with_external=True)
        if not self._external.get(path):
            return own  # as for the same bytes given in memory
        digest = hashlib.sha256(own.encode())
        for location in sorted(self._external[path]):
            digest.update(location.encode())
            digest.update(self._file_digest(path.parent / location, with_external=False).encode())
        return digest.hexdigest()

    def _file_digest(self, path: Path, with_external: bool) -> str:
        st = path.stat()
        stamp = f"{path}|{st.st_size}|{st.st_ino}|{st.st_mtime_ns}|{st.st_ctime_ns}"
        memo = self.root / "digests" / hashlib.sha256(stamp.encode()).hexdigest()[:32]
        try:
            record = json.loads(memo.read_text())
        except (OSError, ValueError):
            record = {"sha256": _sha256_file(path), "external": sorted(_external_files(path)) if with_external else []}
            memo.parent.mkdir(parents=True, exist_ok=True)
            partial = memo.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(record))
            os.replace(partial, memo)
        self._external[path] = record.get("external", [])
        return str(record["sha256"])

    def lookup(self, key: str) -> Path | None:
        """The cached artifact for `key` (marked as just used), or None."""
        folder = self.models / key
        artifact = folder / "model.so"
        if not artifact.is_file():
            return None
        try:
            os.utime(folder)  # the entry's mtime is its last use
        except OSError:
            return None
        return artifact

    def store(self, key: str, build: Callable[[Path], Path], source: str) -> Path:
        """Build an artifact with `build(path of model.so to write)` and keep it under `key`."""
        self.models.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.models))
        try:
            build(scratch / "model.so")
            nbytes = sum(p.stat().st_size for p in scratch.iterdir())
            (scratch / "entry.json").write_text(json.dumps({"source": source, "bytes": nbytes, "created": time.time()}))
            try:
                os.rename(scratch, self.models / key)
            except OSError:  # another process stored the same key first
                if not (self.models / key / "model.so").is_file():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        # The bound is checked by listing the cache once per process, then counting what this
        # process adds; another listing happens only when the count passes the bound.
        total = _TOTALS.get(self.models)
        total = sum(e.nbytes for e in self.entries()) if total is None else total + nbytes
        if total > self.max_bytes:
            self.evict(keep=key)
            total = sum(e.nbytes for e in self.entries())
        _TOTALS[self.models] = total
        return self.models / key / "model.so"

    def entries(self) -> list[CacheEntry]:
        """Every entry, least recently used first."""
        found = []
        for folder in self.models.glob("*/entry.json"):
            try:
                info = json.loads(folder.read_text())
                used = folder.parent.stat().st_mtime
            except (OSError, ValueError):
                continue
            found.append(CacheEntry(folder.parent.name, folder.parent, int(info.get("bytes", 0)), used,
                                    str(info.get("source", "?"))))  # fmt: skip
        return sorted(found, key=lambda e: e.last_used)

    def evict(self, keep: str = "") -> list[CacheEntry]:
        """Remove the least recently used entries until the cache fits its bound."""
        entries = self.entries()
        total = sum(e.nbytes for e in entries)
        removed = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.key == keep:
                continue
            shutil.rmtree(entry.folder, ignore_errors=True)
            total -= entry.nbytes
            removed.append(entry)
        return removed

    def clear(self) -> int:
        """Remove every cached model and runtime object; return the bytes freed."""
        freed = sum(e.nbytes for e in self.entries())
        _TOTALS.pop(self.models, None)
        shutil.rmtree(self.models, ignore_errors=True)
        shutil.rmtree(self.root / "digests", ignore_errors=True)
        for obj in self.root.glob("aic_*-*.o"):
            freed += obj.stat().st_size
            obj.unlink(missing_ok=True)
        return freed


def place_artifact(artifact: Path, output: str | os.PathLike) -> Path:
    """Copy a cached model.so (and its weights file, if any) to `output`."""
    target = Path(output).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    for source, dest in [(weights_path(artifact), weights_path(target)), (artifact, target)]:
        if source.is_file():
            partial = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            shutil.copyfile(source, partial)
            os.replace(partial, dest)
    return target


def describe_source(model: Any) -> str:
    if isinstance(model, (str, os.PathLike)):
        return str(Path(model).resolve())
    if isinstance(model, onnx.ModelProto):
        return f"ModelProto {model.graph.name!r}"
    return f"{len(model)} bytes"


def options_record(opt_level: int, shapes: Mapping[str, Any] | None, embed_weights: bool | None,
                   disable_passes: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    """The options that change the artifact, in a stable JSON form."""
    bound = {k: (list(v) if not isinstance(v, int) else v) for k, v in sorted((shapes or {}).items())}
    return {"opt_level": opt_level, "shapes": bound, "embed_weights": embed_weights,
            "disable_passes": sorted(disable_passes)}  # fmt: skip


# aic cache ------------------------------------------------------------------
