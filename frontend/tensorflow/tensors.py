"""TensorFlow attribute and tensor values as Python and numpy values."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
from aic.ir import DType

from .errors import TFFrontendError

# TensorFlow's DataType codes (types.proto) -> numpy.
_NUMPY: dict[int, np.dtype] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.float64),
    3: np.dtype(np.int32),
    4: np.dtype(np.uint8),
    5: np.dtype(np.int16),
    6: np.dtype(np.int8),
    9: np.dtype(np.int64),
    10: np.dtype(np.bool_),
    14: np.dtype(ml_dtypes.bfloat16),
    17: np.dtype(np.uint16),
    19: np.dtype(np.float16),
    22: np.dtype(np.uint32),
    23: np.dtype(np.uint64),
}
_NAMES = {7: "string", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant"}
_VALUE_FIELDS = ("float_val", "double_val", "int_val", "int64_val", "bool_val", "uint32_val", "uint64_val")


def numpy_dtype(code: int, where: str) -> np.dtype:
    if code not in _NUMPY:
        raise TFFrontendError(f"{where}: element type {_NAMES.get(code, f'#{code}')} is not supported")
    return _NUMPY[code]


def aic_dtype(code: int, where: str) -> DType:
    return DType.from_numpy(numpy_dtype(code, where))


def shape_of(shape: Any) -> list[int] | None:
    """A TensorShapeProto as dims (-1 unknown), or None for an unknown rank."""
    if shape.unknown_rank:
        return None
    return [d.size for d in shape.dim]


def tensor_array(tensor: Any, where: str) -> np.ndarray:
    """A TensorProto as a numpy array."""
    dtype = numpy_dtype(tensor.dtype, where)
    shape = [d.size for d in tensor.tensor_shape.dim]
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype=dtype).reshape(shape).copy()
    if dtype in (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)):
        values = np.asarray(tensor.half_val, dtype=np.uint16).view(dtype)
    else:
        values = next((np.asarray(getattr(tensor, f)) for f in _VALUE_FIELDS if len(getattr(tensor, f))), None)
        values = np.zeros(0, dtype) if values is None else values.astype(dtype)
    if values.size == count:
        return values.reshape(shape)
    if values.size == 0 or values.size > count:
        if count == 0:
            return np.zeros(shape, dtype)
        if values.size == 0:
            return np.zeros(shape, dtype)
        raise TFFrontendError(f"{where}: tensor holds {values.size} values for shape {shape}")
    # TensorFlow stores a tensor whose last values repeat only up to the first repeat
    return np.concatenate([values, np.full(count - values.size, values[-1], dtype)]).reshape(shape)


def attr_value(attr: Any, where: str) -> Any:
    """An AttrValue as a Python value: ints, floats, bytes, lists, shapes, arrays,
    DType codes (ints), or a function name for `func`."""
    kind = attr.WhichOneof("value")
    if kind is None:
        return None
    if kind == "list":
        lst = attr.list
        for name in ("s", "i", "f", "b", "type", "shape", "tensor", "func"):
            items = getattr(lst, name)
            if len(items):
                if name == "shape":
                    return [shape_of(s) for s in items]
                if name == "tensor":
                    return [tensor_array(t, where) for t in items]
                if name == "func":
                    return [f.name for f in items]
                return list(items)
        return []
    value = getattr(attr, kind)
    if kind == "shape":
        return shape_of(value)
    if kind == "tensor":
        return tensor_array(value, where)
    if kind == "func":
        return value.name
    return value
