"""`sandbox ps`, `logs`, `rm`, `gc`: the sandboxes that exist on this host."""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ps", help="list sandboxes (-a: stopped ones too)",
                       description="List the sandboxes on this host, from any process: the "
                       "running ones, or with -a every one, stopped ones with their exit status.")
    p.add_argument("-a", "--all", action="store_true",
                   help="include stopped ones (with their exit status) and orphans left by a crash")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.set_defaults(handler=ps, remote=remote_ps)
    p = sub.add_parser("logs", help="print a sandbox's output",
                       description="Print the captured STDOUT/STDERR of a sandbox, running or "
                       "stopped (kept until `sandbox rm`), across its restarts.")
    p.add_argument("sandbox", metavar="ID|NAME")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until it stops")
    p.add_argument("--since", default=None, metavar="TIME",
                   help="only what came after TIME: a duration ago (10m, 1h) or epoch seconds")
    p.add_argument("-t", "--timestamps", action="store_true",
                   help="start each line with the time it came (RFC 3339, UTC)")
    p.add_argument("--stdin", action="store_true",
                   help="also what was typed, if it was logged (`run --log-stdin`)")
    p.set_defaults(handler=logs, remote=remote_logs)
    p = sub.add_parser("rm", help="remove sandboxes",
                       description="Remove sandboxes: kill what runs and remove every trace "
                       "(a stopped one's writable layer and log too). A running one only "
                       "with -f.")
    p.add_argument("sandboxes", nargs="+", metavar="ID|NAME")
    p.add_argument("-f", "--force", action="store_true", help="also kill running ones")
    p.set_defaults(handler=rm, remote=remote_rm)
    p = sub.add_parser("gc", help="remove what crashed processes left behind",
                       description="Remove sandboxes whose owner died, stray cgroups and "
                       "network links, half-made images of killed imports and the job "
                       "directories of killed workers and `sandbox submit`s. Safe to run any "
                       "time; workers run it at start.")
    p.set_defaults(handler=gc, remote="local")


def ps(args: argparse.Namespace) -> int:
    from ..inventory import sandbox_rows

    return _print_ps(args, sandbox_rows(include_orphans=args.all))


def remote_ps(args: argparse.Namespace, client) -> int:
    return _print_ps(args, client.sandboxes.list(all=args.all))


def _print_ps(args: argparse.Namespace, rows: list[dict]) -> int:
    from .tables import ago, print_table

    rows = sorted(rows, key=lambda r: (r["created"], r["id"]))  # oldest first, both ways
    if args.quiet:
        print("\n".join(r["id"] for r in rows))
        return 0
    print_table(("ID", "NAME", "IMAGE", "STATUS", "CREATED", "COMMAND"),
                [(r["id"], r["name"] or "-", r["image"], _status(r), ago(r["created"]),
                  " ".join(r["command"])[:40]) for r in rows])
    return 0


def _status(row: dict) -> str:
    """A row's status; a stopped one's with when it stopped (`exited (0) 5m ago`)."""
    from .tables import ago

    if row.get("finished") and row["status"].startswith("exited"):
        return f"{row['status']} {ago(row['finished'])}"
    return row["status"]


def logs(args: argparse.Namespace) -> int:
    from .. import state
    from .logview import LogView

    view = LogView(state.resolve(args.sandbox), _printer(args))
    while True:
        view.print_new()
        if not args.follow or not view.still_running():
            view.print_new()  # what came as it stopped
            return 0
        time.sleep(0.1)


def remote_logs(args: argparse.Namespace, client) -> int:
    from ..logs import LogRecord

    printer = _printer(args)  # a bad --since is refused before anything is sent
    for record in client.sandboxes.records(args.sandbox, follow=args.follow, stdin=args.stdin,
                                           since=printer.since):
        printer.show(LogRecord.from_dict(record))
    return 0


def _printer(args: argparse.Namespace):
    from .logview import LogPrinter

    return LogPrinter(since=args.since, timestamps=args.timestamps, stdin=args.stdin)


def rm(args: argparse.Namespace) -> int:
    from ..errors import StateError
    from ..inventory import remove_sandbox

    return _rm(args, lambda ref: remove_sandbox(ref, force=args.force), StateError)


def remote_rm(args: argparse.Namespace, client) -> int:
    from ..client import DaemonError

    return _rm(args, lambda ref: client.sandboxes.remove(ref, force=args.force)["id"], DaemonError)


def _rm(args: argparse.Namespace, remove, error: type[Exception]) -> int:
    status = 0
    for ref in args.sandboxes:
        try:
            print(remove(ref))
        except error as exc:
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
