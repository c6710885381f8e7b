"""The pass manager: optimisation levels, fixpoints, timing, reports, IR dumps.

Levels are explicit lists of stages (`LEVELS`); a stage runs its passes in
order, again and again until a whole round changes nothing (at most MAX_ROUNDS):

- ``-O0``: no pass.
- ``-O1``: cleanup and folding: constant folding (shape arithmetic included),
  no-op removal, CSE, dead code.
- ``-O2`` (default): O1, then recognition of composite patterns (GELU,
  LayerNorm, Softmax, attention, SiLU, HardSwish), batch-norm and affine-constant folding
  into Conv/Gemm/MatMul, algebraic simplification and transpose/reshape
  sinking (through reductions and Pad too; channel MLPs of channels-first maps
  kept channels-first), then folding again (the
  per-channel constants sinking brought next to a Conv, zero Pads into the
  Conv reading them), each stage followed by cleanup.
- ``-O3``: the O2 stages, repeated as a whole until nothing changes, so that
  rewrites one stage enables in an earlier one are found. There is no
  target-specific or compile-time-costly pass yet.

`optimize` copies the graph, runs the pipeline and returns a `Report` with a
record per pass run (nodes before/after, the rules applied, op count changes,
time). `AIC_DUMP_IR=DIR` writes the IR text before the first pass
(000_input.txt) and after every pass run (001_<pass>.txt, ...);
`AIC_DEBUG>=1` prints each record to stderr.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aic.ir import Graph, print_graph, verify
from aic.ir.graph_edit import clone_graph

from .blocked_layout import blocked_layout
from .channels_first import channels_first
from .cse import eliminate_common_subexpressions
from .dead_code import eliminate_dead_code
from .fold_affine import fold_affine_constants
from .fold_batchnorm import fold_batchnorm
from .fold_constants import fold_constants
from .fold_pad import fold_pad
from .fuse_activations import fuse_activations
from .fuse_attention import fuse_attention
from .fuse_expand import fuse_expand
from .fuse_gelu import fuse_gelu
from .fuse_layernorm import fuse_layernorm
from .fuse_qdq import fuse_qdq
from .fuse_softmax import fuse_softmax
from .noops import remove_noops
from .rewrite import recording
from .simplify_arith import simplify_arithmetic
from .simplify_chains import simplify_chains
from .sink_layout import sink_layout
from .sink_transpose import sink_transpose
from .split_dynamic_quantize import split_dynamic_quantize
from .split_recurrence import split_recurrence


class PassError(RuntimeError):
    """A pass failed, or left a graph the verifier rejects."""


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[..., Graph]  # (graph, **options)

    @property
    def summary(self) -> str:
        """The first line of the pass's module docstring."""
        doc = (inspect.getmodule(self.run).__doc__ or "").strip()  # type: ignore[union-attr]
        return doc.splitlines()[0].rstrip(".") if doc else self.name


PASSES: dict[str, Pass] = {
    p.name: p
    for p in (
        Pass("fold-constants", fold_constants),
        Pass("remove-noops", remove_noops),
        Pass("cse", eliminate_common_subexpressions),
        Pass("dead-code", eliminate_dead_code),
        Pass("fuse-gelu", fuse_gelu),
        Pass("fuse-layernorm", fuse_layernorm),
        Pass("fuse-softmax", fuse_softmax),
        Pass("fuse-attention", fuse_attention),
        Pass("fuse-activations", fuse_activations),
        Pass("fuse-qdq", fuse_qdq),
        Pass("fold-batchnorm", fold_batchnorm),
        Pass("fold-affine", fold_affine_constants),
        Pass("fold-pad", fold_pad),
        Pass("simplify-arith", simplify_arithmetic),
        Pass("simplify-chains", simplify_chains),
        Pass("sink-layout", sink_layout),
        Pass("sink-transpose", sink_transpose),
        Pass("channels-first", channels_first),
        Pass("blocked-layout", blocked_layout),
        Pass("fuse-expand", fuse_expand),
        Pass("split-recurrence", split_recurrence),
        Pass("split-dynamic-quantize", split_dynamic_quantize),
    )
}


@dataclass(frozen=True)
class Stage:
    passes: tuple[str, ...]
    fixpoint: bool = True


