"""Export the benchmark models to ONNX, once: bench/models/<name>_<exporter>_op<opset>[_dyn].onnx.

    python -m bench.export_models [--models resnet50 gpt2] [--opsets 17 20] [--exporters dynamo torchscript]
                                  [--dynamic] [--force]

Existing files are kept unless --force. Torch runs on one thread. Each new export is run
with onnxruntime and checked against the torch module (max relative error under 1e-4).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from bench.models import MODELS, export, model_filename, torch_outputs

MODEL_DIR = Path(__file__).resolve().parent / "models"
EXPORTERS = {"dynamo": True, "torchscript": False}
TOLERANCE = 1e-4  # fp32, same math in a different order


def model_path(name: str, exporter: str, opset: int, dynamic: bool = False) -> Path:
    return MODEL_DIR / model_filename(name, EXPORTERS[exporter], opset, dynamic)


def check_against_torch(name: str, path: Path) -> str:
    """Run the export with onnxruntime and compare with torch; raise if they disagree."""
    feeds = MODELS[name].inputs()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    got = ort.InferenceSession(str(path), options).run(None, feeds)
    errors = [float(np.max(np.abs(g - w)) / np.max(np.abs(w))) for g, w in zip(got, torch_outputs(name, feeds))]
    if max(errors) > TOLERANCE:
        raise ValueError(f"onnxruntime differs from torch: max relative errors {errors}")
    return f"ok (vs torch: max rel err {max(errors):.1e})"


def export_all(
    names: list[str], exporters: list[str], opsets: list[int], dynamic: bool = False, force: bool = False
) -> dict[Path, str]:
    """Export every combination not yet on disk; returns path -> "ok"/"cached"/error message."""
    torch.set_num_threads(1)
    status: dict[Path, str] = {}
    for name in names:
        for exporter in exporters:
            for opset in opsets:
                path = model_path(name, exporter, opset, dynamic)
                if path.exists() and not force:
                    status[path] = "cached"
                    continue
                start = time.perf_counter()
                try:
                    export(name, path, opset, EXPORTERS[exporter], dynamic)
                    status[path] = check_against_torch(name, path)
                except Exception as err:  # report every failing export, keep going
                    path.unlink(missing_ok=True)
                    status[path] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:300]}"
                print(f"{path.name}: {status[path]} ({time.perf_counter() - start:.1f} s)", flush=True)
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--exporters", nargs="+", default=list(EXPORTERS), choices=list(EXPORTERS))
    parser.add_argument("--opsets", nargs="+", type=int, default=[17, 20])
    parser.add_argument("--dynamic", action="store_true", help="symbolic batch (and sequence) axes")
    parser.add_argument("--force", action="store_true", help="re-export files already present")
    args = parser.parse_args()
    status = export_all(args.models, args.exporters, args.opsets, args.dynamic, args.force)
    failed = [p.name for p, s in status.items() if s.startswith("failed")]
    if failed:
        raise SystemExit(f"{len(failed)} export(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
