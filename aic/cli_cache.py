"""`aic cache info|clear`: the compile cache of aic.compile (aic/cache.py), imported only when run."""

from __future__ import annotations

import argparse
import sys
import time


def add_cache_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cache",
        help="show or empty the compile cache",
        description="The compile cache holds the models aic.compile built, keyed on the model, target, options "
        "and compiler (AIC_CACHE_DIR, bounded by AIC_CACHE_SIZE).",
    )
    p.add_argument("action", choices=["info", "clear"], help="info: where, how many, how big; clear: empty it")
    p.add_argument("-v", "--verbose", action="store_true", help="with info: list the entries")
    p.set_defaults(run=run_cache_command)


def run_cache_command(args: argparse.Namespace) -> int:
    from aic.cache import CompileCache

    try:
        store = CompileCache()
    except ValueError as err:
        print(f"aic: error: {err}", file=sys.stderr)
        return 1
    if args.action == "clear":
        freed = store.clear()
        print(f"removed {freed / 2**20:.1f} MiB from {store.root}")
        return 0
    entries = store.entries()
    total = sum(e.nbytes for e in entries)
    bound = f"{store.max_bytes / 2**20:.0f} MiB" if store.enabled else "0 (model caching off)"
    print(f"{store.root}: {len(entries)} model(s), {total / 2**20:.1f} MiB of at most {bound}")
    for entry in reversed(entries) if args.verbose else []:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        print(f"  {entry.key[:12]}  {entry.nbytes / 2**20:8.1f} MiB  used {used}  {entry.source}")
    return 0
