"""`aic.InferenceSession`: onnxruntime's session API over a model compiled by aic.

    import aic as ort                                   # was: import onnxruntime as ort
    sess = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    outputs = sess.run(None, {"x": x})

The model (an ONNX path or serialised bytes, or a compiled .so) is compiled on creation
through `aic.compile`, so the compile cache makes a second session of the same model
cheap. Session options map onto aic's: `intra_op_num_threads` is the thread count,
`graph_optimization_level` the -O level (disable: -O0, basic: -O1, extended: -O2, all:
-O3). `aic.SessionOptions` has the same fields; an onnxruntime `SessionOptions` is read
too. aic-only keywords: `concurrent_runs=N` gives the session N native instances (each
with its own arena and threads), so N threads calling `run` at once run in parallel
instead of one after another (a model compiled per input signature keeps one);
`shapes=` binds symbolic dims as in `aic.compile`. Profiling is refused for now.
"""

from __future__ import annotations

import os
import queue
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from aic.runtime.module import ModelLoadError, Module, TensorInfo, load
from aic.specializing import SpecializingModule

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
_TARGETS = {CUDA: "cuda", CPU: "llvm"}  # the aic target each provider runs on
_ELF = b"\x7fELF"


class GraphOptimizationLevel(IntEnum):
    """onnxruntime's levels, with their values."""

    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


_OPT_LEVEL = {0: 0, 1: 1, 2: 2, 3: 2, 99: 3}  # onnxruntime level -> aic -O level


@dataclass
class SessionOptions:
    """The onnxruntime SessionOptions fields aic reads."""

    intra_op_num_threads: int = 0  # 0: AIC_NUM_THREADS, else every available CPU
    inter_op_num_threads: int = 0  # accepted; aic runs a model's kernels in order
    graph_optimization_level: int = GraphOptimizationLevel.ORT_ENABLE_ALL
    enable_profiling: bool = False
    profile_file_prefix: str = "onnxruntime_profile_"
    log_severity_level: int = 2
    optimized_model_filepath: str = ""


@dataclass(frozen=True)
class ModelMetadata:
    """Like onnxruntime's ModelMetadata."""

    producer_name: str = ""
    graph_name: str = ""
    domain: str = ""
    description: str = ""
    graph_description: str = ""
    version: int = 0
    custom_metadata_map: dict[str, str] = field(default_factory=dict)


def get_available_providers() -> list[str]:
    """The execution providers aic implements (onnxruntime.get_available_providers); a CUDA model
    also needs a GPU and its driver when it loads (or AIC_CUDA_EMULATE=1)."""
    return [CUDA, CPU]


def get_device() -> str:
    return "CPU"


