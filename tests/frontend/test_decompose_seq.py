"""Sequence, attention and spectral ONNX ops decomposed into aic primitives,
checked against onnxruntime (the onnx reference evaluator where onnxruntime
lacks the form: batch-major recurrences, sliding-window attention).
fp32 tolerances are 1e-5 relative except where a long float32 sum (DFT, mel)
or the recurrence (error grows per step) needs 1e-4."""

import numpy as np
import onnx
import pytest
from aic.frontend.onnx import FrontendError, load_model
from onnx import helper as h
from onnx.reference import ReferenceEvaluator

from tests.onnx_util import assert_close, run_interpreter, run_ort

F32 = np.float32
I64 = np.int64


def model(
    op: str,
    inputs: dict[str, np.ndarray],
    node_inputs: list[str],
    outputs: list[str],
    attrs: dict | None = None,
    opset: int = 22,
    initializers: dict[str, np.ndarray] | None = None,
    dims: dict[str, list] | None = None,
) -> onnx.ModelProto:
    """One `op` node; '' skips an optional input or output; `dims` overrides declared input shapes."""
    dims = dims or {}
    node = h.make_node(op, node_inputs, outputs, **(attrs or {}))
    graph = h.make_graph(
        [node],
        op.lower(),
        [
            h.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), dims.get(n, a.shape))
            for n, a in inputs.items()
        ],
        [onnx.ValueInfoProto(name=o) for o in outputs if o],
        [onnx.numpy_helper.from_array(a, n) for n, a in (initializers or {}).items()],
    )
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def compare(m: onnx.ModelProto, feeds: dict, rtol: float = 1e-5, atol: float = 1e-6, oracle: str = "ort") -> list:
    expected = run_ort(m, feeds) if oracle == "ort" else ReferenceEvaluator(m).run(None, feeds)
    actual = run_interpreter(m, feeds)
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, np.asarray(e), rtol, atol, f"output {i}")
    return actual


def ops_of(m: onnx.ModelProto) -> set[str]:
    return {n.op for n in load_model(m).walk()}


# RNN, GRU, LSTM -------------------------------------------------------------

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def recurrence(
    rng,
    kind: str,
    steps=3,
    batch=2,
    size=3,
    hidden=4,
    direction="forward",
    layout=0,
    lens=None,
    bias=True,
    initial=True,
    peepholes=False,
    **attrs,
):
    """A recurrence model and its feeds (layout 0 shapes; layout 1 transposes X and the states)."""
    g, dirs = GATES[kind], 2 if direction == "bidirectional" else 1
    feeds = {
        "X": rng.standard_normal((steps, batch, size)).astype(F32),
        "W": (rng.standard_normal((dirs, g * hidden, size)) * 0.5).astype(F32),
        "R": (rng.standard_normal((dirs, g * hidden, hidden)) * 0.5).astype(F32),
    }
    optional = {
        "B": rng.standard_normal((dirs, 2 * g * hidden)).astype(F32) if bias else None,
        "L": np.array(lens, np.int32) if lens is not None else None,
        "H0": rng.standard_normal((dirs, batch, hidden)).astype(F32) if initial else None,
        "C0": rng.standard_normal((dirs, batch, hidden)).astype(F32) if initial and kind == "LSTM" else None,
        "P": rng.standard_normal((dirs, 3 * hidden)).astype(F32) if peepholes else None,
    }
    names = ["X", "W", "R"]
    for name, value in list(optional.items())[: 5 if kind == "LSTM" else 3]:
        names.append(name if value is not None else "")
        if value is not None:
            feeds[name] = value
    while not names[-1]:
        names.pop()
    if layout:
        feeds = {k: v.transpose(1, 0, 2) if k in ("X", "H0", "C0") else v for k, v in feeds.items()}
    outputs = ["Y", "Y_h", "Y_c"][: 3 if kind == "LSTM" else 2]
    attrs = {"hidden_size": hidden, "direction": direction, "layout": layout, **attrs}
    return model(kind, feeds, names, outputs, attrs), feeds


