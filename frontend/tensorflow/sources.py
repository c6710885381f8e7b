"""Reading TensorFlow models into a frozen GraphDef with named inputs and outputs.

A frozen GraphDef (.pb) is parsed with the frontend's own messages, without
TensorFlow. A SavedModel folder, a Keras file (.keras, .h5) and in-memory
`tf.Module` / `tf.function` / Keras objects need TensorFlow (`aic[tf]`): their
function is traced, its variables frozen into constants (control flow kept as
StatelessIf/StatelessWhile) and its GraphDef read back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from .errors import TFFrontendError
from .protos import GraphDef

INSTALL_HINT = "pip install aic[tf]"


@dataclass(frozen=True)
class TensorFlowModel:
    """A TensorFlow model path with its reading options: the SavedModel signature,
    and the output nodes of a frozen GraphDef (default: those nothing reads)."""

    path: str | os.PathLike
    signature: str = "serving_default"
    outputs: tuple[str, ...] = ()


@dataclass
class Source:
    """A frozen graph with its inputs and outputs: (name in aic, tensor in the graph such as 'x:0')."""

    graph: Any  # a GraphDef of .protos
    inputs: list[tuple[str, str]] = field(default_factory=list)  # empty: the graph's Placeholders
    outputs: list[tuple[str, str]] = field(default_factory=list)  # empty: the unconsumed nodes
    name: str = "main"


def is_tensorflow_path(path: str | os.PathLike) -> bool:
    """Whether a path names a TensorFlow model: a SavedModel folder, a .pb, .keras or .h5 file."""
    p = Path(path)
    if p.is_dir():
        return (p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists()
    return p.suffix in (".pb", ".keras", ".h5")


def is_tensorflow_source(model: Any) -> bool:
    """Whether `model` is for the TensorFlow frontend: a TensorFlowModel, a TensorFlow path or object."""
    if isinstance(model, TensorFlowModel):
        return True
    if isinstance(model, (str, os.PathLike)):
        return is_tensorflow_path(model)
    return is_tensorflow_object(model)


def is_tensorflow_object(obj: Any) -> bool:
    """Whether `obj` is a TensorFlow object (without importing TensorFlow)."""
    roots = ("tensorflow", "keras", "tf_keras")
    return any((c.__module__ or "").split(".")[0] in roots for c in type(obj).__mro__)


def read_source(model: Any, signature: str = "serving_default", outputs: list[str] | None = None) -> Source:
    """A frozen graph from a path (SavedModel folder, .pb, .keras, .h5) or a TensorFlow object."""
    if isinstance(model, TensorFlowModel):
        return read_source(model.path, model.signature, list(model.outputs) or None)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise TFFrontendError(f"{path}: no such file or folder")
        if path.is_dir():
            if not is_tensorflow_path(path):
                raise TFFrontendError(f"{path}: a folder, but not a SavedModel (it has no saved_model.pb)")
            loaded, function = _saved_model_function(path, signature)
            source = _from_function(function, path.name)
            del loaded  # kept alive until frozen: the function reads its variables
            return source
        if path.suffix == ".pb":
            return read_graph_def(path, outputs)
        if path.suffix in (".keras", ".h5"):
            return _from_keras(_tensorflow().keras.models.load_model(path, compile=False), path.stem)
        raise TFFrontendError(f"{path}: not a TensorFlow model (expected a SavedModel folder, .pb, .keras or .h5)")
    return _from_object(model)


def read_graph_def(path: Path, outputs: list[str] | None = None) -> Source:
    """A frozen GraphDef file, read without TensorFlow."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TFFrontendError(f"{path}: cannot read: {err.strerror}") from None
    try:
        graph = GraphDef.FromString(data)
    except DecodeError:
        raise TFFrontendError(f"{path}: not a TensorFlow GraphDef (the protobuf does not parse)") from None
    if not graph.node or not all(n.op for n in graph.node):
        raise TFFrontendError(f"{path}: not a TensorFlow GraphDef (no nodes with ops)")
    if any(n.op in ("VarHandleOp", "VariableV2", "ReadVariableOp") for n in graph.node):
        raise TFFrontendError(f"{path}: the graph has variables; freeze it first (convert_variables_to_constants_v2)")
    chosen = [(name.split(":")[0], name if ":" in name else f"{name}:0") for name in outputs or []]
    return Source(graph, [], chosen, path.stem)


