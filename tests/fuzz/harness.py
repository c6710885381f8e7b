"""Run many mutated models in worker processes; a crash or a hang costs one model.

    python -m tests.fuzz.harness [--models 2000] [--seed 0] [--jobs 2] [--batch 25] [--show unclear]

Each worker process (worker.py) compiles and runs a batch of models and prints a
"start" line before each; when a worker dies or a model exceeds its time, that model
is recorded as "crash" or "hang" and the batch goes on in a new process.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAILURES = ("crash", "hang", "wrong", "unclear")
STARTUP = 60.0  # seconds a worker may take to import aic, onnx and onnxruntime


def run_batch(seed: int, first: int, count: int, timeout: float) -> list[dict]:
    """Results of models first..first+count-1, restarting the worker after a crash or a hang."""
    results: list[dict] = []
    index = first
    while index < first + count:
        command = [sys.executable, "-m", "tests.fuzz.worker", str(seed), str(index), str(first + count - index)]
        worker = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert worker.stdout is not None
        lines = _Lines(worker.stdout.fileno())
        current, deadline = None, time.monotonic() + timeout + STARTUP
        while True:
            line = lines.next(deadline)
            if line is None:  # the current model ran past its time
                worker.kill()
                current = index if current is None else current
                results.append({"index": current, "outcome": "hang", "error": f"no result within {timeout:.0f} s"})
                index = current + 1
                break
            if line == "":  # the worker exited
                code = worker.wait()
                if current is not None and (not results or results[-1]["index"] != current):
                    results.append({"index": current, "outcome": "crash", "error": f"worker exited with {code}"})
                    index = current + 1
                else:
                    index = first + count
                break
            record = json.loads(line)
            if "start" in record:
                current, deadline = record["start"], time.monotonic() + timeout
            else:
                results.append(record)
        worker.wait()
    return results


class _Lines:
    """Lines of a pipe, read without buffering behind select's back."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, b""

    def next(self, deadline: float) -> str | None:
        """The next line; "" at the end of the stream; None when `deadline` passes first."""
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return ""
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


def fuzz(models: int, seed: int = 0, jobs: int = 2, batch: int = 25, timeout: float = 60.0) -> list[dict]:
    """Outcomes of `models` mutated models, in index order."""
    starts = range(0, models, batch)
    with ThreadPoolExecutor(jobs) as pool:
        parts = pool.map(lambda s: run_batch(seed, s, min(batch, models - s), timeout), starts)
        results = [r for part in parts for r in part]
    return sorted(results, key=lambda r: r["index"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per model")
    parser.add_argument("--show", nargs="*", default=list(FAILURES), help="outcomes to list one by one")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    args = parser.parse_args()
    start = time.perf_counter()
    results = fuzz(args.models, args.seed, args.jobs, args.batch, args.timeout)
    counts = Counter(r["outcome"] for r in results)
    for r in results:
        if r["outcome"] in args.show:
            print(f"{r['index']:6d} {r['outcome']:8s} {r.get('model', '')}: {r.get('error', '')}")
    unclear = counts["unclear"]
    print(f"{len(results)} models in {time.perf_counter() - start:.0f} s: {dict(sorted(counts.items()))}")
    print(f"unclear errors: {unclear}/{len(results)} ({100 * unclear / max(len(results), 1):.2f}%)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if any(counts[f] for f in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
