"""Ops whose output sizes depend on the data (NonZero, Compress, Unique, NonMaxSuppression),
compiled once per model and run on inputs that give different output sizes, each run
compared with onnxruntime; the C ABI's aic_output_shape through ctypes; the loop evaluator
(bounds-checked) on the same programs; the error when such a value feeds another op."""

from __future__ import annotations

import ctypes
import json

import numpy as np
import onnx
import pytest
from aic.compiler.lower import LoweringError
from aic.compiler.program import build_program
from aic.compiler.specialize import is_static
from aic.frontend.onnx import load_model
from aic.ir import DType
from aic.ir.loop_eval import run_program
from onnx import helper

import aic
from tests.onnx_util import assert_close, run_ort

rng = np.random.default_rng(7)


def make_model(nodes: list[onnx.NodeProto], inputs: dict[str, tuple[type, tuple[int, ...]]], outputs: list[str],
               initializers: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "dynamic",
        [helper.make_tensor_value_info(n, DType.from_numpy(np.dtype(t)).onnx, s) for n, (t, s) in inputs.items()],
        [onnx.ValueInfoProto(name=o) for o in outputs],
        [onnx.numpy_helper.from_array(a, n) for n, a in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 8
    return model


def check(model: onnx.ModelProto, runs: list[dict[str, np.ndarray]]) -> aic.Module:
    """Compile once (no specialisation), run every feed, compare every output with onnxruntime."""
    assert is_static(load_model(model))
    module = aic.compile(model)
    assert isinstance(module, aic.Module)
    for feeds in runs:
        for name, got, want in zip([o.name for o in module.outputs], module.run(None, feeds), run_ort(model, feeds)):
            assert_close(got, want, what=name)
    return module


def sparse(shape: tuple[int, ...], density: float, dtype: type = np.float32) -> np.ndarray:
    return (rng.standard_normal(shape) * (rng.random(shape) < density)).astype(dtype)


def test_nonzero_of_several_ranks_and_types():
    nodes = [helper.make_node("NonZero", [x], [f"y_{x}"]) for x in ("f", "b", "s", "u")]
    nodes += [helper.make_node("Greater", ["f", "half"], ["big"]), helper.make_node("NonZero", ["big"], ["y_big"])]
    model = make_model(
        nodes,
        {"f": (np.float32, (3, 4)), "b": (np.bool_, (2, 3, 2)), "s": (np.int32, ()), "u": (np.uint8, (5,))},
        ["y_f", "y_b", "y_s", "y_u", "y_big", "y_f"],  # y_f twice: the second is a copy
        {"half": np.array(0.5, np.float32)},
    )
    runs = [
        {"f": sparse((3, 4), d), "b": rng.random((2, 3, 2)) < d, "s": np.array(int(d > 0.5), np.int32),
         "u": (rng.random(5) < d).astype(np.uint8) * 7}
        for d in (0.0, 0.3, 0.7, 1.0)
    ]  # fmt: skip
    module = check(model, runs)
    assert module.outputs[0].shape[0] == 2 and isinstance(module.outputs[0].shape[1], str)
    assert module.metadata["outputs"][0]["shape"] == [2, 12]  # the upper bound, allocated by callers


def test_compress_with_a_runtime_condition():
    nodes = [
        helper.make_node("Compress", ["x", "c4"], ["y1"], axis=1),
        helper.make_node("Compress", ["x", "c2"], ["y0"], axis=0),  # shorter than the axis
        helper.make_node("Compress", ["x", "c4"], ["yneg"], axis=-1),
        helper.make_node("Compress", ["x", "c20"], ["yflat"]),  # longer than the flattened input
        helper.make_node("Compress", ["h", "c4"], ["yh"], axis=0),
    ]
    inputs = {"x": (np.float32, (3, 4)), "h": (np.float16, (4, 2)), "c4": (np.bool_, (4,)), "c2": (np.bool_, (2,)),
              "c20": (np.bool_, (20,))}  # fmt: skip
    model = make_model(nodes, inputs, ["y1", "y0", "yneg", "yflat", "yh"])
    runs = [
        {"x": rng.standard_normal((3, 4)).astype(np.float32), "h": rng.standard_normal((4, 2)).astype(np.float16),
         "c4": rng.random(4) < d, "c2": rng.random(2) < d, "c20": rng.random(20) < d}
        for d in (0.0, 0.5, 1.0)
    ]  # fmt: skip
    check(model, runs)


def test_unique_sorted_and_unsorted_with_and_without_axis():
    cases = [(1, None), (0, None), (1, 0), (0, 0), (1, 1), (0, -1)]
    nodes, outputs = [], []
    for k, (sort, axis) in enumerate(cases):
        names = [f"{o}{k}" for o in ("y", "first", "inverse", "counts")]
        attrs = {"sorted": sort} if axis is None else {"sorted": sort, "axis": axis}
        nodes.append(helper.make_node("Unique", ["x"], names, **attrs))
        outputs += names
    nodes.append(helper.make_node("Unique", ["z"], ["yz", "iz"], axis=1))  # 3-D, two outputs
    nodes.append(helper.make_node("Unique", ["n"], ["yn", "", "vn"]))  # int8; inverse indices feed another op
    nodes.append(helper.make_node("Add", ["vn", "vn"], ["twice"]))
    model = make_model(nodes, {"x": (np.float32, (4, 3)), "z": (np.int64, (2, 4, 2)), "n": (np.int8, (7,))},
                       [*outputs, "yz", "iz", "yn", "twice"])  # fmt: skip
    runs = [
        {"x": rng.integers(0, levels, (4, 3)).astype(np.float32), "z": rng.integers(0, levels, (2, 4, 2)),
         "n": rng.integers(-levels, levels, 7).astype(np.int8)}
        for levels in (1, 2, 4, 50)
    ]  # fmt: skip
    runs.append({"x": np.tile(np.array([[3, 1, 2]], np.float32), (4, 1)), "z": runs[0]["z"], "n": runs[0]["n"]})
    check(model, runs)


def nms_model() -> onnx.ModelProto:
    io = ["boxes", "scores", "most", "iou", "floor"]
    nodes = [
        helper.make_node("NonMaxSuppression", io, ["corners"]),
        helper.make_node("NonMaxSuppression", io, ["centers"], center_point_box=1),
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "two", "iou"], ["limited"]),  # no score floor
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "", "", "floor"], ["none"]),  # no limit: 0 boxes
    ]
    inputs = {"boxes": (np.float32, (2, 6, 4)), "scores": (np.float32, (2, 3, 6)), "most": (np.int64, (1,)),
              "iou": (np.float32, (1,)), "floor": (np.float32, ())}  # fmt: skip
    return make_model(nodes, inputs, ["corners", "centers", "limited", "none"], {"two": np.array([2], np.int64)})