RECURRENCE_CASES = [
    {},
    {"direction": "reverse"},
    {"direction": "bidirectional", "lens": [3, 1]},
    {"bias": False, "initial": False},
    {"clip": 0.4, "direction": "bidirectional"},
    {"direction": "reverse", "lens": [2, 3], "initial": False},
]


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("case", RECURRENCE_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "plain")
def test_recurrence_matches_onnxruntime(rng, kind, case):
    m, feeds = recurrence(rng, kind, **case)
    compare(m, feeds, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("kind", "attrs"),
    [
        ("RNN", {"activations": ["Relu"]}),
        ("RNN", {"activations": ["Relu", "Tanh"]}),  # both directions' list on a forward RNN: the first
        (
            "RNN",
            {
                "activations": ["LeakyRelu", "HardSigmoid"],
                "activation_alpha": [0.2, 0.3],
                "activation_beta": [0.4],
                "direction": "bidirectional",
            },
        ),
        ("GRU", {"linear_before_reset": 1, "direction": "bidirectional"}),
        ("GRU", {"activations": ["HardSigmoid", "Softsign"], "activation_alpha": [0.3], "activation_beta": [0.6]}),
        ("LSTM", {"peepholes": True, "direction": "bidirectional", "lens": [1, 3]}),
        ("LSTM", {"input_forget": 1, "clip": 0.5}),
        (
            "LSTM",
            {
                "activations": ["Elu", "Affine", "ScaledTanh"],
                "activation_alpha": [0.7, 0.5, 1.1],
                "activation_beta": [1.3, 0.8],
            },
        ),
    ],
)
def test_recurrence_attributes(rng, kind, attrs):
    m, feeds = recurrence(rng, kind, **attrs)
    compare(m, feeds, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_batch_major_layout(rng, kind):
    """onnxruntime lacks layout=1: compare with its layout-0 results, transposed."""
    m, feeds = recurrence(rng, kind, layout=1, direction="bidirectional")
    actual = run_interpreter(m, feeds)
    m0, feeds0 = recurrence(np.random.default_rng(0), kind, direction="bidirectional")
    feeds0 = {k: v.transpose(1, 0, 2) if k in ("X", "H0", "C0") else v for k, v in feeds.items()}
    expected = run_ort(m0, feeds0)
    assert_close(actual[0], expected[0].transpose(2, 0, 1, 3), 1e-4, 1e-5, "Y")
    for a, e in zip(actual[1:], expected[1:]):
        assert_close(a, e.transpose(1, 0, 2), 1e-4, 1e-5, "final state")


def test_recurrence_is_unrolled_with_symbolic_batch(rng):
    m, feeds = recurrence(rng, "LSTM", steps=4, direction="bidirectional")
    for info in m.graph.input:
        if info.name in ("X", "H0", "C0"):
            info.type.tensor_type.shape.dim[1].dim_param = "batch"
    assert ops_of(m) <= {
        "Gather",
        "Transpose",
        "Split",
        "MatMul",
        "Add",
        "Mul",
        "Sub",
        "Sigmoid",
        "Tanh",
        "Unsqueeze",
        "Concat",
    }
    compare(m, feeds, rtol=1e-4, atol=1e-5)


def test_recurrence_needs_a_static_sequence_length(rng):
    m, _ = recurrence(rng, "GRU")
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "steps"
    with pytest.raises(FrontendError, match=r"GRU.*static sequence length"):
        load_model(m)


# DFT, STFT ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "attrs", "axis", "length"),
    [
        ((2, 8, 3, 1), {}, 1, None),
        ((2, 8, 3, 2), {}, 2, None),
        ((2, 8, 3, 1), {"onesided": 1}, 1, None),
        ((2, 7, 3, 1), {"onesided": 1}, -3, 10),
        ((2, 8, 3, 2), {"inverse": 1}, 1, 6),
        ((2, 5, 3, 2), {"inverse": 1, "onesided": 1}, 1, None),
        ((2, 5, 3, 2), {"inverse": 1, "onesided": 1}, 1, 9),
    ],
)
@pytest.mark.parametrize("opset", [17, 20])
def test_dft_matches_onnxruntime(rng, shape, attrs, axis, length, opset):
    x = rng.standard_normal(shape).astype(F32)
    inits = {"n": np.array(length, I64)} if length is not None else {}
    names = ["x", "n" if length is not None else ""]
    if opset >= 20:
        inits["axis"] = np.array(axis, I64)
        names.append("axis")
    else:
        attrs = {**attrs, "axis": axis}
    m = model("DFT", {"x": x}, names, ["y"], attrs, opset, inits)
    compare(m, {"x": x}, rtol=1e-4, atol=1e-5)
    assert "MatMul" in ops_of(m) and "Cos" not in ops_of(m)  # the DFT matrix is a constant


