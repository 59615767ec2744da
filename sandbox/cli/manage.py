"""`sandbox ps`, `logs`, `rm`, `gc`: the sandboxes that exist on this host."""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ps", help="list live sandboxes",
                       description="List the sandboxes on this host, from any process.")
    p.add_argument("-a", "--all", action="store_true", help="include orphans left by a crash")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.set_defaults(handler=ps)
    p = sub.add_parser("logs", help="print a sandbox's output",
                       description="Print the captured STDOUT/STDERR of a live sandbox.")
    p.add_argument("sandbox", metavar="ID|NAME")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")
    p.set_defaults(handler=logs)
    p = sub.add_parser("rm", help="remove sandboxes",
                       description="Remove sandboxes: kill what runs and remove every trace.")
    p.add_argument("sandboxes", nargs="+", metavar="ID|NAME")
    p.add_argument("-f", "--force", action="store_true", help="also kill running ones")
    p.set_defaults(handler=rm)
    p = sub.add_parser("gc", help="remove what crashed processes left behind",
                       description="Remove sandboxes whose owner died, stray cgroups and "
                       "network links, half-made images of killed imports and the job "
                       "directories of killed workers and `sandbox submit`s. Safe to run any "
                       "time; workers run it at start.")
    p.set_defaults(handler=gc)


def ps(args: argparse.Namespace) -> int:
    from .. import state

    rows = []
    for _sdir, record in state.iter_records():
        if record is None:
            continue
        alive = record.owner_alive
        if not alive and not args.all:
            continue
        status = "running" if alive else "orphaned"
        rows.append((record.id, record.name or "-", record.image, status,
                     _ago(record.created), " ".join(record.command)[:40]))
    if args.quiet:
        print("\n".join(r[0] for r in rows))
        return 0
    header = ("ID", "NAME", "IMAGE", "STATUS", "CREATED", "COMMAND")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    return 0


def _ago(created: float) -> str:
    secs = max(0, int(time.time() - created))
    if secs < 60:
        return f"{secs}s ago"
    return f"{secs // 60}m ago" if secs < 3600 else f"{secs // 3600}h ago"


def logs(args: argparse.Namespace) -> int:
    from .. import state
    from ..logs import LogRecord

    sdir = state.resolve(args.sandbox)
    pos = 0
    while True:
        try:
            with open(sdir.log_path) as f:
                f.seek(pos)
                for line in f:
                    if not line.endswith("\n"):
                        break
                    pos += len(line.encode())
                    if '"stream": "sandbox"' in line:
                        continue
                    rec = LogRecord.from_json(line)
                    out = sys.stdout.buffer if rec.stream == "stdout" else sys.stderr.buffer
                    out.write(rec.data)
                    out.flush()
        except FileNotFoundError:  # nothing printed yet, or the sandbox is gone
            if not sdir.path.exists():
                return 0
        if not args.follow:
            return 0
        try:
            record = sdir.read_record()
        except Exception:
            return 0
        if not record.owner_alive:
            return 0
        time.sleep(0.1)


def rm(args: argparse.Namespace) -> int:
    from .. import gc, state
    from ..errors import StateError

    status = 0
    for ref in args.sandboxes:
        try:
            sdir = state.resolve(ref)
            try:
                record = sdir.read_record()
            except StateError:
                record = None
            gc.remove(sdir, record, force=args.force)
            print(sdir.id)
        except StateError as exc:
            print(f"sandbox: error: {exc}", file=sys.stderr)
            status = 125
    return status


#: Packages built on the engine whose leftovers gc removes too, imported if installed:
#: (module with ``collect() -> list of ids``, what an id names).
GC_EXTENSIONS = (("jobs.workspace", "job directory"), ("jobs.cache", "cache work dir"))


def gc(args: argparse.Namespace) -> int:
    import importlib

    from .. import gc as gc_mod

    report = gc_mod.collect()
    for module, what in GC_EXTENSIONS:
        try:
            collect = importlib.import_module(module).collect
        except ModuleNotFoundError:
            continue
        report.removed += [f"{what} {item}" for item in collect()]
    for item in report.removed:
        print(f"removed {item}")
    for err in report.errors:
        print(f"sandbox: error: {err}", file=sys.stderr)
    if not report.removed and not report.errors:
        print("nothing to remove")
    return 1 if report.errors else 0
