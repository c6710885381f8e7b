"""Helpers for pass tests: random feeds, numerics preserved, idempotence, verification."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from aic.compiler.passes.rewrite import recording
from aic.ir import Graph, print_graph, run_graph, verify
from aic.ir.graph_edit import clone_graph

SYMBOL_SIZE = 3


def random_feeds(graph: Graph, rng: np.random.Generator, sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Random inputs for `graph`; a symbolic dim takes `sizes[symbol]` (default SYMBOL_SIZE)."""
    sizes = sizes or {}
    feeds = {}
    for v in graph.inputs:
        shape = [d if isinstance(d, int) else sizes.get(d, SYMBOL_SIZE) for d in v.type.shape]
        dtype = v.type.dtype.numpy
        if v.type.dtype.is_float:
            feeds[v.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[v.name] = rng.random(shape) < 0.5
        else:
            feeds[v.name] = rng.integers(0, 5, shape).astype(dtype)
    return feeds


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.walk()]


def check_pass(
    graph: Graph,
    run: Callable[[Graph], Graph],
    rng: np.random.Generator,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    sizes: dict[str, int] | None = None,
) -> Graph:
    """Run a pass on a copy of `graph` and check that: the result verifies, its
    outputs keep their names and types up to refined symbols and compute the
    same values on random inputs, and a second run changes nothing."""
    verify(graph)
    after = run(clone_graph(graph))
    verify(after)
    assert [v.name for v in after.outputs] == [v.name for v in graph.outputs]
    assert_types_kept(graph, after)
    feeds = random_feeds(graph, rng, sizes)
    expected = run_graph(graph, feeds)
    actual = run_graph(after, feeds)
    for name, a, e in zip([v.name for v in graph.outputs], actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape, name
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=name)
    assert_idempotent(after, run)
    return after


def assert_types_kept(before: Graph, after: Graph) -> None:
    """Output types are unchanged, except that dims a pass could not name
    before (fresh symbols, not those of the inputs) may become known."""
    symbols = {d for v in before.inputs for d in v.type.shape if isinstance(d, str)}
    for old, new in zip(before.outputs, after.outputs):
        assert new.type.dtype == old.type.dtype and new.type.rank == old.type.rank, old.name
        for d_old, d_new in zip(old.type.shape, new.type.shape):
            if isinstance(d_old, int) or set(re.findall(r"[A-Za-z_]\w*", d_old)) <= symbols:
                assert d_new == d_old, f"%{old.name}: {old.type} became {new.type}"


def assert_idempotent(graph: Graph, run: Callable[[Graph], Graph]) -> None:
    text = print_graph(graph)
    with recording() as notes:
        again = run(graph)
    verify(again)
    assert not notes, f"second run applied {dict(notes)}"
    assert print_graph(again) == text
