"""Random small graphs (elementwise chains with constants, transposes, reshapes,
casts, no-ops): every pass keeps numerics, verifies and is idempotent, and the
full -O2/-O3 pipelines keep numerics."""

from __future__ import annotations

import numpy as np
from aic.compiler.passes import PASSES, optimize
from aic.ir import DType, Graph, GraphBuilder, TensorType, Value, run_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .util import check_pass, random_feeds

F32 = DType.float32
SCALARS = [0.0, 1.0, 2.0, 0.5, -1.0, 3.0]
RESHAPES = [[0, 12], [0, 3, 4], [0, 4, 3], [0, 2, 6], [0, 2, 2, 3]]


@st.composite
def graphs(draw) -> Graph:
    b = GraphBuilder()
    values: list[Value] = [b.input("x", TensorType(F32, ("n", 3, 4))), b.input("y", TensorType(F32, ("n", 3, 4)))]

    def pick() -> Value:
        return values[draw(st.integers(0, len(values) - 1))]

    def scalar() -> Value:
        return b.const(np.float32(draw(st.sampled_from(SCALARS))))

    for _ in range(draw(st.integers(2, 10))):
        v = pick()
        kind = draw(st.sampled_from(["unary", "binary", "const", "transpose", "reshape", "pow", "cast", "noop"]))
        if kind == "unary":
            v = b.op(draw(st.sampled_from(["Relu", "Neg", "Abs", "Sigmoid", "Tanh", "Erf"])), v)
        elif kind == "binary":
            same = [w for w in values if w.type == v.type]
            v = b.op(draw(st.sampled_from(["Add", "Sub", "Mul", "Max"])), v, same[draw(st.integers(0, len(same) - 1))])
        elif kind == "const":
            op = draw(st.sampled_from(["Add", "Sub", "Mul", "Div"]))
            if op == "Div" or draw(st.booleans()):
                c = b.const(np.float32(draw(st.sampled_from([1.0, 2.0, 0.5, -4.0]))))
            elif draw(st.booleans()):
                c = scalar()
            else:
                last = v.type.shape[-1]
                c = b.const(np.linspace(-1, 1, last).astype(np.float32)) if isinstance(last, int) else scalar()
            v = b.op(op, *((v, c) if draw(st.booleans()) or op in ("Div", "Sub") else (c, v)))
        elif kind == "transpose":
            v = b.op("Transpose", v, perm=draw(st.permutations(range(v.type.rank))))
        elif kind == "reshape" and v.type.shape[0] == "n":
            v = b.op("Reshape", v, b.const(np.array(draw(st.sampled_from(RESHAPES)), np.int64)))
        elif kind == "pow":
            v = b.op("Pow", b.op("Abs", v), b.const(np.float32(draw(st.sampled_from([1.0, 2.0, 0.5])))))
        elif kind == "cast":
            mid = draw(st.sampled_from([DType.float64, DType.int32]))
            v = b.op("Cast", b.op("Cast", v, to=mid.onnx), to=F32.onnx)
        else:
            v = b.op(draw(st.sampled_from(["Identity", "Dropout"])), v)
        values.append(v)
    outputs = [values[-1]] + ([pick()] if draw(st.booleans()) else [])
    return b.build(list({id(o): o for o in outputs}.values()))


SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(graphs())
def test_every_pass_on_random_graphs(graph):
    rng = np.random.default_rng(1)
    for p in PASSES.values():
        check_pass(graph, p.run, rng, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(graphs(), st.sampled_from([2, 3]))
def test_pipeline_on_random_graphs(graph, level):
    rng = np.random.default_rng(2)
    optimized, report = optimize(graph, level, verify_each=True)
    assert report.nodes_after <= report.nodes_before
    assert [v.name for v in optimized.outputs] == [v.name for v in graph.outputs]
    feeds = random_feeds(graph, rng, {"n": 2})
    for a, e in zip(run_graph(optimized, feeds), run_graph(graph, feeds)):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
