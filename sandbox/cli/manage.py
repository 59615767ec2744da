"""`sandbox ps`, `logs`, `rm`, `gc`: the sandboxes that exist on this host."""

from __future__ import annotations

import argparse
import sys
import time

from ..errors import SandboxError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ps", help="list sandboxes (-a: stopped ones too)",
                       description="List the sandboxes on this host, from any process: the "
                       "running ones, or with -a every one, stopped ones with their exit status.")
    p.add_argument("-a", "--all", action="store_true",
                   help="include stopped ones (with their exit status) and orphans left by a crash")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.set_defaults(handler=ps)
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
    p.set_defaults(handler=logs)
    p = sub.add_parser("rm", help="remove sandboxes",
                       description="Remove sandboxes: kill what runs and remove every trace "
                       "(a stopped one's writable layer and log too). A running one only "
                       "with -f.")
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
    from ..supervisor.status import read_status, supervisor_alive

    rows = []
    for sdir in (state.SandboxDir(i) for i in state.list_ids()):
        try:
            status = read_status(sdir)
            record = sdir.read_record() if (sdir.path / state.RECORD_NAME).exists() else None
        except SandboxError:
            continue
        if status is not None:
            what, live = _supervised_status(status, supervisor_alive(sdir))
            spec = status.spec
            row = (sdir.id, spec.get("name") or "-", spec.get("image", "?"), what,
                   _ago(status.created), " ".join(spec.get("command") or ())[:40])
        elif record is not None:
            live = record.owner_alive
            what = "running" if live else "orphaned"
            row = (record.id, record.name or "-", record.image, what, _ago(record.created),
                   " ".join(record.command)[:40])
        else:
            continue
        if live or args.all:
            rows.append(row)
    if args.quiet:
        print("\n".join(r[0] for r in rows))
        return 0
    header = ("ID", "NAME", "IMAGE", "STATUS", "CREATED", "COMMAND")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    return 0


def _supervised_status(status, alive: bool) -> tuple[str, bool]:  # type: ignore[no-untyped-def]
    """What `ps` says of a supervised sandbox, and whether it counts as running."""
    if alive and status.state in ("running", "restarting", "removing"):
        return status.state, True
    if status.state == "created":
        return "created", False
    if status.live:  # its supervisor died: `sandbox gc` says so in its status
        return "dead", False
    return f"exited ({status.exit_code}) {_ago(status.finished_at or status.created)}", False


def _ago(created: float) -> str:
    secs = max(0, int(time.time() - created))
    if secs < 60:
        return f"{secs}s ago"
    return f"{secs // 60}m ago" if secs < 3600 else f"{secs // 3600}h ago"


def logs(args: argparse.Namespace) -> int:
    from .. import state
    from .logview import LogView

    sdir = state.resolve(args.sandbox)
    view = LogView(sdir, since=args.since, timestamps=args.timestamps, stdin=args.stdin)
    while True:
        view.print_new()
        if not args.follow or not view.still_running():
            view.print_new()  # what came as it stopped
            return 0
        time.sleep(0.1)


def rm(args: argparse.Namespace) -> int:
    from ..supervisor import lifecycle

    status = 0
    for ref in args.sandboxes:
        try:
            print(lifecycle.remove(ref, force=args.force))
        except SandboxError as exc:
            print(f"sandbox: error: {exc}", file=sys.stderr)
            status = 125
    return status


#: Packages built on the engine whose leftovers gc removes too, imported if installed:
#: (module with ``collect() -> list of ids``, what an id names).
GC_EXTENSIONS = (("jobs.workspace", "job directory"),)


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