@pytest.mark.parametrize(("attrs", "chooser"), [({}, "Where"), ({"inverse": 1}, "Where"), ({"onesided": 1}, "If")])
def test_dft_axis_given_at_run_time(rng, attrs, chooser):
    """DFT-20 with the axis a graph input: every axis computed and one picked (Where),
    or If where the axes give different output shapes."""
    x = rng.standard_normal((2, 6, 4, 2 - attrs.get("onesided", 0))).astype(F32)
    m = model("DFT", {"x": x, "axis": np.array(1, I64)}, ["x", "", "axis"], ["y"], attrs, opset=20)
    assert chooser in ops_of(m)
    for axis in (0, 1, 2, -2, -3):
        compare(m, {"x": x, "axis": np.array(axis, I64)}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("onesided", [0, 1])
@pytest.mark.parametrize("length", [4, 12])
def test_inverse_dft_length_at_run_time(rng, onesided, length):
    """dft_length as a graph input: the DFT matrix is built at run time. Against the onnx
    reference, as onnxruntime's IRFFT disagrees with numpy when the length does not fit the bins."""
    feeds = {"x": rng.standard_normal((2, 7, 3, 2)).astype(F32), "n": np.array(length, I64)}
    attrs = {"inverse": 1, "onesided": onesided}
    m = model("DFT", feeds, ["x", "n", "axis"], ["y"], attrs, 20, {"axis": np.array(1, I64)})
    compare(m, feeds, rtol=1e-4, atol=1e-5, oracle="reference")


@pytest.mark.parametrize("onesided", [0, 1])
@pytest.mark.parametrize("given", ["window", "frame_length", "both"])
def test_stft_matches_onnxruntime(rng, onesided, given):
    signal = rng.standard_normal((2, 40, 1)).astype(F32)
    inits = {"step": np.array(6, I64), "window": np.hanning(8).astype(F32), "length": np.array(8, I64)}
    names = ["signal", "step", "window" if given != "frame_length" else "", "length" if given != "window" else ""]
    m = model("STFT", {"signal": signal}, names, ["y"], {"onesided": onesided}, 17, inits)
    compare(m, {"signal": signal}, rtol=1e-4, atol=1e-5)


def test_stft_with_sizes_at_run_time(rng):
    """frame_step and frame_length as graph inputs: frames and DFT matrix computed at run time."""
    feeds = {
        "signal": rng.standard_normal((1, 30, 2)).astype(F32),
        "step": np.array(4, I64),
        "length": np.array(6, I64),
    }
    m = model("STFT", feeds, ["signal", "step", "", "length"], ["y"], {"onesided": 0}, 17)
    compare(m, feeds, rtol=1e-4, atol=1e-5)


# Windows, MelWeightMatrix --------------------------------------------------


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows(op, periodic):
    attrs = {"periodic": periodic, "output_datatype": onnx.TensorProto.DOUBLE}
    constant = model(op, {}, ["n"], ["y"], attrs, 17, {"n": np.array(10, np.int32)})
    assert not load_model(constant).nodes  # folded into a constant
    compare(constant, {})
    runtime = model(op, {"n": np.array(7, I64)}, ["n"], ["y"], attrs, 17)
    compare(runtime, {"n": np.array(7, I64)})


@pytest.mark.parametrize(
    ("bins", "dft", "rate", "low", "high"), [(8, 64, 8000, 0.0, 4000.0), (5, 33, 16000, 300.0, 6000.0)]
)
def test_mel_weight_matrix(bins, dft, rate, low, high):
    feeds = {
        "bins": np.array(bins, I64),
        "dft": np.array(dft, I64),
        "rate": np.array(rate, I64),
        "low": np.array(low, F32),
        "high": np.array(high, F32),
    }
    runtime = model("MelWeightMatrix", feeds, list(feeds), ["y"], opset=17)
    compare(runtime, feeds, rtol=1e-5, atol=1e-6)
    constant = model("MelWeightMatrix", {}, list(feeds), ["y"], opset=17, initializers=feeds)
    assert not load_model(constant).nodes
    compare(constant, {}, rtol=1e-5, atol=1e-6)


# TensorScatter --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache", "update", "attrs", "write"),
    [
        ((2, 3, 6, 4), (2, 3, 2, 4), {}, [0, 4]),
        ((2, 3, 6, 4), (2, 3, 3, 4), {"mode": "circular"}, [5, 2]),
        ((3, 5, 2), (3, 2, 2), {"axis": 1}, None),
        ((2, 5, 3), (2, 5, 2), {"axis": -1, "mode": "circular"}, [2, 1]),
    ],
)
def test_tensor_scatter(rng, cache, update, attrs, write):
    feeds = {"cache": rng.standard_normal(cache).astype(F32), "update": rng.standard_normal(update).astype(F32)}
    if write is not None:
        feeds["write"] = np.array(write, I64)
    m = model("TensorScatter", feeds, list(feeds), ["y"], attrs, opset=24)
    compare(m, feeds, rtol=0, atol=0)


