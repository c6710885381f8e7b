"""Models compiled for cuda with ranges of sizes: one artifact run in the emulator at several sizes
(min and max included), compared with onnxruntime; run-time grids and guards in the generated code;
bad sizes refused as on the CPU. Where a GPU is present, the same artifact runs on it too."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from aic.runtime.cuda_module import run_device_pointers
from onnx import TensorProto, helper, numpy_helper

from tests.api.test_dynamic_shapes import CASES as DYNAMIC_CASES
from tests.onnx_util import assert_close, run_ort
from tests.test_models_interp import cnn

from .conftest import compile_cuda, emulated, needs_gpu, needs_nvrtc

pytestmark = needs_nvrtc
ASSETS = Path(__file__).resolve().parents[1] / "assets"
F32 = np.float32
WIDTH = 32
BLOCK_RANGES = {"batch": (1, 3), "seq": (1, 48, 32)}


def transformer_block(rng: np.random.Generator) -> onnx.ModelProto:
    """Pre-norm single-head attention and an MLP over x[batch, seq, 32]: matmuls, a softmax along the
    run-time sequence, layer norms, residual adds."""

    def w(name: str, *shape: int, scale: float = 0.2) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(F32), name)

    ln = [w("g", WIDTH, scale=1.0), w("b", WIDTH)]
    mk = helper.make_node
    nodes = [
        mk("LayerNormalization", ["x", "g", "b"], ["n"], axis=-1),
        mk("MatMul", ["n", "wq"], ["q"]), mk("MatMul", ["n", "wk"], ["k"]), mk("MatMul", ["n", "wv"], ["v"]),
        mk("Transpose", ["k"], ["kt"], perm=[0, 2, 1]), mk("MatMul", ["q", "kt"], ["s"]),
        mk("Mul", ["s", "scale"], ["ss"]), mk("Softmax", ["ss"], ["p"], axis=-1), mk("MatMul", ["p", "v"], ["a"]),
        mk("Add", ["x", "a"], ["r"]), mk("LayerNormalization", ["r", "g", "b"], ["n2"], axis=-1),
        mk("MatMul", ["n2", "w1"], ["h"]), mk("Relu", ["h"], ["hr"]), mk("MatMul", ["hr", "w2"], ["m"]),
        mk("Add", ["r", "m"], ["y"]),
    ]  # fmt: skip
    weights = [*ln, w("wq", WIDTH, WIDTH), w("wk", WIDTH, WIDTH), w("wv", WIDTH, WIDTH),
               w("w1", WIDTH, 2 * WIDTH), w("w2", 2 * WIDTH, WIDTH),
               numpy_helper.from_array(np.array(WIDTH**-0.5, F32), "scale")]  # fmt: skip
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", WIDTH])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", WIDTH])
    graph = helper.make_graph(nodes, "block", [x], [y], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def block(tmp_path_factory):
    model = transformer_block(np.random.default_rng(0))
    path = compile_cuda(model, tmp_path_factory.mktemp("dyn"), "block", "cuda -arch=sm_80,sm_90 -fp32-exact",
                        shapes=BLOCK_RANGES)  # fmt: skip
    return model, emulated(path)


def test_transformer_block_runs_at_every_size_from_one_artifact(block):
    model, module = block
    rng = np.random.default_rng(1)
    for batch, seq in [(1, 1), (2, 17), (3, 48), (1, 33)]:
        x = rng.standard_normal((batch, seq, WIDTH)).astype(F32)
        (got,) = module.run(None, {"x": x})
        assert got.shape == module.output_shape(0) == (batch, seq, WIDTH)  # aic_output_shape: the last run's
        assert_close(got, run_ort(model, {"x": x})[0], 1e-4, 1e-4, f"block at batch {batch}, seq {seq}")


def test_transformer_block_kernels_take_run_time_sizes(block):
    """Tiled products, block reductions (the softmax's along the run-time sequence) and flat elementwise
    launches, each grid an expression of the dims that the host evaluates; NVRTC built every kernel for
    sm_80 and sm_90."""
    _, module = block
    kernels = module.metadata["cuda"]["kernels"]
    rules = {k["rule"] for k in kernels}
    assert {"tiled-matmul", "row-reduction", "elementwise"} <= rules
    softmax = next(k for k in kernels if "softmax" in k["name"])
    assert softmax["rule"] == "row-reduction"
    for k in kernels:
        assert set(k["ptxas"]) == {"sm_80", "sm_90"} and all(f["registers"] > 0 for f in k["ptxas"].values())
        if k["rule"] != "single-thread":
            assert k["grid"][0] == 0 and re.search(r"d\[[01]\]", k["grid_expr"][0]), k
    source = module._lib.aic_cuda_source
    source.restype = ctypes.c_char_p
    text = source().decode()
    assert "const int64_t dim_seq = aic_imin<int64_t>(aic_imax<int64_t>(dims0[1LL], 1LL), 48LL);" in text
    assert re.search(r"if \(\(gid < \(.*dim_seq.*\)\)\) \{", text), "the flat index is guarded by the run-time total"
    projection = text[text.index("k1_matmul(") :].split('extern "C"')[0]  # x[batch, seq, 32] @ w
    assert not re.search(r"aic_(div|mod)<int64_t>\([^;]*, dim_seq\)", projection), "rows (batch, seq): one range"
    assert re.search(r"aic_(div|mod)<int64_t>\([^;]*, dim_seq\)", text), "(elsewhere such divisions remain)"


def test_out_of_range_sizes_are_refused_as_on_the_cpu(block):
    _, module = block
    with pytest.raises(ValueError, match=r"input 'x' dim 1 \('seq'\) is 49, outside the range 1..48 the model was"):
        module.run(None, {"x": np.zeros((1, 49, WIDTH), F32)})
    lib, handle = module._lib, module._handle
    x, out = np.zeros((4, 2, WIDTH), F32), np.zeros((4, 2, WIDTH), F32)
    ins, outs = (ctypes.c_void_p * 1)(x.ctypes.data), (ctypes.c_void_p * 1)(out.ctypes.data)
    dims = (ctypes.c_int64 * 3)()
    assert lib.aic_run_dims(handle, (ctypes.c_int64 * 3)(4, 2, WIDTH), ins, outs, dims) == 1
    assert re.search(r"input 0 \('x'\) dim 0 \('batch'\) is 4, outside the range 1..3", lib.aic_last_error().decode())
    with pytest.raises(RuntimeError, match=r"dim 2 is 31; the model takes only 32"):
        run_device_pointers(lib, handle, [x.ctypes.data], [out.ctypes.data], dims=[1, 2, 31])


def test_device_entry_takes_the_input_dims(block):
    """aic_run_device_dims (device arrays: host memory in the emulator) at the given sizes."""
    model, module = block
    x = np.random.default_rng(2).standard_normal((2, 5, WIDTH)).astype(F32)
    out = np.full((2, 5, WIDTH), np.nan, F32)
    run_device_pointers(module._lib, module._handle, [x.ctypes.data], [out.ctypes.data], dims=[2, 5, WIDTH])
    assert_close(out, run_ort(model, {"x": x})[0], 1e-4, 1e-4, "device entry")


def test_graph_replay_follows_the_sizes(block):
    """Runs alternating sizes and repeating one size (a CUDA graph is captured and replayed only at
    the sizes it was captured at) give each size's own result."""
    model, module = block
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(s).astype(F32) for s in [(1, 7, WIDTH), (1, 7, WIDTH), (2, 3, WIDTH), (1, 7, WIDTH)]]
    for x in xs:
        assert_close(module.run(None, {"x": x})[0], run_ort(model, {"x": x})[0], 1e-4, 1e-4, f"shape {x.shape}")


