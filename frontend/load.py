"""Reading any model aic accepts: a dispatch on the source's kind.

TensorFlow sources (a SavedModel folder, a .pb, .keras or .h5 file, a
`TensorFlowModel` with options, or a TensorFlow object) go to the TensorFlow
frontend; everything else (an .onnx path, a ModelProto) to the ONNX frontend.
"""

from __future__ import annotations

from typing import Any

from aic.ir import Graph


def read_model(model: Any) -> Graph:
    """An aic Graph from a model path or object (a Graph is returned as it is)."""
    if isinstance(model, Graph):
        return model
    from .tensorflow import is_tensorflow_source, load_tensorflow

    if is_tensorflow_source(model):
        return load_tensorflow(model)
    from .onnx import load_model

    return load_model(model)


def model_source(path: str, signature: str | None = None, outputs: str | None = None) -> Any:
    """What the command line reads: `path`, with the TensorFlow options where given
    (`signature` of a SavedModel, `outputs` 'a,b' of a frozen GraphDef)."""
    if signature is None and not outputs:
        return path
    from .tensorflow import TensorFlowModel, is_tensorflow_source

    if not is_tensorflow_source(path):
        raise ValueError(f"{path}: --signature and --outputs apply to TensorFlow models only")
    names = tuple(n.strip() for n in (outputs or "").split(",") if n.strip())
    return TensorFlowModel(path, signature or "serving_default", names)
