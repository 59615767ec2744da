"""`sandbox cache ls|rm`: the job caches kept on this host (see jobs.cache)."""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="list and remove job caches on this host",
                       description="The caches jobs keep on this host (a job file's [cache]), "
                       "least recently used first. A cache is restored only for its exact key.")
    verbs = p.add_subparsers(dest="cache_verb", metavar="VERB", parser_class=type(p))
    verbs.required = True
    q = verbs.add_parser("ls", help="list the caches")
    q.set_defaults(handler=ls)
    q = verbs.add_parser("rm", help="remove caches by key (or id prefix)",
                         description="Remove the caches stored under KEY (every set of paths), "
                         "or whose id starts with KEY (at least 6 characters): a cache you no "
                         "longer trust goes in one command.")
    q.add_argument("keys", nargs="*", metavar="KEY")
    q.add_argument("--all", action="store_true", help="remove every cache")
    q.set_defaults(handler=rm)


def ls(args: argparse.Namespace) -> int:
    from sandbox import format_size

    from . import cache

    now = time.time()
    rows = [(e.key, e.id[:12], format_size(e.size), _ago(now - e.used), ", ".join(e.paths))
            for e in cache.entries()]
    header = ("KEY", "ID", "SIZE", "USED", "PATHS")
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
    return 0


def rm(args: argparse.Namespace) -> int:
    from .cache import remove, remove_all
    from .errors import JobError

    if args.all == bool(args.keys):
        raise JobError("sandbox cache rm: give KEY... or --all")
    if args.all:
        for entry in remove_all():
            print(f"removed {entry.key} ({entry.id[:12]})")
        return 0
    missing = []
    for ref in args.keys:
        gone = remove(ref)
        missing += [] if gone else [ref]
        for entry in gone:
            print(f"removed {entry.key} ({entry.id[:12]})")
    if missing:
        raise JobError(f"no cache {missing[0]!r} on this host", hint="`sandbox cache ls` lists them")
    return 0


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"
