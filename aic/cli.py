"""The `aic` command line.

Each subcommand is an `add_<name>(subparsers)` that declares its arguments
and a `run_<name>(args) -> exit status` that does the work.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from aic import __version__
from aic.cli_compile import add_compile, add_run
from aic.compiler.passes import optimize
from aic.compiler.summary import summarize
from aic.frontend.load import model_source, read_model
from aic.frontend.onnx import FrontendError
from aic.ir import print_graph


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aic", description="aic: an ahead-of-time deep-learning compiler (ONNX -> one native shared object)."
    )
    parser.add_argument("--version", action="version", version=f"aic {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_inspect(subparsers)
    add_compile(subparsers)
    add_run(subparsers)
    return parser


def fail(message: str) -> int:
    print(f"aic: error: {message}", file=sys.stderr)
    return 1


# aic inspect ----------------------------------------------------------------


def add_inspect(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="show a model's inputs, outputs, op histogram, parameters and FLOPs",
        description="Read a model and summarise it: inputs and outputs with types, op histogram, node count, "
        "parameter count and bytes, and a FLOP estimate.",
    )
    p.add_argument("model", help="an .onnx file, a TensorFlow SavedModel folder, frozen .pb or .keras file")
    add_tensorflow_options(p)
    p.add_argument("--ir", action="store_true", help="print the graph IR text instead of the summary")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="SYMBOL=N",
        help="value of a symbolic dim for the FLOP count (repeatable; unbound symbols count as 1)",
    )
    p.add_argument(
        "-O",
        dest="opt_level",
        type=int,
        choices=range(4),
        default=None,
        help="show the graph optimised at this level (default: as read)",
    )
    p.add_argument("--passes", action="store_true", help="with -O: print what each pass did, and its time")
    p.add_argument(
        "--disable-pass", action="append", default=[], metavar="NAME", help="with -O: skip this pass (repeatable)"
    )
    p.set_defaults(run=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    try:
        bindings = parse_bindings(args.dim)
        graph = read_model(model_source(args.model, args.signature, args.outputs))
        if args.opt_level is not None:
            graph, report = optimize(graph, args.opt_level, disable=args.disable_pass)
            if args.passes:
                print(report.format(verbose=True), file=sys.stderr if args.json else sys.stdout)
        elif args.passes or args.disable_pass:
            raise ValueError("--passes and --disable-pass need an optimisation level (-O1, -O2 or -O3)")
    except (FrontendError, ValueError) as err:
        return fail(str(err))
    if args.ir:
        print(print_graph(graph))
        return 0
    summary = summarize(graph, bindings)
    print(json.dumps(summary.to_json(), indent=2) if args.json else summary.text())
    return 0


def add_tensorflow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--signature", help="the SavedModel signature to read (default serving_default)")
    p.add_argument("--outputs", metavar="A,B", help="a frozen GraphDef's output nodes (default: those nothing reads)")


def parse_bindings(items: Sequence[str]) -> dict[str, int]:
    bindings = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise ValueError(f"--dim expects SYMBOL=N with N a non-negative integer, got '{item}'")
        bindings[name.strip()] = int(value)
    return bindings


if __name__ == "__main__":
    sys.exit(main())
