"""Tensor types: an element type and a shape of int or symbolic dims."""

from __future__ import annotations

from dataclasses import dataclass

from .dims import Dim, dim_prod, is_static
from .dtypes import DType


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: tuple[Dim, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))
        for d in self.shape:
            if not isinstance(d, (int, str)) or isinstance(d, bool):
                raise TypeError(f"dim {d!r} must be an int or a symbol name")
            if isinstance(d, int) and d < 0:
                raise ValueError(f"negative dim {d} in shape {list(self.shape)}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return is_static(self.shape)

    @property
    def numel(self) -> Dim:
        return dim_prod(self.shape)

    @property
    def static_shape(self) -> tuple[int, ...]:
        if not self.is_static:
            raise ValueError(f"type {self} has symbolic dims")
        return self.shape  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        return int(dim_prod(self.static_shape)) * self.dtype.itemsize

    def with_shape(self, shape: tuple[Dim, ...] | list[Dim]) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype.short}[{','.join(str(d) for d in self.shape)}]"
