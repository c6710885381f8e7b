"""Sliding-window geometry shared by convolution and pooling.

A `Window` holds a kernel's spatial extent with its strides, dilations and
padding (explicit `pads` or an `auto_pad` rule, and pooling's `ceil_mode`).
It gives output sizes for shape inference (symbolic input dims give symbolic
output dims) and, for the numpy references, the padded input and a strided
view of every window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..dims import Dim, dim_add, dim_sub
from .registry import Attr

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")

WINDOW_ATTRS: dict[str, Attr] = {
    "auto_pad": Attr("string", "NOTSET", AUTO_PADS),
    "pads": Attr("ints", []),
    "strides": Attr("ints", []),
    "dilations": Attr("ints", []),
    "kernel_shape": Attr("ints", []),
}

ErrorFn = Callable[[str], Exception]


def dim_offset(x: Dim, offset: int) -> Dim:
    """x + offset, keeping a symbolic x readable."""
    return dim_add(x, offset) if offset >= 0 else dim_sub(x, -offset)


@dataclass(frozen=True)
class Window:
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]  # begins then ends; zeros under auto_pad
    auto_pad: str = "NOTSET"
    ceil_mode: bool = False

    @property
    def rank(self) -> int:
        return len(self.kernel)

    @property
    def spans(self) -> tuple[int, ...]:
        """Extent of each dilated kernel dimension."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations))

    def out_len(self, i: int, x: int) -> int:
        """Output length along spatial axis i for an input of length x (<= 0 if empty)."""
        s, span = self.strides[i], self.spans[i]
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            return -(-x // s)
        if self.auto_pad == "VALID":
            return (x - span) // s + 1
        begin = self.pads[i]
        total = begin + self.pads[i + self.rank] + x - span
        if not self.ceil_mode:
            return total // s + 1
        out = -(-total // s) + 1
        return out - 1 if (out - 1) * s >= x + begin else out

    def out_dim(self, i: int, x: Dim, fresh: Callable[[str], str]) -> Dim:
        """`out_len` for a possibly symbolic input length."""
        if isinstance(x, int):
            return self.out_len(i, x)
        s, span = self.strides[i], self.spans[i]
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            return x if s == 1 else f"(ceil({x}/{s}))"
        total = 0 if self.auto_pad == "VALID" else self.pads[i] + self.pads[i + self.rank]
        if s == 1:
            return dim_offset(x, total - span + 1)
        if self.ceil_mode:
            return fresh("w")
        return f"(({x}{total - span:+d})//{s}+1)"

    def pad_amounts(self, i: int, x: int) -> tuple[int, int]:
        """(begin, end) padding along spatial axis i for an input of length x."""
        if self.auto_pad == "VALID":
            return 0, 0
        if self.auto_pad == "NOTSET":
            return self.pads[i], self.pads[i + self.rank]
        total = max(0, (self.out_len(i, x) - 1) * self.strides[i] + self.spans[i] - x)
        small = total // 2
        return (small, total - small) if self.auto_pad == "SAME_UPPER" else (total - small, small)

    def pad(self, x: np.ndarray, value: Any, extra: Any = None) -> tuple[np.ndarray, tuple[int, ...]]:
        """Pad the spatial axes (the last `rank`) of x with `value`; the tail that
        ceil_mode windows need beyond the pads is filled with `extra` (default
        `value`). Returns the padded array and the output sizes."""
        spatial = x.shape[-self.rank :]
        outs = tuple(self.out_len(i, n) for i, n in enumerate(spatial))
        lead = [(0, 0)] * (x.ndim - self.rank)
        widths, tails = [], []
        for i, n in enumerate(spatial):
            begin, end = self.pad_amounts(i, n)
            widths.append((begin, end))
            tails.append((0, max(0, (outs[i] - 1) * self.strides[i] + self.spans[i] - (begin + n + end))))
        padded = np.pad(x, lead + widths, constant_values=value) if any(map(any, widths)) else x
        if any(t for _, t in tails):
            padded = np.pad(padded, lead + tails, constant_values=value if extra is None else extra)
        return padded, outs

    def windows(self, padded: np.ndarray, outs: Sequence[int]) -> np.ndarray:
        """A view of every window of a padded array: shape (*lead, *outs, *kernel)."""
        axes = tuple(range(padded.ndim - self.rank, padded.ndim))
        view = sliding_window_view(padded, self.spans, axis=axes)
        lead = (slice(None),) * (padded.ndim - self.rank)
        positions = tuple(slice(0, o * s, s) for o, s in zip(outs, self.strides))
        taps = tuple(slice(None, None, d) for d in self.dilations)
        return view[lead + positions + taps]


def make_window(attrs: dict[str, Any], kernel: Sequence[int], error: ErrorFn, ceil_mode: bool = False) -> Window:
    """Read and check the window attributes for a kernel of the given spatial shape."""
    rank = len(kernel)

    def ints(name: str, default: int, length: int) -> tuple[int, ...]:
        value = attrs.get(name)
        if not value:
            return (default,) * length
        if len(value) != length:
            raise error(f"attribute '{name}' has {len(value)} values; expected {length}")
        return tuple(value)

    strides, dilations = ints("strides", 1, rank), ints("dilations", 1, rank)
    pads = ints("pads", 0, 2 * rank)
    if any(k < 1 for k in kernel):
        raise error(f"kernel shape {list(kernel)} must be positive")
    if any(s < 1 for s in strides) or any(d < 1 for d in dilations):
        raise error(f"strides {list(strides)} and dilations {list(dilations)} must be positive")
    if any(p < 0 for p in pads):
        raise error(f"pads {list(pads)} must not be negative")
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad != "NOTSET":
        pads = (0,) * (2 * rank)
    return Window(tuple(kernel), strides, dilations, pads, auto_pad, ceil_mode)


def value_error(message: str) -> Exception:
    return ValueError(message)