def nms_feeds(most: int, iou: float, floor: float) -> dict[str, np.ndarray]:
    centers = rng.integers(0, 4, (2, 6, 2)).astype(np.float32)
    sizes = rng.integers(1, 4, (2, 6, 2)).astype(np.float32)
    boxes = np.concatenate([centers, centers + sizes], axis=-1)[..., [0, 1, 2, 3]]
    boxes[0, 1] = boxes[0, 0][[2, 3, 0, 1]]  # the same box with flipped corners
    scores = np.round(rng.random((2, 3, 6)), 1).astype(np.float32)  # ties: the lower index goes first
    return {"boxes": boxes, "scores": scores, "most": np.array([most], np.int64),
            "iou": np.array([iou], np.float32), "floor": np.array(floor, np.float32)}  # fmt: skip


def test_nonmaxsuppression_with_runtime_limits_and_thresholds():
    runs = [nms_feeds(10, 0.5, 0.0), nms_feeds(1, 0.3, 0.4), nms_feeds(0, 0.5, 0.0), nms_feeds(3, 0.0, 0.9),
            nms_feeds(6, 1.0, -1.0)]  # fmt: skip
    module = check(model := nms_model(), runs)
    sizes = {module.run(["corners"], feeds)[0].shape[0] for feeds in runs}
    assert len(sizes) >= 3, sizes  # the runs really differ in size
    program = build_program(load_model(model))
    assert program.outputs[2].shape == (2 * 3 * 2, 3) and program.outputs[3].shape == (0, 3)


