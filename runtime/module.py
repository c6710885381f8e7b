"""Load a compiled model .so and run it, without the compiler or LLVM.

`Module.run(output_names, input_feed)` has the signature and return value of
onnxruntime's `InferenceSession.run`, and `get_inputs()` / `get_outputs()` describe
the tensors the way ORT's do (name, shape, type), so code can swap one for the
other. Inputs are checked (names, dtypes, shapes) before any native code runs.

An output whose size depends on the data (NonZero, Unique, ...) is described with a
symbol for each such dim; `run` allocates its upper bound, asks the model for the actual
shape after the run (`aic_output_shape`) and returns the trimmed array.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ABI_VERSION = 1

_ORT_TYPES = {"float32": "float", "float64": "double"}


class ModelLoadError(RuntimeError):
    """The file is not a loadable aic model for this machine."""


def _numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: like onnxruntime's NodeArg, plus the numpy dtype."""

    name: str
    shape: list[int]
    dtype: np.dtype

    @property
    def type(self) -> str:
        """The ONNX Runtime type string, e.g. 'tensor(float)'."""
        return f"tensor({_ORT_TYPES.get(self.dtype.name, self.dtype.name)})"

    def describe(self) -> str:
        return f"{self.name} ({self.dtype.name}{list(self.shape)})"


_OPENED: dict[str, tuple[int, int]] = {}  # path -> (device, inode) of the file first dlopen'ed under that path


def _open_library(path: Path) -> ctypes.CDLL:
    """dlopen `path`. dlopen returns the library already loaded under a name, so a model
    rebuilt at the same path is opened through a fresh name (a hard link, else a copy)."""
    real = str(path.resolve())
    st = os.stat(real)
    if _OPENED.setdefault(real, (st.st_dev, st.st_ino)) == (st.st_dev, st.st_ino):
        return ctypes.CDLL(real)
    with tempfile.TemporaryDirectory(prefix="aic-load-") as folder:
        alias = Path(folder) / path.name
        try:
            os.link(real, alias)
        except OSError:
            shutil.copyfile(real, alias)
        return ctypes.CDLL(str(alias))  # the mapping outlives the file


def _bind(lib: ctypes.CDLL) -> None:
    lib.aic_signature.restype = ctypes.c_char_p
    lib.aic_abi_version.restype = ctypes.c_int
    lib.aic_create.restype = ctypes.c_void_p
    lib.aic_create.argtypes = [ctypes.c_int]
    lib.aic_num_threads.restype = ctypes.c_int
    lib.aic_num_threads.argtypes = [ctypes.c_void_p]
    lib.aic_run.restype = ctypes.c_int
    lib.aic_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.aic_last_error.restype = ctypes.c_char_p
    lib.aic_destroy.restype = None
    lib.aic_destroy.argtypes = [ctypes.c_void_p]
    lib.aic_output_shape.restype = ctypes.c_int
    lib.aic_output_shape.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int64)]


class Signature:
    """The inputs and outputs of a model, described like onnxruntime's NodeArgs."""

    _inputs: list[TensorInfo]
    _outputs: list[TensorInfo]

    @property
    def inputs(self) -> list[TensorInfo]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorInfo]:
        return list(self._outputs)

    def get_inputs(self) -> list[TensorInfo]:
        return self.inputs

    def get_outputs(self) -> list[TensorInfo]:
        return self.outputs