# Attention ------------------------------------------------------------------


def attention(rng, q=(2, 3, 4, 8), k=(2, 3, 6, 8), v=None, mask=None, past=0, nonpad=None, dtype=F32, **attrs):
    """An Attention model (4-D, or 3-D when the heads are attributes) and its feeds."""
    v = v or k
    feeds = {
        "Q": rng.standard_normal(q).astype(dtype),
        "K": rng.standard_normal(k).astype(dtype),
        "V": rng.standard_normal(v).astype(dtype),
    }
    names = ["Q", "K", "V", "", "", "", ""]
    if mask is not None:  # a trailing -1: a bool mask of the leading dims
        boolean = mask[-1] == -1
        shape = mask[:-1] if boolean else mask
        feeds["mask"] = rng.random(shape) > 0.3 if boolean else rng.standard_normal(shape).astype(dtype)
        names[3] = "mask"
    if past:
        kv_heads = attrs.get("kv_num_heads", k[1])
        head, v_head = q[-1] // attrs.get("q_num_heads", 1), v[-1] // attrs.get("kv_num_heads", 1)
        feeds["past_key"] = rng.standard_normal((k[0], kv_heads, past, head)).astype(dtype)
        feeds["past_value"] = rng.standard_normal((k[0], kv_heads, past, v_head)).astype(dtype)
        names[4:6] = ["past_key", "past_value"]
    if nonpad is not None:
        feeds["nonpad"] = np.array(nonpad, I64)
        names[6] = "nonpad"
    while not names[-1]:
        names.pop()
    mode = attrs.pop("mode", None)
    outputs = ["Y", "present_key" if past else "", "present_value" if past else ""]
    if mode is not None:
        outputs.append("qk")
        attrs["qk_matmul_output_mode"] = mode
    while not outputs[-1]:
        outputs.pop()
    return feeds, names, outputs, attrs


