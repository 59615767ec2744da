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
    p.set_defaults(handler=ps, remote=remote_ps)
    p = sub.add_parser("logs", help="print a sandbox's output",
                       description="Print the captured STDOUT/STDERR of a live sandbox.")
    p.add_argument("sandbox", metavar="ID|NAME")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")
    p.set_defaults(handler=logs, remote=remote_logs)
    p = sub.add_parser("rm", help="remove sandboxes",
                       description="Remove sandboxes: kill what runs and remove every trace.")
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

    if args.quiet:
        print("\n".join(r["id"] for r in rows))
        return 0
    print_table(("ID", "NAME", "IMAGE", "STATUS", "CREATED", "COMMAND"),
                [(r["id"], r["name"] or "-", r["image"], r["status"], ago(r["created"]),
                  " ".join(r["command"])[:40]) for r in rows])
    return 0


def logs(args: argparse.Namespace) -> int:
    from ..inventory import sandbox_log
    from ..logs import LogRecord

    _id, log_path, running = sandbox_log(args.sandbox)
    pos = 0
    while True:
        try:
            with open(log_path) as f:
                f.seek(pos)
                for line in f:
                    if not line.endswith("\n"):
                        break
                    pos += len(line.encode())
                    if '"stream": "sandbox"' in line:
                        continue
                    rec = LogRecord.from_json(line)
                    _write(rec.stream, rec.data)
        except FileNotFoundError:  # nothing printed yet, or the sandbox is gone
            if not log_path.parent.exists():
                return 0
        if not args.follow or not running():
            return 0
        time.sleep(0.1)


def remote_logs(args: argparse.Namespace, client) -> int:
    from ..client.api.sandboxes import frames

    response = client.sandboxes.logs(args.sandbox, follow=args.follow)
    try:
        for stream, data in frames(response):
            _write(stream, data)
    finally:
        response.close()
    return 0


def _write(stream: str, data: bytes) -> None:
    out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
    out.write(data)
    out.flush()


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
