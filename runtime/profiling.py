"""Per-kernel timing of a loaded model, and its Chrome trace.

The runtime records a start and end timestamp around every kernel call while profiling is
on for a handle (`aic_profile_enable`); `Profiler` reads the last run's events after each
run and keeps them until `end_profiling` writes them out as a Chrome trace JSON (a list of
"X" events, as onnxruntime's profiler writes): one event per kernel call, category
"Kernel", plus one "model_run" event per run, category "Session". Perfetto and
chrome://tracing open it.
"""

from __future__ import annotations

import ctypes
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class _Event(ctypes.Structure):
    _fields_ = [("call", ctypes.c_int32), ("reserved", ctypes.c_int32), ("start_ns", ctypes.c_int64),
                ("end_ns", ctypes.c_int64)]  # fmt: skip


@dataclass(frozen=True)
class KernelEvent:
    """One kernel call of one run: `call` indexes the model's kernel_calls metadata."""

    call: int
    start_ns: int
    end_ns: int

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) * 1e-9


def bind_profiling(lib: ctypes.CDLL) -> bool:
    """Declare the profiling entry points; False for a model built without them."""
    if not hasattr(lib, "aic_profile_enable"):
        return False
    lib.aic_profile_enable.restype = ctypes.c_int
    lib.aic_profile_enable.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.aic_profile_events.restype = ctypes.c_int64
    lib.aic_profile_events.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(_Event))]
    return True


class Profiler:
    """Collects a module's kernel events run by run; writes them as a Chrome trace."""

    def __init__(self, lib: ctypes.CDLL, handle: int, metadata: dict[str, Any], prefix: str) -> None:
        self._lib, self._handle = lib, handle
        self.calls: list[dict[str, Any]] = metadata.get("kernel_calls") or []
        self.model = metadata.get("name", "model")
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        self.path = Path(f"{prefix}_{stamp}.json")
        self.runs: list[tuple[int, int, list[KernelEvent]]] = []  # (start_ns, end_ns, events) per run
        if lib.aic_profile_enable(handle, 1) != 0:
            raise RuntimeError(lib.aic_last_error().decode())

    def record(self, start_ns: int, end_ns: int) -> list[KernelEvent]:
        """Take the events of the run that just ended (between the two monotonic times)."""
        pointer = ctypes.POINTER(_Event)()
        count = self._lib.aic_profile_events(self._handle, ctypes.byref(pointer))
        events = [KernelEvent(e.call, e.start_ns, e.end_ns) for e in pointer[: max(count, 0)]]
        self.runs.append((start_ns, end_ns, events))
        return events

    def name(self, call: int) -> str:
        return self.calls[call]["group"] if 0 <= call < len(self.calls) else f"call {call}"

    def trace(self) -> list[dict[str, Any]]:
        """The Chrome trace events (timestamps in microseconds from the first run's start)."""
        if not self.runs:
            return []
        origin, pid = self.runs[0][0], os.getpid()
        out: list[dict[str, Any]] = []
        for n, (start, end, events) in enumerate(self.runs):
            out.append(_event("model_run", "Session", start, end, origin, pid, {"run": n, "model": self.model}))
            for e in events:
                info = self.calls[e.call] if 0 <= e.call < len(self.calls) else {}
                args = {"call": e.call, "run": n, **{k: info[k] for k in ("kernel", "flops", "bytes") if k in info}}
                out.append(_event(self.name(e.call), "Kernel", e.start_ns, e.end_ns, origin, pid, args))
        return out

    def end(self) -> str:
        """Stop profiling, write the trace file and return its path."""
        self._lib.aic_profile_enable(self._handle, 0)
        self.path.write_text("[\n" + ",\n".join(json.dumps(e) for e in self.trace()) + "\n]\n")
        return str(self.path)


def _event(name: str, cat: str, start: int, end: int, origin: int, pid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"cat": cat, "pid": pid, "tid": pid, "ph": "X", "name": name, "ts": (start - origin) / 1e3,
            "dur": (end - start) / 1e3, "args": args}  # fmt: skip
