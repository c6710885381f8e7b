"""Element types of tensors, with their numpy and ONNX encodings."""

from __future__ import annotations

import enum

import ml_dtypes
import numpy as np


class DType(enum.Enum):
    """A tensor element type. The value is the short name used in IR text."""

    float16 = "f16"
    bfloat16 = "bf16"
    float32 = "f32"
    float64 = "f64"
    int8 = "i8"
    int16 = "i16"
    int32 = "i32"
    int64 = "i64"
    uint8 = "u8"
    uint16 = "u16"
    uint32 = "u32"
    uint64 = "u64"
    bool = "bool"

    @property
    def short(self) -> str:
        return self.value

    @property
    def numpy(self) -> np.dtype:
        return _NUMPY[self]

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def is_float(self) -> bool:
        return self in (DType.float16, DType.bfloat16, DType.float32, DType.float64)

    @property
    def is_int(self) -> bool:
        return not self.is_float and self is not DType.bool

    @property
    def is_signed(self) -> bool:
        return self.is_float or self.name.startswith("int")

    @property
    def onnx(self) -> int:
        return _ONNX[self]

    @staticmethod
    def from_numpy(dtype: np.dtype | type) -> DType:
        dt = np.dtype(dtype)
        for member, npdt in _NUMPY.items():
            if npdt == dt:
                return member
        raise TypeError(f"numpy dtype {dt} has no aic equivalent")

    @staticmethod
    def from_onnx(code: int) -> DType:
        for member, c in _ONNX.items():
            if c == code:
                return member
        raise TypeError(f"ONNX element type {code} is not supported")

    @staticmethod
    def from_short(short: str) -> DType:
        return DType(short)

    def __repr__(self) -> str:
        return self.value


_NUMPY: dict[DType, np.dtype] = {
    DType.float16: np.dtype(np.float16),
    DType.bfloat16: np.dtype(ml_dtypes.bfloat16),
    DType.float32: np.dtype(np.float32),
    DType.float64: np.dtype(np.float64),
    DType.int8: np.dtype(np.int8),
    DType.int16: np.dtype(np.int16),
    DType.int32: np.dtype(np.int32),
    DType.int64: np.dtype(np.int64),
    DType.uint8: np.dtype(np.uint8),
    DType.uint16: np.dtype(np.uint16),
    DType.uint32: np.dtype(np.uint32),
    DType.uint64: np.dtype(np.uint64),
    DType.bool: np.dtype(np.bool_),
}

# TensorProto.DataType codes (kept here so `ir` does not import onnx).
_ONNX: dict[DType, int] = {
    DType.float32: 1,
    DType.uint8: 2,
    DType.int8: 3,
    DType.uint16: 4,
    DType.int16: 5,
    DType.int32: 6,
    DType.int64: 7,
    DType.bool: 9,
    DType.float16: 10,
    DType.float64: 11,
    DType.uint32: 12,
    DType.uint64: 13,
    DType.bfloat16: 16,
}

FLOAT_TYPES = frozenset(d for d in DType if d.is_float)
INT_TYPES = frozenset(d for d in DType if d.is_int)
SIGNED_INT_TYPES = frozenset(d for d in INT_TYPES if d.is_signed)
NUMERIC_TYPES = FLOAT_TYPES | INT_TYPES
ALL_TYPES = frozenset(DType)
