"""The blocked channel layout (NCHW8c) against the plain NCHW kernels: A/B in one process, per model.

    python -m bench.blocked [--models mobilenet_v2 efficientnet_b0 resnet50 mobilenet_v3]
                            [--threads 1] [--seconds 2] [--models-dir DIR]

Each model (an exported ONNX file `<name>_dynamo_op20.onnx` in --models-dir, or a .onnx path) is
compiled twice, the `blocked-layout` pass on and off; the two modules and onnxruntime (ORT_ENABLE_ALL)
take turns (bench/int8.py `interleaved`). At 1 thread the time is the calling thread's CPU time
(robust on a busy machine; onnxruntime's pool of one runs on the caller), at 2 threads wall time.
Both outputs are compared with onnxruntime (max error relative to the output's max).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import onnx
import onnxruntime as ort
from aic.compiler.pipeline import compile_model
from aic.runtime.module import load_scratch

from bench.check_interp import ort_session, relative_error
from bench.int8 import interleaved
from bench.winograd import MODELS_DIR, feeds_of


def model_of(name: str, folder: Path) -> onnx.ModelProto:
    path = Path(name) if name.endswith(".onnx") else folder / f"{name}_dynamo_op20.onnx"
    return onnx.load(str(path))


def compare(label: str, model: onnx.ModelProto, threads: list[int], seconds: float) -> None:
    """Plain vs blocked modules of `model`, interleaved, at each thread count; errors against onnxruntime."""
    feeds = feeds_of(model)
    want = ort_session(model.SerializeToString()).run(None, feeds)
    for n in threads:
        modules = {"plain": load_scratch(compile_model(model, disable_passes=["blocked-layout"]), n),
                   "blocked": load_scratch(compile_model(model), n)}
        errors = {name: max(relative_error(a, b) for a, b in zip(m.run(None, feeds), want))
                  for name, m in modules.items()}
        peer = ort.SessionOptions()
        peer.intra_op_num_threads = n
        session = ort.InferenceSession(model.SerializeToString(), peer, providers=["CPUExecutionProvider"])
        runs = {k: (lambda f, m=m: m.run(None, f)) for k, m in modules.items()}
        runs["ort"] = lambda f, s=session: s.run(None, f)
        clock = time.thread_time if n == 1 else time.perf_counter
        med = interleaved(runs, feeds, seconds, clock)
        print(f"| {label} | {n} | {med['plain'] * 1e3:.2f} | {med['blocked'] * 1e3:.2f} | "
              f"{med['plain'] / med['blocked']:.2f} | {med['ort'] * 1e3:.2f} | {med['blocked'] / med['ort']:.2f} | "
              f"{errors['plain']:.1e} | {errors['blocked']:.1e} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=["mobilenet_v2", "efficientnet_b0", "resnet50"])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = p.parse_args()
    print("| model | threads | plain ms | blocked ms | speed-up | onnxruntime ms | blocked / onnxruntime | "
          "error plain | error blocked |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        compare(Path(name).stem, model_of(name, args.models_dir), args.threads, args.seconds)


if __name__ == "__main__":
    main()
