"""The pass manager: levels, enabling/disabling, fixpoints, reports, verification, IR dumps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from aic.compiler.passes import PASSES, PassError, describe_pipeline, optimize, pipeline
from aic.compiler.passes.manager import LEVELS, Pass
from aic.compiler.pipeline import GPU_ONLY_PASSES
from aic.ir import DType, Graph, GraphBuilder, Node, TensorType, print_graph, run_graph

from .util import ops, random_feeds

F32 = DType.float32


def _model() -> Graph:
    """Relu(x) + a foldable constant, an Identity, a duplicate, dead code and a GELU."""
    b = GraphBuilder()
    x = b.input("x", TensorType(F32, ("batch", 4)))
    h = b.op("Identity", b.op("Relu", x))
    k = b.op("Add", b.const(np.ones(4, np.float32)), b.const(np.ones(4, np.float32)))
    s = b.op("Add", b.op("Mul", h, k), b.op("Mul", h, k))
    b.op("Exp", s)
    erf = b.op("Add", b.op("Erf", b.op("Div", s, b.const(np.float32(math.sqrt(2))))), b.const(np.float32(1)))
    y = b.op("Mul", b.op("Mul", s, erf), b.const(np.float32(0.5)))
    return b.build([y])


def test_levels(rng):
    graph = _model()
    before = print_graph(graph)
    feeds = random_feeds(graph, rng)
    expected = run_graph(graph, feeds)
    results = {level: optimize(graph, level, verify_each=True)[0] for level in LEVELS}
    assert print_graph(graph) == before  # the input is not modified
    assert print_graph(results[0]) == before
    assert ops(results[1]) == ["Relu", "Mul", "Add", "Div", "Erf", "Add", "Mul", "Mul"]
    assert ops(results[2]) == ["Relu", "Mul", "Add", "Gelu"]
    assert ops(results[3]) == ops(results[2])
    for g in results.values():
        np.testing.assert_allclose(run_graph(g, feeds)[0], expected[0], rtol=1e-5, atol=1e-6)


def test_disable_and_explicit_passes():
    graph, _ = optimize(_model(), 2, disable=["fuse-gelu"])
    assert "Gelu" not in ops(graph) and "Identity" not in ops(graph)
    graph, report = optimize(_model(), passes=["remove-noops"])
    assert "Identity" not in ops(graph) and ops(graph).count("Mul") == 4
    assert {r.name for r in report.records} == {"remove-noops"}
    graph, report = optimize(_model(), 1, enable=["fuse-gelu", "cse"])
    assert "Gelu" in ops(graph) and pipeline(1, enable=["fuse-gelu", "cse"])[-1].passes == ("fuse-gelu",)
    with pytest.raises(ValueError, match="unknown pass"):
        optimize(_model(), disable=["no-such-pass"])
    with pytest.raises(ValueError, match="level"):
        pipeline(7)


def test_report_says_what_changed():
    _, report = optimize(_model(), 2)
    assert report.nodes_before == 12 and report.nodes_after == 4
    folding = next(r for r in report.records if r.name == "fold-constants")
    assert folding.changed and folding.nodes_after == folding.nodes_before - 1
    assert "folded Add" in folding.changes() and "Add -1" in folding.changes()
    gelu = next(r for r in report.records if r.name == "fuse-gelu")
    assert gelu.ops_delta["Gelu"] == 1 and "recognised Gelu (none)" in gelu.changes()
    assert all(r.seconds >= 0 for r in report.records)
    last_round = [r for r in report.records if r.stage == 1][-len(pipeline(2)[0].passes) :]
    assert not any(r.changed for r in last_round)  # the stage ran to a fixpoint
    text = report.format()
    assert "fuse-gelu" in text and "-O2: 12 -> 4 nodes" in text
    assert len(report.format(verbose=True).splitlines()) == len(report.records) + 1


def test_trace_sees_every_record():
    seen = []
    _, report = optimize(_model(), 1, trace=seen.append)
    assert seen == report.records


def test_dump_ir(tmp_path, monkeypatch):
    monkeypatch.setenv("AIC_DUMP_IR", str(tmp_path))
    _, report = optimize(_model(), 1)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files[0] == "000_input.txt" and files[1] == "001_fold-constants.txt"
    assert len(files) == len(report.records) + 1
    assert "Identity" in (tmp_path / "000_input.txt").read_text()
    assert "Identity" not in (tmp_path / files[-1]).read_text()


def test_verification_names_the_broken_pass(monkeypatch):
    def corrupt(graph: Graph) -> Graph:
        node = graph.nodes[0]
        graph.nodes.insert(0, Node("Relu", [node.outputs[0]], [node.outputs[0]]))
        return graph

    monkeypatch.setitem(PASSES, "corrupt", Pass("corrupt", corrupt))
    with pytest.raises(PassError, match="pass 'corrupt' left an invalid graph"):
        optimize(_model(), passes=["corrupt"], verify_each=True)


def test_failing_pass_is_named(monkeypatch):
    def explode(graph: Graph) -> Graph:
        raise KeyError("boom")

    monkeypatch.setitem(PASSES, "explode", Pass("explode", explode))
    with pytest.raises(PassError, match="pass 'explode' failed"):
        optimize(_model(), passes=["explode"])


def test_every_pass_has_a_summary_and_appears_in_o2():
    text = describe_pipeline(2, enable=GPU_ONLY_PASSES)  # those the GPU target adds
    for p in PASSES.values():
        assert p.summary and p.summary != p.name
        assert f"{p.name} " in text and p.summary in text
    assert "fuse-gelu" not in describe_pipeline(1) and "fuse-gelu" not in describe_pipeline(2, disable=["fuse-gelu"])