def test_loop_evaluator_runs_the_same_programs_within_bounds():
    """The evaluator checks every access and fills fresh memory with garbage."""
    nodes = [
        helper.make_node("NonZero", ["x"], ["nz"]),
        helper.make_node("Compress", ["x", "c"], ["kept"], axis=1),
        helper.make_node("Unique", ["x"], ["u", "first", "inverse", "counts"], axis=0, sorted=0),
    ]
    model = make_model(nodes, {"x": (np.float32, (5, 3)), "c": (np.bool_, (3,))}, ["nz", "kept", "u", "first",
                                                                                    "inverse", "counts"])
    program = build_program(load_model(model))
    for levels in (1, 3):
        feeds = {"x": rng.integers(0, levels, (5, 3)).astype(np.float32), "c": rng.random(3) < 0.5}
        for got, want in zip(run_program(program, feeds), run_ort(model, feeds)):
            assert_close(got, want)
    nms = nms_model()
    feeds = nms_feeds(2, 0.4, 0.2)
    for got, want in zip(run_program(build_program(load_model(nms)), feeds), run_ort(nms, feeds)):
        assert_close(got, want)


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_char_p), ("rank", ctypes.c_int),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("nbytes", ctypes.c_size_t)]  # fmt: skip


def test_c_abi_reports_the_actual_output_shape(tmp_path):
    model = make_model([helper.make_node("NonZero", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])],
                       {"x": (np.float32, (3, 4))}, ["y", "z"])  # fmt: skip
    path = tmp_path / "nonzero.so"
    aic.compile(model, output=path)
    lib = ctypes.CDLL(str(path))
    lib.aic_create.restype = ctypes.c_void_p
    lib.aic_create.argtypes = [ctypes.c_int]
    lib.aic_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.aic_output_shape.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int64)]
    lib.aic_output_info.restype = ctypes.POINTER(TensorInfo)
    lib.aic_last_error.restype = ctypes.c_char_p
    lib.aic_signature.restype = ctypes.c_char_p
    lib.aic_destroy.argtypes = [ctypes.c_void_p]
    info = lib.aic_output_info(0).contents
    assert (info.rank, info.shape[0], info.shape[1], info.nbytes) == (2, 2, 12, 2 * 12 * 8)  # the upper bound
    outputs = json.loads(lib.aic_signature())["outputs"]
    assert outputs[0]["dynamic_dims"] == [[1, load_model(model).outputs[0].type.shape[1]]]
    assert "dynamic_dims" not in outputs[1]
    handle = lib.aic_create(1)
    dims = (ctypes.c_int64 * 2)()
    assert lib.aic_output_shape(handle, 0, dims) == 1  # AIC_ERROR_INVALID_ARGUMENT
    assert b"known only after aic_run" in lib.aic_last_error()
    assert lib.aic_output_shape(handle, 2, dims) == 1 and b"no output 2" in lib.aic_last_error()
    for x in (sparse((3, 4), 0.5), np.zeros((3, 4), np.float32), np.ones((3, 4), np.float32)):
        y, z = np.full(2 * 12, -1, np.int64), np.empty((3, 4), np.float32)
        ins, outs = (ctypes.c_void_p * 1)(x.ctypes.data), (ctypes.c_void_p * 2)(y.ctypes.data, z.ctypes.data)
        assert lib.aic_run(handle, ins, outs) == 0
        assert lib.aic_output_shape(handle, 0, dims) == 0
        want = np.array(np.nonzero(x))
        assert tuple(dims) == want.shape
        np.testing.assert_array_equal(y[: want.size].reshape(want.shape), want)  # C-contiguous at the start
        assert lib.aic_output_shape(handle, 1, dims) == 0 and tuple(dims) == (3, 4)
    lib.aic_destroy(handle)


def test_a_data_dependent_size_feeding_another_op_is_a_clear_error():
    model = make_model([helper.make_node("NonZero", ["x"], ["nz"]), helper.make_node("Transpose", ["nz"], ["t"])],
                       {"x": (np.float32, (3, 4))}, ["t"])  # fmt: skip
    graph = load_model(model)
    assert not is_static(graph)
    with pytest.raises(LoweringError, match=r"node 'Transpose.*input nz .* computed at run time by NonZero"):
        build_program(graph)
