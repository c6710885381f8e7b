"""aic: an ahead-of-time deep-learning compiler.

    import aic
    module = aic.compile("model.onnx", output="model.so")   # ONNX -> one native .so, loaded
    outputs = module.run(None, {"x": x})                     # like onnxruntime's InferenceSession.run
    module = aic.load("model.so")                            # later, without the compiler
    session = aic.InferenceSession("model.onnx")             # onnxruntime's API, compiled by aic

Importing aic and loading a model does not import the compiler or LLVM.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aic.runtime.module import ModelLoadError, Module, RunError, TensorInfo, load, load_scratch

from .session import (
    GraphOptimizationLevel,
    InferenceSession,
    IOBinding,
    ModelMetadata,
    SessionOptions,
    get_available_providers,
    get_device,
)
from .specializing import SpecializingModule

if TYPE_CHECKING:
    from aic.codegen.target import Target

__version__ = "0.1.0"

__all__ = [
    "FrontendError",
    "GraphOptimizationLevel",
    "IOBinding",
    "InferenceSession",
    "LoweringError",
    "ModelLoadError",
    "ModelMetadata",
    "Module",
    "RunError",
    "SessionOptions",
    "SizeError",
    "SpecializingModule",
    "TensorInfo",
    "__version__",
    "check",
    "compile",
    "get_available_providers",
    "get_device",
    "load",
]

_LAZY = {
    "FrontendError": "aic.frontend.onnx.errors",
    "LoweringError": "aic.compiler.lower.core",
    "SizeError": "aic.compiler.limits",
}


def __getattr__(name: str) -> Any:
    """Compile-time error types, imported on first use (importing aic imports no compiler)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aic' has no attribute {name!r}")


def compile(
    model: Any,
    target: str | Target = "llvm",
    opt_level: int = 2,
    output: str | os.PathLike | None = None,
    shapes: Mapping[str, int | Sequence[int] | str] | None = None,
    *,
    num_threads: int | None = None,
    schedules: Mapping[str, Sequence[Any]] | None = None,
    embed_weights: bool | None = None,
    cache: bool = True,
) -> Module | SpecializingModule:
    """Compile `model` (an ONNX path, ModelProto or serialised bytes; a TensorFlow SavedModel folder,
    frozen .pb or .keras path, or tf.Module / tf.function / Keras object; or an aic Graph) and load it.

    The .so is written to `output`; without one it stays in the compile cache (aic/cache.py:
    an unchanged model, target and options is a lookup), or with `cache=False` in a temporary
    file removed once loaded. `shapes` binds symbolic input dims ({"batch": 1}) or gives them ranges
    compiled once ({"batch": (1, 64), "seq": (1, 512, 128)}: min, max[, opt]), else a model with
    symbolic dims is compiled per input signature (a `SpecializingModule`). Weights
    above 64 MiB go to a side file next to the .so unless `embed_weights=True`. `schedules`
    replaces the schedules of the kernels it names ({"k3_matmul": [MicroKernel(4, 32), ...]},
    records of `aic.ir.schedule`; `aic inspect MODEL --kernels` lists the kernels); a compile
    with schedules is not cached.
    """
    from aic.cache import CompileCache, compile_key, describe_source, options_record, place_artifact
    from aic.codegen.target import Target, host_triple
    from aic.compiler.pipeline import compile_model
    from aic.compiler.shapes import bind_shapes, split_ranges
    from aic.compiler.specialize import is_static
    from aic.frontend.load import read_model
    from aic.ir import Graph

    resolved = Target.parse(target)
    if resolved.kind != "cuda" and resolved.triple != host_triple():
        raise ValueError(
            f"target {target} is not this machine's, so its model cannot be loaded here; cross-compile with "
            "aic.compiler.pipeline.compile_model or `aic compile`"
        )
    if isinstance(model, (bytes, bytearray, memoryview)):
        model = bytes(model)
    cacheable = isinstance(model, bytes) or type(model).__name__ == "ModelProto" or _is_file(model)
    store = CompileCache() if cache and cacheable and not schedules else None
    key = None
    if store is not None and store.enabled:
        key = compile_key(store.model_digest(model), resolved, options_record(opt_level, shapes, embed_weights))
        hit = store.lookup(key)
        if hit is not None:
            return load(place_artifact(hit, output) if output is not None else hit, num_threads)
    graph = model if isinstance(model, Graph) else read_model(_proto(model))
    fixed, ranges = split_ranges(graph, shapes)
    bound = bind_shapes(graph, fixed, allow_unbound=True)  # mistakes in `shapes` raise here
    ranged = {name: (r.lo, r.hi, r.opt) for name, r in ranges.items()}
    if not ranges and not is_static(bound):
        if output is not None:
            raise ValueError(
                "the model's shapes depend on its inputs, so no single .so can be written; bind its symbolic "
                "dims with shapes={...}, or compile without output= to specialise on each input signature"
            )
        compile_static = lambda g: compile_model(g, resolved, opt_level, schedules=schedules)  # noqa: E731
        return SpecializingModule(bound, compile_static, num_threads)

    def build(path: str | os.PathLike | None) -> Path:
        return compile_model(
            bound, resolved, opt_level, path, ranged, embed_weights=embed_weights, schedules=schedules
        )

    if key is not None:
        artifact = store.store(key, build, describe_source(model))
        return load(place_artifact(artifact, output) if output is not None else artifact, num_threads)
    path = build(output)
    return load(path, num_threads) if output is not None else load_scratch(path, num_threads)


def _is_file(model: Any) -> bool:
    """A model given as a path to one file (ONNX, frozen GraphDef, .keras), whose bytes key the cache."""
    return isinstance(model, (str, os.PathLike)) and os.path.isfile(model)


def _proto(model: Any) -> Any:
    """An ONNX path or ModelProto as is; serialised bytes parsed."""
    if isinstance(model, bytes):
        import onnx

        return onnx.load_model_from_string(model)
    return model


def check(model: Any, *args: Any, **kwargs: Any) -> Any:
    """Compare aic's outputs with onnxruntime's and the float64 reference's; see aic.checker.check."""
    from .checker import check as run_check

    return run_check(model, *args, **kwargs)