class InferenceSession:
    """A compiled model behind onnxruntime's InferenceSession API."""

    def __init__(
        self,
        path_or_bytes: str | os.PathLike | bytes,
        sess_options: Any = None,
        providers: Sequence[str | tuple[str, dict]] | None = None,
        provider_options: Sequence[dict] | None = None,
        *,
        concurrent_runs: int = 1,
        shapes: Mapping[str, int | Sequence[int]] | None = None,
    ) -> None:
        candidates = _choose_providers(providers, provider_options)
        options = _read_options(sess_options)
        if isinstance(concurrent_runs, bool) or not isinstance(concurrent_runs, int) or concurrent_runs < 1:
            raise ValueError(f"concurrent_runs must be a positive int, got {concurrent_runs!r}")
        self._source = path_or_bytes
        self._options = options
        threads = options.intra_op_num_threads or None
        self._scratch: tempfile.TemporaryDirectory | None = None
        first = self._open_first(candidates, path_or_bytes, options, threads, shapes, concurrent_runs > 1)
        self._model = first
        self._pool: queue.SimpleQueue[Module | SpecializingModule] = queue.SimpleQueue()
        self._pool.put(first)
        for _ in range(concurrent_runs - 1 if isinstance(first, Module) else 0):
            self._pool.put(load(first.path, threads))
        self._size = concurrent_runs if isinstance(first, Module) else 1
        if options.enable_profiling:  # per-kernel timing by the runtime, written by end_profiling
            if not isinstance(first, Module) or concurrent_runs > 1:
                raise ValueError("enable_profiling needs a model with static shapes and concurrent_runs=1")
            first.enable_profiling(options.profile_file_prefix)

    def _open_first(self, candidates: list[str], source: Any, options: SessionOptions, threads: int | None,
                    shapes: Any, keep_file: bool) -> Module | SpecializingModule:  # fmt: skip
        """The model on the first provider that loads: a CUDA model where no GPU or driver is
        found falls back to the next provider with a warning, as onnxruntime does."""
        if isinstance(source, (str, os.PathLike)) and _is_artifact(Path(source)):
            if shapes:
                raise ValueError("shapes= applies to an ONNX model; this .so was compiled with static shapes")
            module = load(source, threads)
            self._providers = [CUDA if module.is_cuda else CPU]
            return module
        for i, provider in enumerate(candidates):
            try:
                module = self._open(_TARGETS[provider], source, options, threads, shapes, keep_file)
            except ModelLoadError as err:
                if i + 1 == len(candidates):
                    raise
                warnings.warn(f"{provider} is not available ({err}); running on {candidates[i + 1]}", stacklevel=3)
                continue
            self._providers = [provider]
            return module
        raise AssertionError("no provider")  # candidates is never empty

    def _open(self, target: str, source: Any, options: SessionOptions, threads: int | None, shapes: Any,
              keep_file: bool) -> Module | SpecializingModule:  # fmt: skip
        """Compile the ONNX model for `target` (through the cache) and load it."""
        if not isinstance(source, (str, os.PathLike, bytes)):
            raise TypeError(f"path_or_bytes must be a path or bytes, got {type(source).__name__}")
        import aic
        from aic.cache import CompileCache

        level = _opt_level(options.graph_optimization_level)
        output = None
        if keep_file and not CompileCache().enabled:  # more instances are loaded from the file
            self._scratch = tempfile.TemporaryDirectory(prefix="aic-session-")
            output = Path(self._scratch.name) / "model.so"
        return aic.compile(source, target, opt_level=level, output=output, shapes=shapes, num_threads=threads)

    # onnxruntime's API ---------------------------------------------------------

    def get_inputs(self) -> list[TensorInfo]:
        return self._model.get_inputs()

    def get_outputs(self) -> list[TensorInfo]:
        return self._model.get_outputs()

    def get_overridable_initializers(self) -> list[TensorInfo]:
        return []  # weights are compiled in

    def get_providers(self) -> list[str]:
        return list(self._providers)

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return {name: {} for name in self._providers}

    def get_session_options(self) -> SessionOptions:
        return self._options

    def get_modelmeta(self) -> ModelMetadata:
        source = self._source
        if isinstance(source, (str, os.PathLike)) and _is_artifact(Path(source)):
            meta = self._model.metadata
            custom = {"aic_version": str(meta.get("aic_version", "")), "target": str(meta.get("target", ""))}
            return ModelMetadata(producer_name="aic", graph_name=str(meta.get("name", "")), custom_metadata_map=custom)
        import onnx

        if isinstance(source, bytes):
            proto = onnx.load_model_from_string(source)
        else:
            proto = onnx.load(str(source), load_external_data=False)
        return ModelMetadata(
            producer_name=proto.producer_name,
            graph_name=proto.graph.name,
            domain=proto.domain,
            description=proto.doc_string,
            graph_description=proto.graph.doc_string,
            version=proto.model_version,
            custom_metadata_map={p.key: p.value for p in proto.metadata_props},
        )

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any], run_options: Any = None
            ) -> list[np.ndarray]:  # fmt: skip
        """Run on `input_feed`; return the outputs named in `output_names` (None: all)."""
        with self._instance() as module:
            return module.run(output_names, input_feed)

    def end_profiling(self) -> str:
        """Stop profiling and write the Chrome trace of the kernel calls since it started, as
        onnxruntime's `end_profiling`; return its path ("" when profiling is off)."""
        return self._model.end_profiling() if isinstance(self._model, Module) else ""

    def io_binding(self) -> IOBinding:
        return IOBinding(self)

    def run_with_iobinding(self, iobinding: IOBinding, run_options: Any = None) -> None:
        """Run on the bound inputs; bound output buffers are written in place."""
        if iobinding.session is not self:
            raise ValueError("this IOBinding belongs to another session")
        names = [t.name for t in self.get_outputs()]
        wanted = [n for n in names if n in iobinding._outputs] or names
        buffers = {n: b for n, b in iobinding._outputs.items() if b is not None}
        with self._instance() as module:
            if isinstance(module, Module):
                results = module.run(wanted, iobinding._inputs, outputs=buffers)
            else:  # compiled per input signature: no fixed buffers to write into
                results = module.run(wanted, iobinding._inputs)
                for name, result in zip(wanted, results):
                    if name in buffers:
                        np.copyto(buffers[name], result)
        iobinding._results = [buffers.get(n, r) for n, r in zip(wanted, results)]

    @contextmanager
    def _instance(self) -> Iterator[Module | SpecializingModule]:
        """A free native instance; waits while all are running."""
        module = self._pool.get()
        try:
            yield module
        finally:
            self._pool.put(module)

    @property
    def concurrent_runs(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"<aic.InferenceSession {self._model!r}, providers={self._providers}>"


class IOBinding:
    """onnxruntime's IOBinding for CPU memory: bind inputs, and outputs to caller buffers."""

    def __init__(self, session: InferenceSession) -> None:
        self.session = session
        self._inputs: dict[str, np.ndarray] = {}
        self._outputs: dict[str, np.ndarray | None] = {}
        self._results: list[np.ndarray] = []

    def bind_cpu_input(self, name: str, arr_on_cpu: np.ndarray) -> None:
        self._inputs[name] = arr_on_cpu

    def bind_input(self, name: str, device_type: str, device_id: int, element_type: Any, shape: Sequence[int],
                   buffer_ptr: int) -> None:  # fmt: skip
        """Bind an input to raw CPU memory at `buffer_ptr` (not copied)."""
        self._inputs[name] = _wrap(device_type, element_type, shape, buffer_ptr, readonly=True)

    def bind_output(self, name: str, device_type: str = "cpu", device_id: int = 0, element_type: Any = None,
                    shape: Sequence[int] | None = None, buffer_ptr: int | None = None) -> None:  # fmt: skip
        """Bind an output to raw CPU memory at `buffer_ptr` (written in place), or to be allocated."""
        known = {t.name for t in self.session.get_outputs()}
        if name not in known:
            raise ValueError(f"unknown output '{name}'; the model's outputs are {sorted(known)}")
        if buffer_ptr is None:
            self._outputs[name] = None
            return
        if element_type is None or shape is None:
            raise ValueError(f"bind_output('{name}', buffer_ptr=...) needs element_type and shape")
        self._outputs[name] = _wrap(device_type, element_type, shape, buffer_ptr, readonly=False)

    def get_outputs(self) -> list[np.ndarray]:
        """The outputs of the last run_with_iobinding (the bound buffers where given)."""
        return list(self._results)

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        return [np.array(r) for r in self._results]

    def clear_binding_inputs(self) -> None:
        self._inputs.clear()

    def clear_binding_outputs(self) -> None:
        self._outputs.clear()

    def synchronize_inputs(self) -> None:
        """CPU memory needs no synchronisation."""

    def synchronize_outputs(self) -> None:
        """CPU memory needs no synchronisation."""


def _wrap(device_type: str, element_type: Any, shape: Sequence[int], pointer: int, readonly: bool) -> np.ndarray:
    if str(device_type).lower() != "cpu":
        raise ValueError(f"aic binds CPU memory only, not device_type={device_type!r}")
    dtype = np.dtype(element_type)
    count = int(np.prod(shape, dtype=np.int64))
    raw = (np.ctypeslib.ctypes.c_char * (count * dtype.itemsize)).from_address(pointer)
    array = np.frombuffer(raw, dtype=dtype, count=count).reshape(tuple(shape))
    array.flags.writeable = not readonly
    return array


def _is_artifact(path: Path) -> bool:
    if path.suffix == ".so":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == _ELF
    except OSError:
        return False


def _choose_providers(providers: Sequence[Any] | None, provider_options: Sequence[dict] | None) -> list[str]:
    """The providers to try, in the caller's order: CUDAExecutionProvider (aic's cuda target) and
    CPUExecutionProvider. Others are refused, or skipped with a warning when one of these is
    listed too (as onnxruntime falls back)."""
    if providers is None:
        return [CPU]
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"providers must be a non-empty list of provider names, got {providers!r}")
    if provider_options is not None and len(provider_options) != len(names):
        raise ValueError("provider_options must have one entry per provider")
    known = [n for n in names if n in _TARGETS]
    unknown = [n for n in names if n not in _TARGETS]
    if not known:
        raise ValueError(f"aic implements only {CUDA} and {CPU}; providers={names} (use providers=['{CPU}'])")
    if unknown:
        warnings.warn(f"aic implements only {CUDA} and {CPU}; skipping {unknown}", stacklevel=3)
    return known


def _read_options(options: Any) -> SessionOptions:
    """aic's SessionOptions from an aic or onnxruntime SessionOptions (or None)."""
    if options is None:
        return SessionOptions()
    read = SessionOptions()
    for name in vars(read):
        if hasattr(options, name):
            setattr(read, name, getattr(options, name))
    threads = read.intra_op_num_threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"intra_op_num_threads must be an int >= 0, got {threads!r}")
    _opt_level(read.graph_optimization_level)
    if read.optimized_model_filepath:
        raise ValueError("optimized_model_filepath: aic writes a compiled .so, not an optimised ONNX model")
    return read


def _opt_level(level: Any) -> int:
    value = int(level)
    if value not in _OPT_LEVEL:
        raise ValueError(f"graph_optimization_level {level!r} is not an onnxruntime GraphOptimizationLevel")
    return _OPT_LEVEL[value]