CLEANUP = ("fold-constants", "remove-noops", "cse", "dead-code")
FUSE = ("fuse-gelu", "fuse-layernorm", "fuse-softmax", "fuse-activations")
O2_STAGES = (
    Stage(("fuse-qdq",), fixpoint=False),  # before folding turns small dequantized weights into floats
    Stage(CLEANUP),
    # patterns first: simplification would rewrite their spelling (Pow(d, 2) -> d*d is still matched)
    Stage(FUSE, fixpoint=False),
    Stage(("fold-batchnorm", "fold-affine", *CLEANUP)),
    Stage(("simplify-arith", "simplify-chains", "sink-layout", "sink-transpose", "channels-first", *CLEANUP)),
    # sinking moves per-channel constants next to the Conv/Gemm they scale (NHWC models): fold them now
    Stage(("fold-batchnorm", "fold-affine", "fold-pad", *CLEANUP)),
    # once the graph is final: small-map convolution chains on the blocked channel layout (NCHW8c)
    Stage(("blocked-layout", "fuse-expand", *CLEANUP)),
    # last: the scale and the mask of an attention are constants and plain Adds only once folded; then the
    # masks it sums (T5's position bias + padding mask, the same in every layer) are computed once
    Stage(("fuse-attention", "cse", "dead-code"), fixpoint=False),
)
LEVELS: dict[int, tuple[Stage, ...]] = {0: (), 1: (Stage(CLEANUP),), 2: O2_STAGES, 3: O2_STAGES}
REPEAT_WHOLE = frozenset({3})
MAX_ROUNDS = 8


@dataclass
class PassRecord:
    """One run of one pass."""

    name: str
    stage: int
    round: int
    nodes_before: int
    nodes_after: int
    rules: dict[str, int]
    ops_delta: dict[str, int]
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(self.rules)

    def changes(self) -> str:
        """What the pass did, in words."""
        if not self.rules:
            return "no change"
        rules = ", ".join(f"{rule} x{n}" if n > 1 else rule for rule, n in sorted(self.rules.items()))
        ops = ", ".join(f"{op} {d:+d}" for op, d in sorted(self.ops_delta.items()))
        return f"{rules}; ops: {ops}" if ops else rules

    def line(self) -> str:
        return (
            f"[{self.stage}.{self.round}] {self.name:<18} {self.nodes_before:>5} -> {self.nodes_after:<5} "
            f"{self.seconds * 1e3:8.2f} ms  {self.changes()}"
        )