def test_cnn_with_dynamic_batch(tmp_path):
    rng = np.random.default_rng(4)
    model = cnn(rng)
    module = emulated(compile_cuda(model, tmp_path, "cnn", "cuda -arch=sm_80 -fp32-exact", shapes={"batch": (1, 4, 2)}))
    assert "implicit-gemm" in {k["rule"] for k in module.metadata["cuda"]["kernels"]}
    for batch in (1, 4):
        x = rng.standard_normal((batch, 3, 16, 16)).astype(F32)
        (got,) = module.run(None, {"x": x})
        assert got.shape == (batch, 5)
        assert_close(got, run_ort(model, {"x": x})[0], 1e-4, 1e-5, f"cnn at batch {batch}")


def test_elementwise_takes_vectors_where_run_time_strides_are_multiples_of_four(tmp_path):
    """x[batch, seq, 16] + b, sigmoid: the strides 16 * seq and 16 keep 16-byte accesses, and (batch, seq)
    are walked as one range: the flat index divides by no run-time size."""
    model, ranges, sizes = DYNAMIC_CASES["elementwise_broadcast"]
    module = emulated(compile_cuda(model, tmp_path, "ew", shapes=ranges))
    assert module.metadata["cuda"]["kernels"][0]["rule"] == "elementwise-vec4"
    module._lib.aic_cuda_source.restype = ctypes.c_char_p
    kernel = module._lib.aic_cuda_source().decode().split('extern "C"')[1]
    assert "aic_div" not in kernel and "aic_mod" not in kernel
    rng = np.random.default_rng(5)
    for shapes in sizes:
        feeds = {name: rng.standard_normal(shape).astype(F32) for name, shape in shapes.items()}
        assert_close(module.run(None, feeds)[0], run_ort(model, feeds)[0], 1e-5, 1e-6, f"at {shapes}")


