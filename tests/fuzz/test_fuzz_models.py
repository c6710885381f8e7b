"""Seeded, bounded fuzzing of the whole compiler: mutated models (mutate.py) compiled
and run in worker processes (worker.py, harness.py) with a time limit per model.

Every model must give a clean aic error or the outputs onnxruntime gives: never a
crash, a hang, a wrong result or an unclear exception. AIC_FUZZ_MODELS and
AIC_FUZZ_SEED change the run (`python -m tests.fuzz.harness` for long runs)."""

import os
from collections import Counter

from tests.fuzz.harness import FAILURES, fuzz

MODELS = int(os.environ.get("AIC_FUZZ_MODELS", "300"))
SEED = int(os.environ.get("AIC_FUZZ_SEED", "0"))


def test_mutated_models_are_refused_cleanly_or_agree_with_onnxruntime():
    results = fuzz(MODELS, seed=SEED, jobs=2, batch=25, timeout=60)
    assert [r["index"] for r in results] == list(range(MODELS))
    counts = Counter(r["outcome"] for r in results)
    print(f"fuzz seed {SEED}: {dict(sorted(counts.items()))}")
    assert counts["agree"] >= MODELS // 20, "too few mutants compile and run: the fuzzer tests too little"
    bad = [f"{r['index']} {r['outcome']} {r.get('model', '')}: {r.get('error', '')}" for r in results
           if r["outcome"] in FAILURES]  # fmt: skip
    assert not bad, "\n".join(bad)