ATTENTION_CASES = [
    {},
    {"is_causal": 1},
    {"q": (2, 6, 4, 8), "k": (2, 2, 6, 8), "v": (2, 2, 6, 5), "is_causal": 1},
    {"mask": (4, 6), "scale": 0.2},
    {"mask": (2, 1, 4, 6), "mode": 2},
    {"mask": (4, 6, -1), "is_causal": 1},
    {"mask": (2, 3, 4, 6, -1), "mode": 3},
    {"softcap": 1.5, "mask": (4, 6), "mode": 0},
    {"softcap": 1.5, "mode": 1, "is_causal": 1},
    {"q": (2, 4, 24), "k": (2, 6, 24), "v": (2, 6, 12), "q_num_heads": 3, "kv_num_heads": 3, "is_causal": 1},
    {"q": (2, 4, 48), "k": (2, 6, 16), "q_num_heads": 6, "kv_num_heads": 2, "past": 3, "mask": (4, 9), "mode": 2},
    {"past": 5, "is_causal": 1, "mode": 3},
    {"q": (2, 6, 2, 8), "k": (2, 3, 7, 8), "nonpad": [4, 7], "is_causal": 1, "opset": 24},
    {"k": (2, 3, 6, 8), "nonpad": [3, 6], "mask": (2, 1, 4, 6), "opset": 24},
    {"dtype": np.float16, "mask": (4, 6), "softmax_precision": onnx.TensorProto.FLOAT, "mode": 3},
]


@pytest.mark.parametrize("case", ATTENTION_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "plain")
def test_attention_matches_onnxruntime(rng, case):
    case = dict(case)
    opset = case.pop("opset", 23)
    feeds, names, outputs, attrs = attention(rng, **case)
    m = model("Attention", feeds, names, outputs, attrs, opset)
    loose = case.get("dtype") is np.float16
    compare(m, feeds, rtol=2e-3 if loose else 1e-5, atol=2e-3 if loose else 1e-6)


def test_attention_static_masks_fold(rng):
    """A causal mask with static shapes is one constant bias; no mask op remains."""
    feeds, names, outputs, attrs = attention(rng, is_causal=1, past=2)
    assert ops_of(model("Attention", feeds, names, outputs, attrs, 23)) == {
        "Mul",
        "Transpose",
        "MatMul",
        "Add",
        "Softmax",
        "Concat",
    }


def test_attention_with_symbolic_sizes(rng):
    """Batch and sequence lengths as symbols: grouped heads, cache and causal mask built at run time."""
    feeds, names, outputs, attrs = attention(rng, q=(2, 6, 4, 8), k=(2, 2, 6, 8), is_causal=1, past=3, mode=3)
    dims = {n: ["batch", a.shape[1], "sq" if n == "Q" else "skv", a.shape[3]] for n, a in feeds.items()}
    dims["past_key"][2] = dims["past_value"][2] = "past"
    compare(model("Attention", feeds, names, outputs, attrs, 23, dims=dims), feeds)


@pytest.mark.parametrize(
    "case",
    [
        {"is_causal": 1, "left_window_size": 2},
        {"left_window_size": 1, "right_window_size": 2, "mask": (4, 6)},
        {"is_causal": 1, "left_window_size": 2, "k": (2, 3, 8, 8), "nonpad": [5, 8], "mask": (3, 4, 8)},
        {"mask": (2, 1, 4, 3, -1), "is_causal": 1},  # shorter than the keys: padded with False
        {"nonpad": [3, 6], "mask": (2, 1, 4, 4)},  # padded with -inf
    ],
)
def test_attention_matches_reference(rng, case):
    """Sliding windows (opset 25) and short masks, which onnxruntime lacks."""
    feeds, names, outputs, attrs = attention(rng, **case)
    compare(model("Attention", feeds, names, outputs, attrs, 25), feeds, oracle="reference")