class Module(Signature):
    """A loaded model. `num_threads` None means AIC_NUM_THREADS, else every available CPU.
    A cuda model runs on the GPU, or in the CPU emulator when `emulate` (None: AIC_CUDA_EMULATE=1)."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None, emulate: bool | None = None) -> None:
        self.path = Path(path)
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
        if not self.path.is_file():
            raise ModelLoadError(f"{self.path}: no such model file")
        try:
            self._lib = _open_library(self.path)
        except OSError as err:
            raise ModelLoadError(f"{self.path}: cannot be loaded on this machine: {err}") from None
        if not hasattr(self._lib, "aic_signature"):
            raise ModelLoadError(f"{self.path}: not an aic model (no aic_signature symbol)")
        _bind(self._lib)
        abi = self._lib.aic_abi_version()
        if abi != ABI_VERSION:
            raise ModelLoadError(f"{self.path}: model ABI version {abi}, this aic runtime reads version {ABI_VERSION}")
        self.metadata: dict[str, Any] = json.loads(self._lib.aic_signature().decode())
        self._inputs = [self._info(t) for t in self.metadata["inputs"]]
        self._outputs = [self._info(t) for t in self.metadata["outputs"]]
        self._input_names = {t.name for t in self._inputs}
        self._output_position = {t.name: i for i, t in enumerate(self._outputs)}
        self._output_layout = [(tuple(t["shape"]), _numpy_dtype(t["dtype"])) for t in self.metadata["outputs"]]
        self._dynamic = [bool(t.get("dynamic_dims")) for t in self.metadata["outputs"]]
        self.is_cuda = self.metadata.get("target", {}).get("kind") == "cuda"
        if self.is_cuda and (emulate if emulate is not None else os.environ.get("AIC_CUDA_EMULATE") == "1"):
            from .cuda_module import attach_emulator

            self._emulator = attach_emulator(self._lib)
        self._input_table = ctypes.c_void_p * max(1, len(self._inputs))
        self._output_table = ctypes.c_void_p * max(1, len(self._outputs))
        self._handle = self._lib.aic_create(num_threads or 0)
        if not self._handle:
            raise ModelLoadError(f"{self.path}: {self._lib.aic_last_error().decode()}")

    @staticmethod
    def _info(entry: dict[str, Any]) -> TensorInfo:
        shape: list[Any] = list(entry["shape"])
        for dim, symbol in entry.get("dynamic_dims", []):  # data-dependent: named, like ORT's symbolic dims
            shape[dim] = symbol
        return TensorInfo(entry["name"], shape, _numpy_dtype(entry["dtype"]))

    @property
    def num_threads(self) -> int:
        return self._lib.aic_num_threads(self._handle)

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]) -> list[np.ndarray]:
        """Run the model on `input_feed` (name -> array); return the outputs named in
        `output_names` (None: all), in that order."""
        if not self._handle:
            raise ValueError(f"{self.path}: the module is closed")
        wanted = self._select_outputs(output_names)
        if self.is_cuda and any(hasattr(v, "__cuda_array_interface__") for v in input_feed.values()):
            return self._run_device(wanted, input_feed)
        arrays = self._check_inputs(input_feed)
        results = [np.empty(shape, dtype=dtype) for shape, dtype in self._output_layout]
        ins = self._input_table(*[a.__array_interface__["data"][0] for a in arrays])
        outs = self._output_table(*[r.__array_interface__["data"][0] for r in results])
        status = self._lib.aic_run(self._handle, ins, outs)
        if status != 0:
            raise RuntimeError(f"{self.path}: {self._lib.aic_last_error().decode()}")
        return [self._trimmed(i, results[i]) if self._dynamic[i] else results[i] for i in wanted]

    def _run_device(self, wanted: list[int], feed: Mapping[str, Any]) -> list[Any]:
        """A cuda model fed GPU arrays: no copies; returns cupy arrays."""
        from .cuda_module import run_device

        missing = [t.describe() for t in self._inputs if t.name not in feed]
        if missing:
            raise ValueError(f"missing input(s): {', '.join(missing)}")
        arrays = [feed[t.name] for t in self._inputs]
        specs = [(tuple(t.shape), t.dtype) for t in self._inputs]
        outs = run_device(self._lib, self._handle, arrays, self._output_layout, [t.name for t in self._inputs], specs)
        return [outs[i] for i in wanted]

    def output_shape(self, index: int) -> tuple[int, ...]:
        """The actual shape of output `index` after the last run (its data-dependent dims included)."""
        rank = len(self._output_layout[index][0])
        dims = (ctypes.c_int64 * max(rank, 1))()
        if self._lib.aic_output_shape(self._handle, index, dims) != 0:
            raise RuntimeError(f"{self.path}: {self._lib.aic_last_error().decode()}")
        return tuple(dims[:rank])

    def _trimmed(self, index: int, result: np.ndarray) -> np.ndarray:
        """The run wrote the actual tensor C-contiguous at the start of the upper-bound buffer."""
        shape = self.output_shape(index)
        return result.reshape(-1)[: int(np.prod(shape, dtype=np.int64))].reshape(shape).copy()

    def _select_outputs(self, output_names: Sequence[str] | None) -> list[int]:
        if output_names is None:
            return list(range(len(self._outputs)))
        if isinstance(output_names, str):
            raise TypeError("output_names must be a list of names or None, not a string")
        unknown = [n for n in output_names if n not in self._output_position]
        if unknown:
            raise ValueError(f"unknown output(s) {unknown}; the model's outputs are {self._listing(self._outputs)}")
        return [self._output_position[n] for n in output_names]

    def _check_inputs(self, feed: Mapping[str, Any]) -> list[np.ndarray]:
        if not isinstance(feed, Mapping):
            raise TypeError(f"input_feed must be a mapping of input name -> array, got {type(feed).__name__}")
        unknown = [n for n in feed if n not in self._input_names]
        if unknown:
            raise ValueError(f"unknown input(s) {unknown}; the model's inputs are {self._listing(self._inputs)}")
        missing = [t.describe() for t in self._inputs if t.name not in feed]
        if missing:
            raise ValueError(f"missing input(s): {', '.join(missing)}")
        arrays = []
        for t in self._inputs:
            value = feed[t.name]
            array = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=t.dtype)
            if array.dtype != t.dtype:
                raise ValueError(f"input '{t.name}' has dtype {array.dtype.name}; the model expects {t.dtype.name}")
            if array.shape != tuple(t.shape):
                raise ValueError(
                    f"input '{t.name}' has shape {list(array.shape)}; the model expects {t.shape} ({t.dtype.name})"
                )
            arrays.append(np.ascontiguousarray(array))
        return arrays

    @staticmethod
    def _listing(infos: list[TensorInfo]) -> str:
        return ", ".join(t.describe() for t in infos) or "(none)"

    def close(self) -> None:
        """Release the native instance (its arena and threads)."""
        if getattr(self, "_handle", None):
            self._lib.aic_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> Module:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        ins, outs = self._listing(self._inputs), self._listing(self._outputs)
        return f"<aic.Module {self.path.name}: ({ins}) -> ({outs})>"


def load(path: str | os.PathLike, num_threads: int | None = None, emulate: bool | None = None) -> Module:
    """Load a model .so built by aic (`emulate`: run a cuda model in the CPU emulator)."""
    return Module(path, num_threads, emulate)
