"""LSTM, GRU and RNN as one step kernel per time step: compiled numerics against onnxruntime (1e-4 relative:
the error of a recurrence grows per step), the kernel structure, the packed recurrent weight and the forms
that stay unrolled."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from aic.compiler.lower.recurrent import block_width, pack_recurrent
from aic.frontend.onnx import load_model
from aic.ir import get_op

import aic
from tests.frontend.test_decompose_seq import recurrence
from tests.lower.lower_util import lower
from tests.onnx_util import assert_close, run_ort

CASES = [
    ("LSTM", {}),
    ("LSTM", {"direction": "reverse", "initial": False}),
    ("LSTM", {"direction": "bidirectional", "hidden": 32, "size": 8, "batch": 1, "steps": 4}),
    ("LSTM", {"direction": "bidirectional", "hidden": 16, "batch": 8, "steps": 2}),  # batch rows share R
    ("LSTM", {"hidden": 20, "batch": 3}),  # H not a multiple of the vector: narrower blocks
    ("LSTM", {"peepholes": True, "direction": "bidirectional"}),
    ("LSTM", {"input_forget": 1, "clip": 0.5, "bias": False}),
    ("GRU", {"linear_before_reset": 1, "direction": "bidirectional", "hidden": 32, "batch": 1}),
    ("GRU", {"linear_before_reset": 1, "direction": "reverse", "clip": 0.6, "initial": False}),
    ("GRU", {"linear_before_reset": 1, "bias": False, "hidden": 20, "batch": 3}),
    ("GRU", {"direction": "bidirectional", "hidden": 32, "batch": 1}),  # two kernels per step
    ("GRU", {"clip": 0.6, "initial": False, "hidden": 20, "batch": 3}),
    ("RNN", {"direction": "bidirectional", "hidden": 64, "batch": 1}),
    ("RNN", {"activations": ["Relu"], "hidden": 20, "batch": 3, "initial": False}),
    ("RNN", {"activations": ["Sigmoid", "Sigmoid"], "direction": "bidirectional", "clip": 0.5}),
]
STEP_OPS = {"LSTM": "LSTMStep", "GRU": "GRU", "RNN": "RNNStep"}  # GRU: GRUStep or GRUResetStep


def with_constant_weights(m: onnx.ModelProto, feeds: dict) -> dict:
    """W, R, B (and P) as initializers, as exported models have them; the remaining feeds."""
    for name in ("W", "R", "B", "P"):
        if name in feeds:
            index = next(i for i, v in enumerate(m.graph.input) if v.name == name)
            del m.graph.input[index]
            m.graph.initializer.append(onnx.numpy_helper.from_array(feeds.pop(name), name))
    return feeds


@pytest.mark.parametrize("constant", [True, False], ids=["packed", "in-place"])
@pytest.mark.parametrize(
    ("kind", "case"), CASES, ids=lambda c: c if isinstance(c, str) else "-".join(f"{k}={v}" for k, v in c.items())
)
def test_steps_match_onnxruntime(rng, kind, case, constant):
    m, feeds = recurrence(rng, kind, **case)
    if constant:
        feeds = with_constant_weights(m, feeds)
    assert any(op.startswith(STEP_OPS[kind]) and op.endswith("Step") for op in {n.op for n in load_model(m).walk()})
    expected = run_ort(m, feeds)
    actual = aic.compile(m).run(None, feeds)
    assert len(actual) == len(expected)
    for name, a, e in zip(("Y", "Y_h", "Y_c"), actual, expected):
        assert_close(a, e, 1e-4, 1e-5, name)


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_batch_major_steps(rng, kind):
    m, feeds = recurrence(rng, kind, layout=1, direction="bidirectional", steps=4)
    actual = aic.compile(m).run(None, feeds)
    m0, _ = recurrence(np.random.default_rng(0), kind, direction="bidirectional", steps=4)
    expected = run_ort(m0, {k: v.transpose(1, 0, 2) if k in ("X", "H0", "C0") else v for k, v in feeds.items()})
    assert_close(actual[0], expected[0].transpose(2, 0, 1, 3), 1e-4, 1e-5, "Y")
    for a, e in zip(actual[1:], expected[1:]):
        assert_close(a, e.transpose(1, 0, 2), 1e-4, 1e-5, "final state")


def test_one_kernel_per_step_and_one_packed_weight(rng):
    """Each step of a unidirectional layer is one parallel kernel, two codes for all steps (even steps take the
    blocks in ascending order, odd ones in descending); R is packed once for all of them; the input projection
    is one MatMul."""
    steps = 5
    m, feeds = recurrence(rng, "LSTM", steps=steps, batch=1, size=8, hidden=128)
    with_constant_weights(m, feeds)
    program = lower(load_model(m))
    groups = [c.attrs.get("group", "") for c in program.calls]
    assert groups.count("LSTMStep") == steps
    assert sum("MatMul" in g for g in groups) == 1
    assert len(program.calls) <= steps + 6  # + the projection, the initial state, Y (stack, slices), final states
    assert len({c.kernel.name for c in program.calls if c.attrs.get("group") == "LSTMStep"}) == 2  # two codes
    step_kernels = [k for k in program.kernels if "lstmstep" in k.name]
    assert step_kernels and all(any(str(r).startswith("parallel") for r in k.attrs["schedule"]) for k in step_kernels)
    packed = [w for w in program.weights if "rp" in w.name]
    assert len(packed) == 1 and packed[0].shape == (1, 8, 128, 4, 16)


def test_bidirectional_layer_is_one_kernel_parallel_over_directions(rng, monkeypatch):
    """A bidirectional layer runs as one kernel whose parallel loop is over the two directions (each thread runs
    one direction's whole sequence, no barrier between steps), and the same outputs, bit for bit, at 1, 2 and
    3 threads, with the workers asleep between runs (a late worker's direction is run by the caller)."""
    monkeypatch.setenv("AIC_SPIN", "0")
    m, feeds = recurrence(rng, "LSTM", steps=7, batch=1, size=8, hidden=64, direction="bidirectional")
    feeds = with_constant_weights(m, feeds)
    program = lower(load_model(m))
    steps = [c for c in program.calls if c.attrs.get("group") == "LSTMStep"]
    assert len(steps) == 1
    kernel = next(k for k in program.kernels if k.name == steps[0].kernel.name)
    assert [str(r) for r in kernel.attrs["schedule"] if str(r).startswith("parallel")] == ["parallel(dir0)"]
    expected = run_ort(m, feeds)
    modules = [aic.compile(m, num_threads=t) for t in (1, 2, 3)]
    outputs = [module.run(None, feeds) for module in modules for _ in range(3)]
    for got in outputs:
        for a, b in zip(got, outputs[0]):
            np.testing.assert_array_equal(a, b)
    for a, e in zip(outputs[0], expected):
        assert_close(a, e, rtol=1e-4, atol=1e-5)


def test_recurrent_packing():
    """Block b of direction d holds, for each k, gate g's weights of hidden units b*width .. (b+1)*width."""
    r = np.arange(2 * 4 * 16 * 16, dtype=np.float32).reshape(2, 64, 16)
    packed = pack_recurrent(r, 8)
    assert packed.shape == (2, 2, 16, 4, 8)
    d, b, k, g, c = 1, 1, 5, 2, 3
    assert packed[d, b, k, g, c] == r[d, g * 16 + b * 8 + c, k]
    assert block_width(256, 8) == 16 and block_width(20, 8) == 5 and block_width(13, 8) == 1
    assert block_width(256, 8, gates=1) == 64 and block_width(24, 8, gates=1) == 24


def test_reference_matches_onnxruntime_step(rng):
    """The op's reference: one step from a given state equals onnxruntime's LSTM over one step."""
    m, feeds = recurrence(rng, "LSTM", steps=1, direction="bidirectional", peepholes=True, clip=0.7)
    expected = run_ort(m, feeds)
    hidden = 4
    xw = np.concatenate([feeds["X"] @ feeds["W"][d].T + feeds["B"][d, :16] + feeds["B"][d, 16:] for d in range(2)], -1)
    state = np.stack([feeds["H0"], feeds["C0"]])
    (out,) = get_op("LSTMStep").reference(
        [xw.astype(np.float32), state, feeds["R"], feeds["P"]],
        {"step": 0, "reverse": [0, 1], "clip": 0.7, "input_forget": 0},
    )
    assert out.shape == (2, 2, 2, hidden)
    assert_close(out[0], expected[1], 1e-5, 1e-6, "h")
    assert_close(out[1], expected[2], 1e-5, 1e-6, "c")


@pytest.mark.parametrize(
    ("kind", "attrs"),
    [
        ("LSTM", {"activations": ["HardSigmoid", "Tanh", "Tanh"]}),
        ("LSTM", {"lens": [3, 1]}),
        ("RNN", {"activations": ["Tanh", "Relu"], "direction": "bidirectional"}),
    ],
)
def test_other_forms_stay_unrolled(rng, kind, attrs):
    m, _ = recurrence(rng, kind, **attrs)
    assert not any(op.endswith("Step") for op in {n.op for n in load_model(m).walk()})
