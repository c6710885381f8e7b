"""Compile and run mutated models, one JSON line per model on stdout.

    python -m tests.fuzz.worker SEED FIRST COUNT

Each model is compiled by aic from its file and, when it compiles, run on random
inputs next to onnxruntime. Outcomes: "agree" (same outputs), "wrong" (different
outputs), "nonfinite" (outputs differ only where one of them is inf or nan),
"aic-only" (onnxruntime refuses what aic runs), "refused" (a clean aic
error), "unclear" (any other exception, or an aic error wrapping an internal one),
"big" (compiled; inputs or outputs too large to run here). The parent process
notices crashes and hangs: a "start" line is printed before each model.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

from .mutate import mutated_model

REPO = Path(__file__).resolve().parents[2]
AIC_ERRORS = {
    "FrontendError", "SizeError", "LoweringError", "OpError", "ModelLoadError", "RunError", "PassError",
    "CodegenError", "ScheduleError", "VerifyError", "PackageError", "LoopEvalError", "InterpreterError",
}  # fmt: skip
INTERNAL = re.compile(
    r"\b(IndexError|KeyError|TypeError|AttributeError|AssertionError|ZeroDivisionError|RecursionError|MemoryError|"
    r"UnboundLocalError|NameError|OverflowError|StopIteration|NotImplementedError|UnicodeDecodeError|"
    r"JSONDecodeError)\b|Traceback"
)
MAX_RUN_BYTES = 1 << 28  # inputs and outputs larger than this are compiled, not run
MEMORY_LIMIT = 6 << 30


def is_clean(err: BaseException) -> bool:
    """An error a user can act on: an aic error type, or a ValueError/TypeError/RuntimeError
    raised by aic's own code, whose message names no internal exception."""
    message = str(err)
    if not message.strip() or INTERNAL.search(message):
        return False
    if type(err).__name__ in AIC_ERRORS:
        return True
    if type(err) in (ValueError, TypeError, RuntimeError):
        frame = traceback.extract_tb(err.__traceback__)[-1].filename
        return frame.startswith(str(REPO)) and "site-packages" not in frame
    return False


def feeds_for(inputs, rng: np.random.Generator) -> dict[str, np.ndarray] | None:
    feeds = {}
    for t in inputs:
        shape = [d if isinstance(d, int) else 2 for d in t.shape]
        if int(np.prod(shape, dtype=object)) * t.dtype.itemsize > MAX_RUN_BYTES:
            return None
        if t.dtype == np.bool_:
            feeds[t.name] = np.asarray(rng.random(shape) < 0.5)
        elif t.dtype.kind in "iu":
            feeds[t.name] = rng.integers(0, 3, shape).astype(t.dtype)
        else:
            feeds[t.name] = rng.standard_normal(shape).astype(t.dtype)
    return feeds


def run_ort(data: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray] | None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception:
        return None


def same(ours: list[np.ndarray], theirs: list[np.ndarray]) -> str:
    """'' when the outputs agree, else why not."""
    if len(ours) != len(theirs):
        return f"{len(ours)} outputs, onnxruntime {len(theirs)}"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        b = np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"output {i}: {a.dtype}{list(a.shape)}, onnxruntime {b.dtype}{list(b.shape)}"
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        finite = np.isfinite(a64) & np.isfinite(b64)
        try:
            np.testing.assert_allclose(a64[finite], b64[finite], rtol=1e-3, atol=1e-4)
        except AssertionError as err:
            return f"output {i}: {str(err).strip().splitlines()[2][:200]}"
        if not np.array_equal(a64[~finite], b64[~finite], equal_nan=True):
            return "nonfinite"
    return ""


def check(seed: int, index: int, folder: Path) -> dict:
    import aic

    what, data = mutated_model(seed, index)
    path = folder / f"m{index}.onnx"
    path.write_bytes(data)
    result = {"index": index, "model": what}
    stage = "compile"
    try:
        module = aic.compile(path, num_threads=1)
        stage = "run"
        sizes = [np.prod([d if isinstance(d, int) else 1 for d in t.shape], dtype=object) * t.dtype.itemsize
                 for t in module.outputs]  # fmt: skip
        feeds = feeds_for(module.inputs, np.random.default_rng(index))
        if feeds is None or any(s > MAX_RUN_BYTES for s in sizes):
            return result | {"outcome": "big"}
        ours = module.run(None, feeds)
    except Exception as err:
        kind = "refused" if is_clean(err) else "unclear"
        message = f"{stage}: {type(err).__name__}: {str(err)[:300]}"
        if kind == "unclear":
            frames = traceback.extract_tb(err.__traceback__)[-3:]
            message += " @ " + " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames))
        return result | {"outcome": kind, "error": message}
    theirs = run_ort(data, feeds)
    if theirs is None:
        return result | {"outcome": "aic-only"}
    why = same(ours, theirs)
    if why == "nonfinite":  # only where an inf or a nan is involved (inf * 0 in padding, ...)
        return result | {"outcome": "nonfinite", "error": "outputs differ where one of them is inf or nan"}
    return result | ({"outcome": "wrong", "error": why} if why else {"outcome": "agree"})


def main() -> None:
    seed, first, count = (int(a) for a in sys.argv[1:4])
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    with tempfile.TemporaryDirectory(prefix="aic-fuzz-") as tmp:
        for index in range(first, first + count):
            print(json.dumps({"start": index}), flush=True)
            print(json.dumps(check(seed, index, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
