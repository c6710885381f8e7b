"""aic: an ahead-of-time deep-learning compiler.

    import aic
    module = aic.compile("model.onnx", output="model.so")   # ONNX -> one native .so, loaded
    outputs = module.run(None, {"x": x})                     # like onnxruntime's InferenceSession.run
    module = aic.load("model.so")                            # later, without the compiler

Importing aic and loading a model does not import the compiler or LLVM.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aic.runtime.module import ModelLoadError, Module, TensorInfo, load

from .specializing import SpecializingModule

if TYPE_CHECKING:
    from aic.codegen.target import Target

__version__ = "0.1.0"

__all__ = ["ModelLoadError", "Module", "SpecializingModule", "TensorInfo", "__version__", "compile", "load"]


def compile(
    model: Any,
    target: str | Target = "llvm",
    opt_level: int = 2,
    output: str | os.PathLike | None = None,
    shapes: Mapping[str, int | Sequence[int]] | None = None,
    *,
    num_threads: int | None = None,
) -> Module | SpecializingModule:
    """Compile `model` (an ONNX path or ModelProto, or an aic Graph) and load it.

    The .so is written to `output`; without one it goes to a temporary file that is
    removed once loaded. `shapes` binds symbolic input dims ({"batch": 1}).
    """
    from aic.codegen.target import Target, host_triple
    from aic.compiler.pipeline import compile_model
    from aic.compiler.shapes import bind_shapes
    from aic.compiler.specialize import is_static
    from aic.frontend.onnx import load_model
    from aic.ir import Graph

    parsed = Target.parse(target)
    if parsed.kind != "cuda" and parsed.triple != host_triple():
        raise ValueError(
            f"target {target} is not this machine's, so its model cannot be loaded here; cross-compile with "
            "aic.compiler.pipeline.compile_model or `aic compile`"
        )
    graph = model if isinstance(model, Graph) else load_model(model)
    try:
        static = is_static(bind_shapes(graph, shapes))
    except ValueError:  # a symbolic input dim left unbound
        static = False
    if not static:
        if output is not None:
            raise ValueError(
                "the model's shapes depend on its inputs, so no single .so can be written; bind its symbolic "
                "dims with shapes={...}, or compile without output= to specialise on each input signature"
            )
        return SpecializingModule(graph, lambda g: compile_model(g, target, opt_level), num_threads)
    path = compile_model(graph, target, opt_level, output, shapes)
    module = load(path, num_threads)
    if output is None:  # the loaded code stays mapped after the file is gone
        path.unlink()
        path.parent.rmdir()
    return module