def test_gpt2_export_with_dynamic_batch_and_sequence(tmp_path):
    """A torch export (Shape/Gather/Concat arithmetic on the sizes, an attention mask) compiled once."""
    path = ASSETS / "gpt2_tiny_dyn.onnx"
    target = "cuda -arch=sm_80 -fp32-exact"
    module = emulated(compile_cuda(str(path), tmp_path, "gpt2", target, shapes={"batch": (1, 3), "seq": (1, 96, 32)}))
    for batch, seq in [(1, 1), (3, 96)]:
        ids = np.random.default_rng(seq).integers(0, 100, (batch, seq))
        mask = (np.arange(seq)[None, :] < seq - np.arange(batch)[:, None]).astype(np.int64)  # padded rows
        feeds = {"input_ids": ids, "attention_mask": mask}
        assert_close(module.run(None, feeds)[0], run_ort(onnx.load(path), feeds)[0], 1e-4, 1e-4, f"at {batch}, {seq}")


def test_transformer_block_on_tensor_cores(tmp_path):
    """The TF32 tiles with run-time M, N and K (the products with the sequence)."""
    model = transformer_block(np.random.default_rng(0))
    module = emulated(compile_cuda(model, tmp_path, "block_tf32", shapes=BLOCK_RANGES))
    assert "tiled-matmul-tf32" in {k["rule"] for k in module.metadata["cuda"]["kernels"]}
    rng = np.random.default_rng(6)
    for batch, seq in [(1, 1), (3, 48)]:
        x = rng.standard_normal((batch, seq, WIDTH)).astype(F32)
        tolerance = (2e-2, 2e-2)  # TF32 keeps 10 mantissa bits of each factor
        assert_close(module.run(None, {"x": x})[0], run_ort(model, {"x": x})[0], *tolerance, f"at {batch}, {seq}")


@needs_gpu
def test_gpu_runs_every_size_and_replays_graphs_per_size(block):
    import aic

    model, emulated_module = block
    module = aic.load(emulated_module.path)
    rng = np.random.default_rng(7)
    for batch, seq in [(1, 1), (3, 48), (3, 48), (3, 48), (2, 17), (3, 48)]:
        x = rng.standard_normal((batch, seq, WIDTH)).astype(F32)
        assert_close(module.run(None, {"x": x})[0], run_ort(model, {"x": x})[0], 1e-4, 1e-4, f"GPU at {x.shape}")
    cupy = pytest.importorskip("cupy")
    x = rng.standard_normal((2, 9, WIDTH)).astype(F32)
    (y,) = module.run(None, {"x": cupy.asarray(x)})
    assert isinstance(y, cupy.ndarray) and y.shape == (2, 9, WIDTH)
    assert_close(cupy.asnumpy(y), run_ort(model, {"x": x})[0], 1e-4, 1e-4, "GPU device arrays")