def _tensorflow() -> Any:
    try:
        import tensorflow as tf
    except ImportError:
        raise TFFrontendError(f"reading this TensorFlow model needs TensorFlow: {INSTALL_HINT}") from None
    return tf


def _saved_model_function(path: Path, signature: str) -> tuple[Any, Any]:
    tf = _tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as err:  # TF raises many kinds for a damaged SavedModel
        raise TFFrontendError(f"{path}: cannot load the SavedModel: {type(err).__name__}: {err}") from None
    if signature not in loaded.signatures:
        raise TFFrontendError(f"{path}: no signature '{signature}'; it has {sorted(loaded.signatures)}")
    return loaded, loaded.signatures[signature]


def _from_object(obj: Any) -> Source:
    tf = _tensorflow()
    name = getattr(obj, "name", None) or type(obj).__name__
    if isinstance(obj, tf.keras.Model) or type(obj).__module__.startswith("keras"):
        return _from_keras(obj, name)
    if isinstance(obj, tf.types.experimental.ConcreteFunction):
        return _from_function(obj, name)
    if isinstance(obj, tf.types.experimental.PolymorphicFunction):
        return _from_function(_concrete(obj, name), name)
    if isinstance(obj, tf.Module):
        signatures = getattr(obj, "signatures", None)
        if signatures and "serving_default" in signatures:
            return _from_function(signatures["serving_default"], name)
        call = type(obj).__dict__.get("__call__")
        if isinstance(call, tf.types.experimental.PolymorphicFunction):
            return _from_function(_concrete(obj.__call__, name), name)
        raise TFFrontendError(f"tf.Module '{name}' has no __call__ tf.function with an input_signature")
    kind = type(obj).__name__
    raise TFFrontendError(f"cannot compile a {kind}: expected a path, tf.Module, tf.function or Keras model")


def _concrete(fn: Any, name: str) -> Any:
    if fn.input_signature is None:
        raise TFFrontendError(f"tf.function '{name}' has no input_signature, so its input types are unknown")
    return fn.get_concrete_function()


def _from_keras(model: Any, name: str) -> Source:
    tf = _tensorflow()
    specs = [tf.TensorSpec(t.shape, t.dtype, name=_keras_name(t, i)) for i, t in enumerate(model.inputs)]
    single = len(specs) == 1

    def call(*args: Any) -> Any:
        return model(args[0] if single else list(args), training=False)

    concrete = tf.function(call).get_concrete_function(*specs)
    names = list(getattr(model, "output_names", None) or [])
    return _from_function(concrete, name, [s.name for s in specs], names)


def _keras_name(tensor: Any, index: int) -> str:
    name = getattr(tensor, "name", "") or f"input_{index}"
    return name.split(":")[0].replace("/", "_")


def _from_function(
    concrete: Any, name: str, input_names: list[str] | None = None, output_names: list[str] | None = None
) -> Source:
    """Freeze a concrete function; inputs and outputs take its signature's names."""
    tf = _tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    except Exception as err:
        raise TFFrontendError(f"cannot freeze '{name}': {type(err).__name__}: {err}") from None
    graph = GraphDef.FromString(frozen.graph.as_graph_def().SerializeToString())
    tensors = [t.name for t in frozen.inputs]
    if input_names is None or len(input_names) != len(tensors):
        input_names = [_input_name(concrete, t) for t in tensors]
    inputs = list(zip(input_names, tensors))
    flat = [t.name for t in frozen.outputs]
    structured = concrete.structured_outputs
    if isinstance(structured, dict):
        keys = sorted(structured)  # tf.nest flattens dicts by sorted key
    elif output_names and len(output_names) == len(flat):
        keys = output_names
    else:
        keys = ["output_0"] if len(flat) == 1 else [f"output_{i}" for i in range(len(flat))]
    del tf
    return Source(graph, inputs, list(zip(keys, flat)), name)


def _input_name(concrete: Any, tensor: str) -> str:
    """A signature's input key where the placeholder's name is that key, else the placeholder's name."""
    _, kwargs = concrete.structured_input_signature
    placeholder = tensor.split(":")[0]
    for key, spec in (kwargs or {}).items():
        if getattr(spec, "name", None) == placeholder:
            return key
    return placeholder
