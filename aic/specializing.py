"""A module for models whose shapes are only known from their inputs.

`aic.compile` returns a `SpecializingModule` when a model's shapes depend on its
inputs (unbound symbolic dims, or shapes computed from small integer inputs).
Each distinct input signature (shapes, and the values of shape-determining
inputs) is compiled once, ahead of its first run, into an ordinary static
`Module` and cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aic.runtime.module import Module, Signature, TensorInfo, feed_array, load_scratch

if TYPE_CHECKING:  # loading a compiled model does not import the graph IR
    from aic.ir import Graph


class SpecializingModule(Signature):
    """Compiles `graph` per input signature on first use; runs like `Module`."""

    def __init__(self, graph: Graph, compile_static: Any, num_threads: int | None = None) -> None:
        self.graph = graph
        self._compile_static = compile_static  # (Graph) -> path of a .so
        self._num_threads = num_threads
        self._cache: dict[tuple, tuple[Module, list[str]]] = {}
        self._inputs = [TensorInfo(v.name, list(v.type.shape), v.type.dtype.numpy) for v in graph.inputs]
        self._outputs = [TensorInfo(v.name, list(v.type.shape), v.type.dtype.numpy) for v in graph.outputs]

    @property
    def specializations(self) -> int:
        """How many input signatures have been compiled so far."""
        return len(self._cache)

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]) -> list[np.ndarray]:
        from aic.compiler.specialize import freezable_inputs, specialize

        feeds = self._check(input_feed)
        frozen_names = {v.name for v in freezable_inputs(self.graph)}
        key = tuple((name, a.shape, a.tobytes() if name in frozen_names else None) for name, a in sorted(feeds.items()))
        if key not in self._cache:
            graph, frozen = specialize(self.graph, feeds)
            path = self._compile_static(graph)
            module = load_scratch(path, self._num_threads)
            self._cache[key] = (module, frozen)
        module, frozen = self._cache[key]
        return module.run(output_names, {n: a for n, a in feeds.items() if n not in frozen})

    def _check(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        known = {t.name: t for t in self._inputs}
        unknown = [n for n in feed if n not in known]
        if unknown:
            raise ValueError(f"unknown input(s) {unknown}; the model's inputs are {self._listing()}")
        missing = [t.describe() for t in self._inputs if t.name not in feed]
        if missing:
            raise ValueError(f"missing input(s): {', '.join(missing)}")
        feeds = {}
        for t in self._inputs:
            array = feed_array(t.name, feed[t.name], t.dtype)
            if array.dtype != t.dtype:
                raise ValueError(f"input '{t.name}' has dtype {array.dtype.name}; the model expects {t.dtype.name}")
            if array.ndim != len(t.shape) or any(isinstance(d, int) and d != n for d, n in zip(t.shape, array.shape)):
                raise ValueError(f"input '{t.name}' has shape {list(array.shape)}; the model expects {t.shape}")
            feeds[t.name] = array
        return feeds

    def _listing(self) -> str:
        return ", ".join(t.describe() for t in self._inputs) or "(none)"

    def __repr__(self) -> str:
        return f"<aic.SpecializingModule {self.graph.name}: {self._listing()}; {self.specializations} compiled>"
