"""Reading ONNX protos: files, external weights, types and attributes."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from aic.ir import DType, TensorType
from onnx import external_data_helper, numpy_helper

from .errors import FrontendError
from .validate import validate_model

LOAD_COPIES = 2  # the bytes read from the file and the proto's copy of them, both alive while loading
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_proto(model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """A complete ModelProto with its external weights loaded, or a FrontendError."""
    if isinstance(model, onnx.ModelProto):
        check_structure(model, "model")
        return model
    path = Path(model)
    if not path.exists():
        raise FrontendError(f"{path}: no such model file")
    if not path.is_file():
        raise FrontendError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise FrontendError(f"{path}: empty file, not an ONNX model")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        raise FrontendError(
            f"{path}: not an ONNX model, or a truncated one ({path.stat().st_size} bytes do not parse "
            f"as an ONNX ModelProto: {type(err).__name__})"
        ) from None
    check_structure(proto, str(path))
    check_memory(proto, path)
    try:
        external_data_helper.load_external_data_for_model(proto, str(path.parent))
    except Exception as err:  # OSError, or onnx's checker rejecting a missing or odd file
        raise FrontendError(f"{path}: cannot read external weights: {err}") from None
    return proto


def available_memory() -> int | None:
    """The bytes this machine can still give a process (MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as info:
            fields = dict(line.split(":", 1) for line in info)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_memory(proto: onnx.ModelProto, path: Path) -> None:
    """Refuse, naming the largest tensors, external weights that do not fit the memory left: loading
    them would get the process killed (or protobuf would crash) rather than fail with a message."""
    sizes = []
    for tensor in _initializers(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            length = {e.key: e.value for e in tensor.external_data}.get("length", "")
            sizes.append((int(length) if length.isdigit() else 0, tensor.name))
    free = available_memory()
    total = sum(size for size, _ in sizes)
    if free is None or LOAD_COPIES * total <= free:
        return
    largest = ", ".join(f"'{name}' {size / 2**30:.2f} GiB" for size, name in sorted(sizes, reverse=True)[:3])
    raise FrontendError(
        f"{path}: its external weights take {total / 2**30:.1f} GiB; loading them needs {LOAD_COPIES}x that, more "
        f"than the {free / 2**30:.1f} GiB of memory available (largest: {largest})"
    )


def _initializers(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """The initializers of `graph` and of the subgraphs of its nodes (If, Loop, Scan bodies)."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else attr.graphs:
                yield from _initializers(sub)


def check_structure(proto: onnx.ModelProto, where: str) -> None:
    """Reject protos that parse but are not (complete) models, or that break ONNX's structural rules."""
    if not proto.HasField("graph") or proto.ir_version <= 0:
        raise FrontendError(f"{where}: not an ONNX model (no graph or no IR version)")
    if not proto.opset_import:
        raise FrontendError(f"{where}: incomplete ONNX model (no opset imports; is the file truncated?)")
    validate_model(proto, where)


def tensor_array(tensor: onnx.TensorProto, where: str) -> np.ndarray:
    """A TensorProto (an initializer or a tensor attribute) as a numpy array."""
    if external_data_helper.uses_external_data(tensor):
        raise FrontendError(
            f"{where}: tensor '{tensor.name}' keeps its data in an external file; load the model from its path"
        )
    code = tensor.data_type
    if code not in onnx.TensorProto.DataType.values() or code == onnx.TensorProto.UNDEFINED:
        raise FrontendError(f"{where}: tensor '{tensor.name}' has an unknown element type ({code})")
    kind = onnx.TensorProto.DataType.Name(code)
    if any(d < 0 for d in tensor.dims):
        raise FrontendError(f"{where}: tensor '{tensor.name}' ({kind}) has negative dims {list(tensor.dims)}")
    try:
        array = numpy_helper.to_array(tensor)
    except Exception as err:  # numpy's reshape or frombuffer on data that does not fit the dims
        raise FrontendError(
            f"{where}: tensor '{tensor.name}' ({kind}, dims {list(tensor.dims)}) cannot be read: its data does "
            f"not match its element type and dims ({err})"
        ) from None
    try:
        DType.from_numpy(array.dtype)
    except (TypeError, ValueError):
        raise FrontendError(f"{where}: tensor '{tensor.name}' of element type {kind} is not supported") from None
    return array


def symbol(name: str) -> str:
    """A dim_param as an aic symbol: identifiers stay, other text is kept as one opaque symbol."""
    name = "".join(name.split())
    return name if _IDENTIFIER.fullmatch(name) else f"({name})"


def value_type(info: onnx.ValueInfoProto, where: str) -> TensorType:
    """The tensor type of a graph input or output. Named dims (dim_param) become
    symbols; dims with neither value nor name get a symbol made from the value name."""
    kind = info.type.WhichOneof("value")
    if kind is None:
        raise FrontendError(f"{where} '{info.name}' has no type")
    if kind != "tensor_type":
        what = {"sequence_type": "sequence", "map_type": "map", "optional_type": "optional"}.get(kind, kind)
        raise FrontendError(f"{where} '{info.name}' is a {what}; aic supports tensors only")
    tensor = info.type.tensor_type
    dtype = element_type(tensor.elem_type, f"{where} '{info.name}'")
    if not tensor.HasField("shape"):
        raise FrontendError(f"{where} '{info.name}' has no shape (unknown rank); aic needs the rank of every input")
    base = re.sub(r"\W", "_", info.name).strip("_") or "v"
    dims: list[int | str] = []
    for i, d in enumerate(tensor.shape.dim):
        if d.HasField("dim_value"):
            if d.dim_value < 0:
                raise FrontendError(f"{where} '{info.name}' has dim {i} = {d.dim_value}; a dim is >= 0 or named")
            dims.append(d.dim_value)
        elif d.dim_param:
            dims.append(symbol(d.dim_param))
        else:
            dims.append(f"{base}_d{i}")
    return TensorType(dtype, tuple(dims))


def element_type(code: int, where: str) -> DType:
    try:
        return DType.from_onnx(code)
    except TypeError:
        name = onnx.TensorProto.DataType.Name(code) if code in onnx.TensorProto.DataType.values() else str(code)
        raise FrontendError(f"{where}: element type {name} is not supported") from None


def attribute_value(attr: onnx.AttributeProto, where: str) -> Any:
    """An attribute as a Python value; graph attributes stay GraphProtos (their
    converter converts them with the right input types)."""
    A = onnx.AttributeProto
    kind = attr.type
    if kind == A.GRAPH:
        return attr.g
    if kind == A.GRAPHS:
        return list(attr.graphs)
    if kind == A.TENSOR:
        return tensor_array(attr.t, f"{where} attribute '{attr.name}'")
    if kind == A.TENSORS:
        return [tensor_array(t, f"{where} attribute '{attr.name}'") for t in attr.tensors]
    if kind in (A.SPARSE_TENSOR, A.SPARSE_TENSORS, A.TYPE_PROTO, A.TYPE_PROTOS) or attr.ref_attr_name:
        raise FrontendError(f"{where}: attribute '{attr.name}' of kind {A.AttributeType.Name(kind)} is not supported")
    value = onnx.helper.get_attribute_value(attr)
    if kind == A.STRING:
        return value.decode()
    if kind == A.STRINGS:
        return [v.decode() for v in value]
    if kind in (A.INTS, A.FLOATS):
        return list(value)
    return value