@dataclass
class Report:
    level: int
    nodes_before: int
    nodes_after: int = 0
    seconds: float = 0.0
    records: list[PassRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def by_pass(self) -> dict[str, tuple[int, float, Counter[str]]]:
        """Per pass name: runs, total seconds, rules applied."""
        out: dict[str, tuple[int, float, Counter[str]]] = {}
        for r in self.records:
            runs, seconds, rules = out.get(r.name, (0, 0.0, Counter()))
            out[r.name] = (runs + 1, seconds + r.seconds, rules + Counter(r.rules))
        return out

    def format(self, verbose: bool = False) -> str:
        """A table per pass (or per pass run with `verbose`)."""
        head = (
            f"-O{self.level}: {self.nodes_before} -> {self.nodes_after} nodes in {self.seconds * 1e3:.1f} ms, "
            f"{len(self.records)} pass runs"
        )
        lines = [head]
        if verbose:
            lines += [r.line() for r in self.records]
        else:
            for name, (runs, seconds, rules) in self.by_pass().items():
                what = ", ".join(f"{rule} x{n}" if n > 1 else rule for rule, n in sorted(rules.items()))
                lines.append(f"  {name:<18} {runs:>3} runs {seconds * 1e3:8.2f} ms  {what or 'no change'}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def op_histogram(graph: Graph) -> Counter[str]:
    return Counter(node.op for node in graph.walk())


def pipeline(
    level: int, disable: Iterable[str] = (), enable: Iterable[str] = (), passes: Sequence[str] | None = None
) -> tuple[Stage, ...]:
    """The stages run at `level` (or the given `passes` as one fixpoint stage),
    with the `enable`d passes the level lacks as a last fixpoint stage, and
    without the `disable`d ones."""
    disable, enable = set(disable), list(enable)
    unknown = sorted((disable | set(enable) | set(passes or ())) - set(PASSES))
    if unknown:
        raise ValueError(f"unknown pass(es) {unknown}; known: {sorted(PASSES)}")
    if passes is not None:
        stages: tuple[Stage, ...] = (Stage(tuple(passes)),)
    elif level in LEVELS:
        stages = LEVELS[level]
    else:
        raise ValueError(f"optimisation level must be one of {sorted(LEVELS)}, got {level}")
    present = {p for s in stages for p in s.passes}
    stages += (Stage(tuple(p for p in enable if p not in present)),)
    kept = (Stage(tuple(p for p in s.passes if p not in disable), s.fixpoint) for s in stages)
    return tuple(s for s in kept if s.passes)


def describe_pipeline(
    level: int, disable: Iterable[str] = (), enable: Iterable[str] = (), passes: Sequence[str] | None = None
) -> str:
    """The passes `optimize` would run, stage by stage, with their summaries."""
    repeats = level in REPEAT_WHOLE and passes is None
    lines = [f"-O{level}" + (" (the whole pipeline repeats until nothing changes)" if repeats else "")]
    for index, stage in enumerate(pipeline(level, disable, enable, passes), 1):
        lines.append(f"stage {index}" + (" (to a fixpoint)" if stage.fixpoint else ""))
        lines += [f"  {name:<18} {PASSES[name].summary}" for name in stage.passes]
    return "\n".join(lines)


class _Dumper:
    def __init__(self, directory: str | os.PathLike | None) -> None:
        self.directory = Path(directory) if directory else None
        self.count = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, graph: Graph) -> None:
        if self.directory is not None:
            (self.directory / f"{self.count:03d}_{name}.txt").write_text(print_graph(graph) + "\n")
        self.count += 1


def optimize(
    graph: Graph,
    level: int = 2,
    *,
    disable: Iterable[str] = (),
    enable: Iterable[str] = (),
    passes: Sequence[str] | None = None,
    verify_each: bool = False,
    dump_dir: str | os.PathLike | None = None,
    trace: Callable[[PassRecord], None] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Graph, Report]:
    """Optimise a copy of `graph` at `level` (0-3) and report what each pass did.

    `disable` names passes to skip; `enable` adds passes the level lacks (run
    last, to a fixpoint); `passes` replaces the level's pipeline by one
    fixpoint stage of the named passes. `verify_each` runs the verifier on
    the input and after every pass. `dump_dir` (default: $AIC_DUMP_IR) receives
    the IR text after every pass. `trace` is called with each PassRecord as it
    completes (default with AIC_DEBUG>=1: print it to stderr). `options` gives named passes keyword
    arguments (the target's: `pass_options` in compiler/pipeline.py).
    """
    stages = pipeline(level, disable, enable, passes)
    if trace is None and int(os.environ.get("AIC_DEBUG", "0") or 0) >= 1:
        trace = lambda record: print(record.line(), file=sys.stderr)  # noqa: E731
    start = time.perf_counter()
    graph = clone_graph(graph)
    if verify_each:
        _verify(graph, "the input graph is invalid")
    dumper = _Dumper(dump_dir if dump_dir is not None else os.environ.get("AIC_DUMP_IR"))
    dumper.write("input", graph)
    report = Report(level, sum(1 for _ in graph.walk()))
    repeat = level in REPEAT_WHOLE and passes is None
    for _ in range(MAX_ROUNDS if repeat else 1):
        changed = False
        for index, stage in enumerate(stages, 1):
            graph, stage_changed = _run_stage(graph, stage, index, report, dumper, verify_each, trace, options or {})
            changed |= stage_changed
        if not changed:
            break
    else:
        if repeat:
            report.warnings.append(f"the pipeline still changed the graph after {MAX_ROUNDS} rounds")
    report.nodes_after = sum(1 for _ in graph.walk())
    report.seconds = time.perf_counter() - start
    return graph, report


def _run_stage(
    graph: Graph,
    stage: Stage,
    index: int,
    report: Report,
    dumper: _Dumper,
    verify_each: bool,
    trace: Callable[[PassRecord], None] | None,
    options: Mapping[str, Mapping[str, Any]],
) -> tuple[Graph, bool]:
    changed_any = False
    for round_ in range(1, (MAX_ROUNDS if stage.fixpoint else 1) + 1):
        changed = False
        for name in stage.passes:
            graph, record = _run_pass(graph, name, index, round_, options.get(name, {}))
            report.records.append(record)
            dumper.write(name, graph)
            if verify_each:
                _verify(graph, f"pass '{name}' left an invalid graph")
            if trace is not None:
                trace(record)
            changed |= record.changed
        changed_any |= changed
        if not changed:
            break
    else:
        if stage.fixpoint:
            report.warnings.append(
                f"stage {index} {list(stage.passes)} still changed the graph after {MAX_ROUNDS} rounds"
            )
    return graph, changed_any


def _run_pass(graph: Graph, name: str, stage: int, round_: int, options: Mapping[str, Any]) -> tuple[Graph, PassRecord]:
    ops_before = op_histogram(graph)
    nodes_before = ops_before.total()
    start = time.perf_counter()
    with recording() as rules:
        try:
            graph = PASSES[name].run(graph, **options)
        except Exception as err:
            raise PassError(f"pass '{name}' failed on graph {graph.name}: {type(err).__name__}: {err}") from err
    seconds = time.perf_counter() - start
    ops_after = op_histogram(graph)
    delta = {op: ops_after[op] - ops_before[op] for op in ops_before | ops_after if ops_after[op] != ops_before[op]}
    record = PassRecord(name, stage, round_, nodes_before, ops_after.total(), dict(rules), delta, seconds)
    return graph, record


def _verify(graph: Graph, problem: str) -> None:
    try:
        verify(graph)
    except Exception as err:
        raise PassError(f"{problem}: {err}") from err
