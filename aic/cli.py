"""The `aic` command line.

Each subcommand is an `add_<name>(subparsers)` that declares its arguments
and a `run_<name>(args) -> exit status` that does the work.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from aic import __version__
from aic.bench import add_bench
from aic.cli_cache import add_cache_command
from aic.cli_check import add_check
from aic.cli_compile import add_compile, add_run
from aic.cli_inspect import add_inspect
from aic.profile import add_profile
from aic.report import add_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader went away (`aic inspect m.onnx --ir | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aic", description="aic: an ahead-of-time deep-learning compiler (ONNX -> one native shared object)."
    )
    parser.add_argument("--version", action="version", version=f"aic {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_inspect(subparsers)
    add_compile(subparsers)
    add_run(subparsers)
    add_cache_command(subparsers)
    add_check(subparsers)
    add_bench(subparsers)
    add_profile(subparsers)
    add_report(subparsers)
    return parser


if __name__ == "__main__":
    sys.exit(main())
