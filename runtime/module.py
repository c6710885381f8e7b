"""Load a compiled model .so and run it, without the compiler or LLVM.

`Module.run(output_names, input_feed)` has the signature and return value of
onnxruntime's `InferenceSession.run`, and `get_inputs()` / `get_outputs()` describe
the tensors the way ORT's do (name, shape, type), so code can swap one for the
other. Inputs are checked (names, dtypes, shapes) before any native code runs.

A model compiled for ranges of sizes (`aic compile --shape batch=1..64`) describes its
symbolic dims by name, like onnxruntime; `run` takes any input sizes in range (checked, with
the symbols' agreement across inputs, before native code runs), allocates each output at its
actual shape and calls `aic_run_dims`.

An output whose size depends on the data (NonZero, Unique, ...) is described with a
symbol for each such dim; `run` allocates its upper bound, gets the actual shapes from the
same locked run (`aic_run_shaped`, so threads sharing a module get their own) and returns
the trimmed array.

Loading checks the file before mapping it (runtime/artifact.py), takes tensor sizes from
the model's C tables and cross-checks them with its JSON metadata. `close()` waits for runs
in progress, then frees the native instance and unmaps the library.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import ArtifactError, verify
from .dim_expr import eval_dim
from .library import bind_abi, close_library, is_onnx_file, open_library
from .profiling import KernelEvent, Profiler, bind_profiling

ABI_VERSION = 2

_ORT_TYPES = {"float32": "float", "float64": "double"}


class ModelLoadError(RuntimeError):
    """The file is not a loadable aic model for this machine (missing, damaged, or built for another)."""


class RunError(RuntimeError):
    """A run failed: a kernel met bad input data (an index out of range), or the runtime failed."""


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
    A cuda model runs on the GPU `device_id` (None: AIC_CUDA_DEVICE, else 0), or in the CPU emulator
    when `emulate` (None: AIC_CUDA_EMULATE=1)."""

    def __init__(
        self,
        path: str | os.PathLike,
        num_threads: int | None = None,
        emulate: bool | None = None,
        device_id: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._handle: int | None = None
        self._state = threading.Condition()  # guards _handle and _active: close() waits for runs
        self._active = 0
        self._profiler: Profiler | None = None
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
        if device_id is not None and (not isinstance(device_id, int) or isinstance(device_id, bool) or device_id < 0):
            raise ValueError(f"device_id must be a CUDA device number (an int >= 0) or None, got {device_id!r}")
        if not self.path.is_file():
            raise ModelLoadError(f"{self.path}: no such model file")
        if is_onnx_file(self.path):
            raise ModelLoadError(
                f"{self.path}: this is an ONNX model, not a compiled one; compile it with aic.compile({str(path)!r}) "
                "(or `aic compile`), or run it through aic.InferenceSession"
            )
        try:
            verify(self.path)
        except (ArtifactError, OSError, ValueError) as err:
            raise ModelLoadError(str(err) if isinstance(err, ArtifactError) else f"{self.path}: {err}") from None
        try:
            self._lib = open_library(self.path)
        except OSError as err:
            raise ModelLoadError(f"{self.path}: cannot be loaded on this machine: {err}") from None
        try:
            self._read_signature()
            if device_id is not None and not self.is_cuda:
                kind = self.metadata.get("target", {}).get("kind", "llvm")
                raise ModelLoadError(
                    f"{self.path}: device_id={device_id} selects a CUDA device, but this model is compiled for the "
                    f"CPU (target {kind!r}); compile it for cuda or leave device_id out"
                )
            if self.is_cuda and (emulate if emulate is not None else os.environ.get("AIC_CUDA_EMULATE") == "1"):
                from .cuda_module import attach_emulator

                self._emulator = attach_emulator(self._lib)
            if device_id is not None:
                self._lib.aic_cuda_create.restype = ctypes.c_void_p
                self._lib.aic_cuda_create.argtypes = [ctypes.c_int]
                self._handle = self._lib.aic_cuda_create(device_id)
            else:
                self._handle = self._lib.aic_create(num_threads or 0)
            if not self._handle:
                raise ModelLoadError(f"{self.path}: {self._lib.aic_last_error().decode()}")
        except BaseException:
            close_library(self._lib)
            raise

    def _read_signature(self) -> None:
        """The inputs and outputs from the model's C tables, cross-checked with its JSON metadata."""
        if not hasattr(self._lib, "aic_signature"):
            raise ModelLoadError(f"{self.path}: not an aic model (no aic_signature symbol)")
        self._lib.aic_abi_version.restype = ctypes.c_int
        abi = self._lib.aic_abi_version()
        if abi != ABI_VERSION:
            raise ModelLoadError(f"{self.path}: model ABI version {abi}, this aic runtime reads version {ABI_VERSION}; "
                                 "rebuild the model with this aic")  # fmt: skip
        bind_abi(self._lib)
        try:
            self.metadata: dict[str, Any] = json.loads(self._lib.aic_signature().decode())
            entries = {"inputs": list(self.metadata["inputs"]), "outputs": list(self.metadata["outputs"])}
        except (ValueError, KeyError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ModelLoadError(f"{self.path}: damaged metadata (aic_signature): {err}") from None
        tables = {"inputs": (self._lib.aic_num_inputs(), self._lib.aic_input_info),
                  "outputs": (self._lib.aic_num_outputs(), self._lib.aic_output_info)}  # fmt: skip
        infos: dict[str, list[tuple[TensorInfo, tuple[int, ...]]]] = {}
        for kind, (count, info_of) in tables.items():
            if len(entries[kind]) != count:
                raise ModelLoadError(f"{self.path}: damaged metadata: it lists {len(entries[kind])} {kind}, the "
                                     f"model's tables {count}")  # fmt: skip
            infos[kind] = [self._checked_info(kind, i, info_of(i), entries[kind][i]) for i in range(count)]
        self._inputs = [info for info, _ in infos["inputs"]]
        self._outputs = [info for info, _ in infos["outputs"]]
        self._input_names = {t.name for t in self._inputs}
        self._output_position = {t.name: i for i, t in enumerate(self._outputs)}
        self._output_layout = [(shape, info.dtype) for info, shape in infos["outputs"]]
        self._dynamic = [any(isinstance(d, str) for d in t.shape) for t in self._outputs]
        self._ranks = [len(t.shape) for t in self._outputs]
        self.is_cuda = self.metadata.get("target", {}).get("kind") == "cuda"
        self._read_ranges()
        self._input_table = ctypes.c_void_p * max(1, len(self._inputs))
        self._output_table = ctypes.c_void_p * max(1, len(self._outputs))
        self._dims_table = ctypes.c_int64 * max(1, sum(self._ranks))

    def _read_ranges(self) -> None:
        """The range symbols of a model compiled for ranges of sizes: inputs and outputs described
        with their symbolic dims (outputs allocated at their actual shapes)."""
        try:
            self.symbols: dict[str, tuple[int, int, int]] = {
                str(s["name"]): (int(s["min"]), int(s["max"]), int(s["opt"])) for s in self.metadata.get("symbols", [])
            }
            self._input_dims = [list(d) for d in self.metadata.get("input_dims", [])] if self.symbols else []
            self._output_dims = [list(d) for d in self.metadata.get("output_dims", [])] if self.symbols else []
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ModelLoadError(f"{self.path}: damaged metadata (symbols): {err!r}") from None
        if not self.symbols:
            return
        if len(self._input_dims) != len(self._inputs) or len(self._output_dims) != len(self._outputs):
            raise ModelLoadError(f"{self.path}: damaged metadata: input_dims/output_dims do not match the tensors")
        self._inputs = [TensorInfo(t.name, dims, t.dtype) for t, dims in zip(self._inputs, self._input_dims)]
        ranged = [all(isinstance(d, int) or d in self.symbols or _is_expr(d, self.symbols) for d in dims)
                  for dims in self._output_dims]  # fmt: skip
        self._outputs = [TensorInfo(t.name, dims if r else t.shape, t.dtype)
                         for t, dims, r in zip(self._outputs, self._output_dims, ranged)]  # fmt: skip
        self._dynamic = [d and not r for d, r in zip(self._dynamic, ranged)]
        self._ranged = ranged

    def _symbol_values(self, arrays: list[np.ndarray]) -> dict[str, int]:
        """The symbols' sizes from the input shapes: each in its range, the same in every input."""
        values: dict[str, int] = {}
        where: dict[str, str] = {}
        for t, a in zip(self._inputs, arrays):
            for d, (want, got) in enumerate(zip(t.shape, a.shape)):
                if isinstance(want, int):
                    continue
                lo, hi, _ = self.symbols[want]
                if not lo <= got <= hi:
                    raise ValueError(f"input '{t.name}' dim {d} ('{want}') is {got}, outside the range {lo}..{hi} "
                                     f"the model was compiled for (shape {list(a.shape)}, expected {t.shape})")
                if want in values and values[want] != got:
                    raise ValueError(f"input '{t.name}' dim {d} ('{want}') is {got}, but {where[want]} gives "
                                     f"'{want}' = {values[want]}")
                values[want], where[want] = got, f"input '{t.name}' dim {d}"
        return values

    @staticmethod
    def _actual(dims: list[Any], values: dict[str, int]) -> tuple[int, ...]:
        return tuple(eval_dim(d, values.__getitem__, values) if isinstance(d, str) else d for d in dims)

    def _checked_info(self, kind: str, i: int, ptr: Any, entry: Any) -> tuple[TensorInfo, tuple[int, ...]]:
        """Tensor `i` as the C table describes it, and its buffer shape; a mismatch with the JSON
        entry is an error."""
        where = f"{self.path}: {kind[:-1]} {i}"
        if not ptr:
            raise ModelLoadError(f"{where}: missing from the model's tables")
        c = ptr.contents
        if not 0 <= c.rank <= 64 or (c.rank and not c.shape):
            raise ModelLoadError(f"{where}: damaged tables (rank {c.rank})")
        name, dtype_name = (c.name or b"").decode(errors="replace"), (c.dtype or b"").decode(errors="replace")
        shape = tuple(int(c.shape[d]) for d in range(c.rank))
        try:
            dtype = _numpy_dtype(dtype_name)
        except TypeError:
            raise ModelLoadError(f"{where} ('{name}'): unknown element type '{dtype_name}'") from None
        if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != c.nbytes:
            raise ModelLoadError(f"{where} ('{name}'): damaged tables: shape {list(shape)} of {dtype_name} "
                                 f"is not {c.nbytes} bytes")  # fmt: skip
        try:
            same = entry["name"] == name and entry["dtype"] == dtype_name and tuple(entry["shape"]) == shape
            dynamic = [(int(d), str(sym)) for d, sym in entry.get("dynamic_dims", [])]
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ModelLoadError(f"{where}: damaged metadata: {err!r}") from None
        if not same:
            raise ModelLoadError(f"{where}: the metadata says {entry.get('name')!r} {entry.get('dtype')}"
                                 f"{entry.get('shape')}, the model's tables '{name}' {dtype_name}{list(shape)}; "
                                 "the file was modified")  # fmt: skip
        if any(not 0 <= d < len(shape) for d, _ in dynamic):
            raise ModelLoadError(f"{where} ('{name}'): damaged metadata: dynamic dims {dynamic}")
        described: list[Any] = list(shape)
        for d, symbol in dynamic:  # data-dependent: named, like ORT's symbolic dims
            described[d] = symbol
        return TensorInfo(name, described, dtype), shape

    @property
    def num_threads(self) -> int:
        with self._using():
            return self._lib.aic_num_threads(self._handle)

    @contextmanager
    def _using(self) -> Iterator[None]:
        """Hold the native instance open for a call (close() waits for it)."""
        with self._state:
            if not self._handle:
                raise ValueError(f"{self.path}: the module is closed")
            self._active += 1
        try:
            yield
        finally:
            with self._state:
                self._active -= 1
                if self._active == 0:
                    self._state.notify_all()

    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        *,
        outputs: Mapping[str, np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """Run the model on `input_feed` (name -> array); return the outputs named in
        `output_names` (None: all), in that order. `outputs` (name -> array) are written in
        place instead of newly allocated (C-contiguous, writable, of the output's shape and dtype).
        Raises RunError when a kernel meets bad data (an index out of range)."""
        wanted = self._select_outputs(output_names)
        if self.is_cuda and any(hasattr(v, "__cuda_array_interface__") for v in input_feed.values()):
            return self._run_device(wanted, input_feed)
        arrays = self._check_inputs(input_feed)
        layout = self._output_layout
        if self.symbols:  # outputs at their actual shapes
            values = self._symbol_values(arrays)
            layout = [(self._actual(dims, values), dt) if r else (s, dt)
                      for dims, r, (s, dt) in zip(self._output_dims, self._ranged, layout)]  # fmt: skip
        given = self._check_outputs(outputs or {}, layout)
        results = [given.get(i) for i in range(len(self._outputs))]
        results = [np.empty(s, dtype=d) if r is None else r for r, (s, d) in zip(results, layout)]
        ins = self._input_table(*[a.__array_interface__["data"][0] for a in arrays])
        outs = self._output_table(*[r.__array_interface__["data"][0] for r in results])
        dims = self._dims_table()
        start = time.monotonic_ns() if self._profiler is not None else 0
        with self._using():
            if self.symbols:
                in_dims = (ctypes.c_int64 * max(1, sum(a.ndim for a in arrays)))(*[n for a in arrays for n in a.shape])
                status = self._lib.aic_run_dims(self._handle, in_dims, ins, outs, dims)
            elif hasattr(self._lib, "aic_run_shaped"):
                status = self._lib.aic_run_shaped(self._handle, ins, outs, dims)
            else:
                status = self._lib.aic_run(self._handle, ins, outs)
            if status != 0:
                raise RunError(f"{self.path}: {self._lib.aic_last_error().decode(errors='replace')}")
            if not hasattr(self._lib, "aic_run_shaped"):
                dims = self._dims_table(*[d for i in range(len(self._outputs)) for d in self.output_shape(i)])
        if self._profiler is not None:
            self._profiler.record(start, time.monotonic_ns())
        if any(self._dynamic):
            start = [sum(self._ranks[:i]) for i in range(len(self._ranks))]
            for i in wanted:
                if self._dynamic[i]:
                    results[i] = _trimmed(results[i], tuple(dims[start[i] : start[i] + self._ranks[i]]))
        return [results[i] for i in wanted]

    def enable_profiling(self, prefix: str = "aic_profile") -> None:
        """Time every kernel call of the following runs (like onnxruntime's enable_profiling);
        `end_profiling` writes them to `<prefix>_<date>.json` as a Chrome trace."""
        if not bind_profiling(self._lib):
            raise RuntimeError(f"{self.path}: this model was built without per-kernel profiling; recompile it")
        if self._profiler is None:
            self._profiler = Profiler(self._lib, self._handle, self.metadata, prefix)

    def end_profiling(self) -> str:
        """Stop profiling and write the trace; return its path ("" when profiling was off)."""
        profiler, self._profiler = self._profiler, None
        return profiler.end() if profiler is not None else ""

    @property
    def last_profile(self) -> list[KernelEvent]:
        """The kernel events of the last run while profiling (see `enable_profiling`)."""
        return self._profiler.runs[-1][2] if self._profiler is not None and self._profiler.runs else []

    def _run_device(self, wanted: list[int], feed: Mapping[str, Any]) -> list[Any]:
        """A cuda model fed GPU arrays: no copies; returns cupy arrays."""
        from .cuda_module import run_device

        missing = [t.describe() for t in self._inputs if t.name not in feed]
        if missing:
            raise ValueError(f"missing input(s): {', '.join(missing)}")
        arrays = [feed[t.name] for t in self._inputs]
        specs = [(tuple(t.shape), t.dtype) for t in self._inputs]
        layout, dims = self._output_layout, None
        if self.symbols:  # inputs and outputs at their actual shapes
            values = self._symbol_values(arrays)
            specs = [(self._actual(t.shape, values), t.dtype) for t in self._inputs]
            layout = [(self._actual(d, values), dt) if r else (s, dt)
                      for d, r, (s, dt) in zip(self._output_dims, self._ranged, layout)]  # fmt: skip
            dims = [n for shape, _ in specs for n in shape]
        names = [t.name for t in self._inputs]
        outs = run_device(self._lib, self._handle, arrays, layout, names, specs, dims)
        return [outs[i] for i in wanted]

    def output_shape(self, index: int) -> tuple[int, ...]:
        """The actual shape of output `index` after the last run on this module, by any thread
        (its data-dependent dims included; `run` returns each run's own)."""
        rank = len(self._output_layout[index][0])
        dims = (ctypes.c_int64 * max(rank, 1))()
        with self._using():
            if self._lib.aic_output_shape(self._handle, index, dims) != 0:
                raise RunError(f"{self.path}: {self._lib.aic_last_error().decode(errors='replace')}")
        return tuple(dims[:rank])

    def _select_outputs(self, output_names: Sequence[str] | None) -> list[int]:
        if output_names is None:
            return list(range(len(self._outputs)))
        if isinstance(output_names, str):
            raise TypeError("output_names must be a list of names or None, not a string")
        unknown = [n for n in output_names if n not in self._output_position]
        if unknown:
            raise ValueError(f"unknown output(s) {unknown}; the model's outputs are {self._listing(self._outputs)}")
        return [self._output_position[n] for n in output_names]

    def _check_outputs(
        self, outputs: Mapping[str, np.ndarray], layout: list[tuple[tuple[int, ...], np.dtype]]
    ) -> dict[int, np.ndarray]:
        """Caller-allocated outputs by index, checked against this run's output `layout`."""
        checked = {}
        for name, array in outputs.items():
            index = self._select_outputs([name])[0]
            shape, dtype = layout[index]
            if self._dynamic[index]:
                raise ValueError(f"output '{name}' has a data-dependent shape; it cannot be written in place")
            if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != shape:
                got = f"{array.dtype.name}{list(array.shape)}" if isinstance(array, np.ndarray) else type(array)
                raise ValueError(f"output '{name}' is {dtype.name}{list(shape)}; the buffer given is {got}")
            if not (array.flags.c_contiguous and array.flags.writeable):
                raise ValueError(f"the buffer for output '{name}' must be C-contiguous and writable")
            checked[index] = array
        return checked

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
            array = feed_array(t.name, value, t.dtype)
            if array.dtype != t.dtype:
                raise ValueError(f"input '{t.name}' has dtype {array.dtype.name}; the model expects {t.dtype.name}")
            if not _fits(array.shape, t.shape):
                raise ValueError(
                    f"input '{t.name}' has shape {list(array.shape)}; the model expects {t.shape} ({t.dtype.name})"
                )
            arrays.append(np.ascontiguousarray(array))
        return arrays

    @staticmethod
    def _listing(infos: list[TensorInfo]) -> str:
        return ", ".join(t.describe() for t in infos) or "(none)"

    def close(self) -> None:
        """Release the native instance (its arena and threads) once the runs in progress end,
        and unmap the library. Later calls raise ValueError."""
        state = getattr(self, "_state", None)
        if state is None:
            return
        with state:
            handle, self._handle = self._handle, None  # no new run starts
            while self._active:
                state.wait()
        if handle:
            self._lib.aic_destroy(handle)
            close_library(self._lib)

    def __enter__(self) -> Module:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        ins, outs = self._listing(getattr(self, "_inputs", [])), self._listing(getattr(self, "_outputs", []))
        return f"<aic.Module {self.path.name}: ({ins}) -> ({outs})>"


def _fits(shape: tuple[int, ...], dims: list[Any]) -> bool:
    """Whether an input of `shape` has the rank and static dims of `dims` (symbols: any size here)."""
    return len(shape) == len(dims) and all(not isinstance(d, int) or d == n for d, n in zip(dims, shape))


def _is_expr(d: Any, symbols: dict[str, Any]) -> bool:
    try:
        eval_dim(d, lambda _: 1, symbols)
    except ValueError:
        return False
    return True


def _trimmed(result: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The run wrote the actual tensor C-contiguous at the start of the upper-bound buffer."""
    return result.reshape(-1)[: int(np.prod(shape, dtype=np.int64))].reshape(shape).copy()


def feed_array(name: str, value: Any, dtype: np.dtype) -> np.ndarray:
    """An input feed as an array: lists and scalars become `dtype` (a ValueError naming
    the input when a value does not fit it), arrays in the other byte order are swapped."""
    if not isinstance(value, np.ndarray):
        try:
            return np.asarray(value, dtype=dtype)
        except (OverflowError, ValueError, TypeError) as err:
            raise ValueError(f"input '{name}' cannot be read as {dtype.name}: {err}") from None
    if value.dtype.byteorder not in "=|" and value.dtype.newbyteorder("=") == dtype:
        return value.astype(dtype)  # big-endian data on a little-endian machine, or the reverse
    return value


def load(
    path: str | os.PathLike, num_threads: int | None = None, emulate: bool | None = None, device_id: int | None = None
) -> Module:
    """Load a model .so built by aic (`emulate`: run a cuda model in the CPU emulator; `device_id`:
    the CUDA device a cuda model runs on, None for AIC_CUDA_DEVICE, else 0)."""
    return Module(path, num_threads, emulate, device_id)


def load_scratch(path: str | os.PathLike, num_threads: int | None = None) -> Module:
    """Load a .so that `compile_model` wrote into a temporary folder of its own (no `output`), then delete
    that folder with any side weights file: the loaded code and weights stay mapped."""
    module = Module(path, num_threads)
    shutil.rmtree(Path(path).parent)
    return module
