"""The native side of a loaded model: dlopen/dlclose of its .so and the argument types of its C ABI (aic.h)."""

from __future__ import annotations

import _ctypes
import ctypes
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from .artifact import weights_path


class TensorInfoStruct(ctypes.Structure):  # aic_tensor_info of aic.h
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_char_p), ("rank", ctypes.c_int),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("nbytes", ctypes.c_size_t)]  # fmt: skip


_OPENED: dict[str, list[Any]] = {}  # path -> [(device, inode) of the file dlopen'ed under that path, open count]
_OPENED_LOCK = threading.Lock()


def open_library(path: Path) -> ctypes.CDLL:
    """dlopen `path`. dlopen returns the library already loaded under a name, so a model
    rebuilt at the same path while the old one is open is opened through a fresh name (a
    hard link, else a copy)."""
    real = str(path.resolve())
    st = os.stat(real)
    with _OPENED_LOCK:
        entry = _OPENED.get(real)
        if entry is None or entry[1] == 0:
            entry = _OPENED[real] = [(st.st_dev, st.st_ino), 0]
        if entry[0] == (st.st_dev, st.st_ino):
            lib = ctypes.CDLL(real)
            entry[1] += 1
            lib._aic_opened = real  # type: ignore[attr-defined]
            return lib
    with tempfile.TemporaryDirectory(prefix="aic-load-") as folder:
        alias = Path(folder) / path.name
        for source, target in [(real, alias), (weights_path(real), weights_path(alias))]:
            if target == alias or os.path.isfile(source):  # a side weights file travels with its .so
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)
        return ctypes.CDLL(str(alias))  # the mappings outlive the files


def is_onnx_file(path: Path) -> bool:
    """An ONNX file (by name, or a protobuf rather than an ELF header)."""
    if path.suffix.lower() == ".onnx":
        return True
    with open(path, "rb") as f:
        head = f.read(4)
    return head != b"\x7fELF" and head[:1] == b"\x08"  # ModelProto starts with field 1 (ir_version), varint


def close_library(lib: ctypes.CDLL) -> None:
    """dlclose: unmap the model's code and data once no Module uses them."""
    real = getattr(lib, "_aic_opened", None)
    if real is not None:
        with _OPENED_LOCK:
            _OPENED[real][1] -= 1
    _ctypes.dlclose(lib._handle)


def bind_abi(lib: ctypes.CDLL) -> None:
    """Result and argument types of the C ABI functions."""
    lib.aic_signature.restype = ctypes.c_char_p
    lib.aic_abi_version.restype = ctypes.c_int
    lib.aic_num_inputs.restype = ctypes.c_int
    lib.aic_num_outputs.restype = ctypes.c_int
    for table in (lib.aic_input_info, lib.aic_output_info):
        table.restype = ctypes.POINTER(TensorInfoStruct)
        table.argtypes = [ctypes.c_int]
    lib.aic_create.restype = ctypes.c_void_p
    lib.aic_create.argtypes = [ctypes.c_int]
    lib.aic_num_threads.restype = ctypes.c_int
    lib.aic_num_threads.argtypes = [ctypes.c_void_p]
    lib.aic_run.restype = ctypes.c_int
    lib.aic_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    if hasattr(lib, "aic_run_shaped"):  # a model built by a runtime without it returns shapes separately
        lib.aic_run_shaped.restype = ctypes.c_int
        lib.aic_run_shaped.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    if hasattr(lib, "aic_run_dims"):
        lib.aic_run_dims.restype = ctypes.c_int
        lib.aic_run_dims.argtypes = [ctypes.c_void_p] * 5
    lib.aic_last_error.restype = ctypes.c_char_p
    lib.aic_destroy.restype = None
    lib.aic_destroy.argtypes = [ctypes.c_void_p]
    lib.aic_output_shape.restype = ctypes.c_int
    lib.aic_output_shape.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int64)]
