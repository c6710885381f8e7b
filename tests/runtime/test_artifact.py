"""The model .so as an artifact: its dependencies and exports, metadata, input
validation, threads, CPU-feature checks at load, a fresh process without the
compiler, the C example, and cross-compilation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from aic.codegen.llvm import compile_program
from aic.codegen.target import Target
from aic.ir.dtypes import DType
from aic.ir.loop import Bin, Buffer, Call, Cast, Const, For, ForKind, Load, Seq, Store, Var
from aic.runtime.module import ModelLoadError, load
from aic.runtime.package import export_link_inputs, package_program

from tests.codegen.util import Case, build_program

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_LIBS = {"libc.so.6", "libm.so.6", "libpthread.so.0", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}


def sample_program():
    """y[i, j] = log(x[i, j] + 2) * w[j] + ids[i]  (2x3, a weight, a libm call, a parallel loop)."""
    f32 = DType.float32
    x, w, y, flags = Buffer("x", f32, 6), Buffer("w", f32, 3), Buffer("y", f32, 6), Buffer("positive", DType.bool, 6)
    ids = Buffer("ids", DType.int64, 2)
    i, j = Var("i"), Var("j")
    xij = Load(x, i * 3 + j)
    value = Call("log", (xij + Const(2.0, f32),)) * Load(w, j) + Cast(f32, Load(ids, i))
    positive = Bin("gt", xij, Const(0.0, f32))
    row = For(j, Const(3), Seq([Store(y, i * 3 + j, value), Store(flags, i * 3 + j, positive)]))
    body = For(i, Const(2), row, ForKind.PARALLEL)
    case = Case("m", body, {x: np.zeros((2, 3)), ids: np.zeros(2)}, [y, flags], {w: np.array([1.0, 2.0, 3.0])})
    return build_program([case])


def expected(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return (np.log(x + 2) * np.array([1, 2, 3], np.float32) + ids[:, None]).ravel().astype(np.float32)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    program = sample_program()
    target = Target.parse("llvm")
    code = compile_program(program, target, 2)
    return package_program(program, code.object, target, tmp_path_factory.mktemp("artifact") / "model.so")


def feeds(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"m.x": rng.uniform(-1, 1, (2, 3)).astype(np.float32), "m.ids": np.array([5, -7], dtype=np.int64)}


def test_runs_and_describes_itself(model_path, rng):
    m = load(model_path, num_threads=2)
    f = feeds(rng)
    y, positive = m.run(None, f)
    np.testing.assert_allclose(y.ravel(), expected(f["m.x"], f["m.ids"]), rtol=1e-6)
    np.testing.assert_array_equal(positive.ravel(), f["m.x"].ravel() > 0)
    (only,) = m.run(["m.positive"], f)
    np.testing.assert_array_equal(only, positive)
    assert [(t.name, t.shape, t.dtype, t.type) for t in m.get_inputs()] == [
        ("m.x", [2, 3], np.dtype(np.float32), "tensor(float)"),
        ("m.ids", [2], np.dtype(np.int64), "tensor(int64)"),
    ]
    assert [t.name for t in m.outputs] == ["m.y", "m.positive"] and m.outputs[1].type == "tensor(bool)"
    meta = m.metadata
    assert meta["target"]["triple"] == Target.parse("llvm").triple and "+sse2" in meta["target"]["features"]
    assert meta["aic_version"] and meta["opt_level"] == 2 and meta["weights_bytes"] == 12


def test_depends_only_on_libc_libm_libpthread(model_path):
    dynamic = subprocess.run(["readelf", "-d", str(model_path)], capture_output=True, text=True, check=True).stdout
    needed = {line.split("[")[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line}
    assert "libm.so.6" in needed  # logf
    assert needed <= ALLOWED_LIBS, needed
    symbols = subprocess.run(
        ["nm", "-D", "--defined-only", str(model_path)], capture_output=True, text=True, check=True
    ).stdout.split()
    exported = {s for s in symbols[2::3]}
    assert exported == {
        "aic_abi_version", "aic_signature", "aic_num_inputs", "aic_num_outputs", "aic_input_info",
        "aic_output_info", "aic_create", "aic_num_threads", "aic_run", "aic_run_shaped", "aic_run_dims",
        "aic_output_shape",
        "aic_last_error", "aic_destroy", "aic_profile_enable", "aic_profile_events",
    }  # fmt: skip


X, IDS = np.zeros((2, 3), np.float32), np.zeros(2, np.int64)


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ({"m.x": X}, r"missing input\(s\): m.ids \(int64\[2\]\)"),
        (
            {"m.x": X, "m.ids": IDS, "z": 1},
            r"unknown input\(s\) \['z'\]; the model's inputs are m.x \(float32\[2, 3\]\)",
        ),
        ({"m.x": X.astype(np.float64), "m.ids": IDS}, "'m.x' has dtype float64; the model expects float32"),
        ({"m.x": X.reshape(3, 2), "m.ids": IDS}, r"'m.x' has shape \[3, 2\]; the model expects \[2, 3\] \(float32\)"),
    ],
)
def test_bad_inputs_raise_clear_value_errors(model_path, feed, message):
    m = load(model_path)
    with pytest.raises(ValueError, match=message):
        m.run(None, feed)


def test_bad_calls(model_path, rng):
    m = load(model_path)
    with pytest.raises(ValueError, match=r"unknown output\(s\) \['nope'\]; the model's outputs are m.y"):
        m.run(["nope"], feeds(rng))
    with pytest.raises(TypeError, match="input_feed must be a mapping"):
        m.run(None, [np.zeros(3)])
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        load(model_path, num_threads=0)
    with pytest.raises(ModelLoadError, match="no such model file"):
        load(model_path.with_name("missing.so"))
    not_a_model = model_path.with_name("garbage.so")
    not_a_model.write_bytes(b"not an ELF file")
    with pytest.raises(ModelLoadError, match="too small to be a shared object"):
        load(not_a_model)
    m.close()
    with pytest.raises(ValueError, match="closed"):
        m.run(None, feeds(rng))
    # array-likes other than ndarrays are converted to the expected dtype
    m = load(model_path)
    (y, _) = m.run(None, {"m.x": [[0.5, 0.1, 0.2], [0.3, 0.4, 0.9]], "m.ids": [1, 2]})
    np.testing.assert_allclose(y.ravel(), expected(np.array([[0.5, 0.1, 0.2], [0.3, 0.4, 0.9]]), np.array([1, 2])),
                               rtol=1e-6)  # fmt: skip


def test_model_rebuilt_at_the_same_path_loads_the_new_version(tmp_path):
    i, y = Var("i"), Buffer("y", DType.int64, 4)
    path = tmp_path / "same.so"
    target = Target.parse("llvm")
    got = []
    for value in (1, 2):
        program = build_program([Case("c", For(i, Const(4), Store(y, i, Const(value))), {}, [y])])
        package_program(program, compile_program(program, target, 0).object, target, path)
        got.append(load(path).run(None, {})[0].tolist())
    assert got == [[1] * 4, [2] * 4]


def test_threads_argument_environment_and_concurrent_callers(model_path, rng):
    assert load(model_path, num_threads=3).num_threads == 3
    assert load(model_path, num_threads=1).num_threads == 1
    m = load(model_path, num_threads=2)
    f = feeds(rng)
    want = expected(f["m.x"], f["m.ids"])
    errors = []

    def hammer() -> None:
        for _ in range(200):
            if not np.allclose(m.run(["m.y"], f)[0].ravel(), want, rtol=1e-6):
                errors.append("mismatch")

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_model_loaded_before_fork_runs_in_the_child(model_path, rng):
    """A forked child has no worker threads: the caller runs every chunk itself, without waiting."""
    m = load(model_path, num_threads=2)
    f = feeds(rng)
    want = m.run(["m.y"], f)[0]
    pid = os.fork()
    if pid == 0:  # the child
        ok = np.array_equal(m.run(["m.y"], f)[0], want)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def test_fresh_process_loads_without_the_compiler(model_path):
    proc = _python(f"""
        import sys, numpy as np, aic
        m = aic.load({str(model_path)!r})
        y, _ = m.run(None, {{"m.x": np.ones((2, 3), np.float32), "m.ids": np.array([1, 2])}})
        heavy = sorted(n for n in sys.modules if n.startswith(("llvmlite", "onnx", "aic.compiler", "aic.frontend",
                                                                 "aic.codegen")))
        print(m.num_threads, float(y[5]), heavy)
    """)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    threads, value, heavy = proc.stdout.split(" ", 2)
    assert int(threads) >= 1
    assert float(value) == pytest.approx(np.log(3) * 3 + 2, rel=1e-6)
    assert heavy.strip() == "[]"
    proc = _python(f"import aic; print(aic.load({str(model_path)!r}).num_threads)", {"AIC_NUM_THREADS": "3"})
    assert proc.stdout.strip() == "3", proc.stderr
    proc = _python(f"import aic; aic.load({str(model_path)!r})", {"AIC_NUM_THREADS": "many"})
    assert "AIC_NUM_THREADS='many' is not a thread count" in proc.stderr


def _cpu_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


@pytest.mark.skipif(not Target.parse("llvm").triple.startswith("x86_64"), reason="the CPU-feature check is x86-only")
def test_artifact_for_missing_cpu_features_fails_to_load(tmp_path):
    flags = _cpu_flags()
    lacking = next((f for f, flag in [("avx512vp2intersect", "avx512_vp2intersect"), ("avx512fp16", "avx512_fp16"),
                                       ("avx512f", "avx512f")] if flag not in flags), None)  # fmt: skip
    if lacking is None:
        pytest.skip("this CPU has every feature the test could require")
    target = Target.parse(f"llvm -mcpu=x86-64 -mattr=+sse2,+{lacking}")
    program = sample_program()
    path = package_program(program, compile_program(program, target, 1).object, target, tmp_path / "m.so")
    message = rf"compiled for CPU 'x86-64' with feature \+{lacking}, which this CPU lacks"
    with pytest.raises(ModelLoadError, match=message):
        load(path)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_example_runs_the_model(model_path, tmp_path):
    exe = tmp_path / "run_model"
    build = subprocess.run(
        ["gcc", "-O2", "-Wall", "-Werror", f"-I{ROOT / 'runtime'}", str(ROOT / "examples" / "run_model.c"),
         "-o", str(exe), "-ldl", "-lm"], capture_output=True, text=True)  # fmt: skip
    assert build.returncode == 0, build.stderr
    x = np.array([[0.5, 1, 2], [-1, 0, 3]], np.float32)
    ids = np.array([1, 2], np.int64)
    x.tofile(tmp_path / "x.raw")
    ids.tofile(tmp_path / "ids.raw")
    run = subprocess.run([str(exe), str(model_path), "-t", "2", str(tmp_path / "x.raw"), str(tmp_path / "ids.raw")],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "input m.x: float32[2,3]" in run.stdout and "on 2 thread(s)" in run.stdout
    y = expected(x, ids)
    assert f"min {y.min():.6g} max {y.max():.6g} mean {y.astype(np.float64).mean():.6g}" in run.stdout
    bad = subprocess.run([str(exe), str(model_path), str(tmp_path / "ids.raw")], capture_output=True, text=True)
    assert bad.returncode == 1 and "must hold exactly 24 bytes for input m.x" in bad.stderr


def test_cross_compile_to_aarch64_emits_an_object(tmp_path):
    from aic.codegen.llvm import target_machine

    target = Target.parse("llvm -mtriple=aarch64-unknown-linux-gnu -mcpu=neoverse-n1")
    try:
        target_machine(target, 2)
    except ValueError as err:
        pytest.skip(f"LLVM lacks the AArch64 target: {err}")
    program = sample_program()
    code = compile_program(program, target, 2)
    assert code.object[:4] == b"\x7fELF" and int.from_bytes(code.object[18:20], "little") == 183  # EM_AARCH64
    assert 'target triple = "aarch64-unknown-linux-gnu"' in code.llvm_ir
    folder = export_link_inputs(program, code.object, target, tmp_path / "cross")
    assert {p.name for p in folder.iterdir()} >= {"kernels.o", "weights.bin", "model.s", "aic_runtime.c", "build.sh"}
    assert "aarch64-linux-gnu-gcc" in (folder / "build.sh").read_text()
    assert '.asciz "neoverse-n1"' in (folder / "model.s").read_text()
