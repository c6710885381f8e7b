"""The back half of an LLVM compile (parse, verify, optimise, emit) in a helper process.

llvmlite leaks native memory on every optimisation: each PassBuilder allocates a
PassInstrumentationCallbacks that is never freed, and building and running the default
pipeline fills it (about 100 KiB per model). An LLVM assertion also aborts the process
that hits it. So a long-lived helper, `python -m aic.codegen.llvm_worker`, does that work
and is restarted after `RECYCLE_AFTER` compiles: a process that compiles many models stays
flat, and an LLVM crash becomes a CodegenError. Requests and replies are pickles with an
8-byte length prefix over the helper's stdin and stdout. If the helper cannot be started,
the work is done in this process.
"""

from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys
import threading
from typing import IO, Any

from .llvm_types import CodegenError
from .target import Target

RECYCLE_AFTER = 64  # compiles per helper process (its memory grows about 100 KiB per compile)
_LENGTH = struct.Struct("<Q")


def _send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class _Helper:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.owner = 0  # the process that started the helper (a forked child starts its own)
        self.used = 0
        self.unavailable = False  # the helper cannot run here (an embedded interpreter): work in-process
        self.lock = threading.Lock()

    def start(self) -> bool:
        """Make sure a usable helper is running (it starts in the background); False if none can be."""
        if self.unavailable:
            return False
        if self.owner != os.getpid():
            self.proc = None  # inherited through fork: the parent's helper, not ours to use
        if self.proc is None or self.proc.poll() is not None or self.used >= RECYCLE_AFTER:
            self.stop()
            try:
                cmd = [sys.executable, "-m", "aic.codegen.llvm_worker"]
                self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            except OSError:
                self.unavailable = True
                return False
            self.used, self.owner = 0, os.getpid()
        return True

    def assemble(self, text: str, target: Target, opt_level: int) -> tuple[bytes, str]:
        with self.lock:
            if not self.start():
                return _assemble_here(text, target, opt_level)
            self.used += 1
            assert self.proc.stdin is not None and self.proc.stdout is not None
            try:
                _send(self.proc.stdin, (text, target, opt_level))
                reply = _receive(self.proc.stdout)
            except (OSError, EOFError):
                code = self.proc.wait()
                self.proc = None
                if code > 0 and self.used == 1:  # it exited before serving anything: it cannot start here
                    self.unavailable = True
                    return _assemble_here(text, target, opt_level)
                raise CodegenError(f"LLVM failed: its helper process ended with status {code} (see stderr)") from None
        if reply[0] == "error":
            raise CodegenError(reply[1])
        return reply[1], reply[2]

    def stop(self) -> None:
        if self.proc is not None and self.owner == os.getpid():
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # the helper exits at end of input
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


_HELPER = _Helper()
atexit.register(_HELPER.stop)


def prepare() -> None:
    """Start the helper now, so that it loads while the caller renders the IR."""
    with _HELPER.lock:
        _HELPER.start()


def assemble(text: str, target: Target, opt_level: int) -> tuple[bytes, str]:
    """The object code and the optimised IR of LLVM IR `text` (raises CodegenError)."""
    return _HELPER.assemble(text, target, opt_level)


def _assemble_here(text: str, target: Target, opt_level: int) -> tuple[bytes, str]:
    from .llvm_machine import assemble_in_process

    return assemble_in_process(text, target, opt_level)


def main() -> None:
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray output must not corrupt the replies
    while True:
        try:
            text, target, opt_level = _receive(requests)
        except EOFError:
            return
        try:
            reply: tuple[Any, ...] = ("ok", *_assemble_here(text, target, opt_level))
        except Exception as err:  # reported to the compiling process
            reply = ("error", str(err) if isinstance(err, CodegenError) else f"LLVM failed: {err!r}")
        _send(replies, reply)


if __name__ == "__main__":
    main()
