"""`aic check`: the command line of aic/checker.py, which is imported only when it runs."""

from __future__ import annotations

from typing import Any


def add_check(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check",
        help="compare aic's outputs with onnxruntime's and a float64 reference",
        description="Compile MODEL, run it in aic, onnxruntime and aic's float64 reference interpreter on the given "
        "or random inputs, print each output's max abs/rel error and exit 1 when aic disagrees with both.",
    )
    p.add_argument("model", help="an .onnx file")
    p.add_argument("--input", "--inputs", dest="inputs", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input (repeatable); the others are random, int inputs kept in range")  # fmt: skip
    p.add_argument("-O", dest="opt_level", type=int, choices=range(4), default=2, help="optimisation level")
    p.add_argument("--target", default="llvm", help='the target (default "llvm": this CPU)')
    p.add_argument("--shape", action="append", default=[], metavar="NAME=N", help="bind a symbolic dim; repeatable")
    p.add_argument("--bisect", action="store_true", help="also compare intermediates: name the first diverging node")
    p.add_argument("--reference", metavar="MODEL", help="run onnxruntime and the reference on this model instead")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--rtol", type=float, help="relative tolerance for every float dtype")
    p.add_argument("--atol", type=float, help="absolute tolerance (times max|expected|) for every float dtype")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    p.set_defaults(run=run_check)


def run_check(args: Any) -> int:
    import json
    import sys

    from aic.checker import TOLERANCES, check
    from aic.cli_compile import _read_inputs, parse_shapes

    tolerances = {
        dtype: (args.rtol if args.rtol is not None else rtol, args.atol if args.atol is not None else atol)
        for dtype, (rtol, atol) in TOLERANCES.items()
    }
    try:
        result = check(
            args.model,
            _read_inputs(args.inputs),
            args.opt_level,
            args.target,
            parse_shapes(args.shape),
            bisect=args.bisect,
            reference_model=args.reference,
            seed=args.seed,
            tolerances=tolerances,
        )
    except (ValueError, RuntimeError, OSError) as err:
        print(f"aic: error: {err}", file=sys.stderr)
        return 2
    print(result.text())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_json(), f, indent=2)
    return 0 if result.ok else 1
