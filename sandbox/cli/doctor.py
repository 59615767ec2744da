"""`sandbox doctor`: check that this host can run sandboxes, and say how to fix it."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check this host",
                       description="Check cgroups, overlayfs, namespaces, netlink, the state "
                       "root, the inotify and epoll ceilings one sandbox could otherwise "
                       "take from the others, whether --userns=auto works (a busybox "
                       "sandbox is started with it) and (with --redis) Redis; print one "
                       "line per check with the fix for anything missing. Exits 1 if "
                       "something the defaults need is missing.")
    p.add_argument("--redis", metavar="URL", help="also check this Redis URL")
    p.set_defaults(handler=handle, remote="local")


def handle(args: argparse.Namespace) -> int:
    from ..doctor import run_checks

    failed = 0
    for check in run_checks(redis_url=args.redis):
        mark = "ok  " if check.ok else ("warn" if not check.required else "FAIL")
        line = f"{mark}  {check.name}: {check.detail}"
        if not check.ok and check.fix:
            line += f" -> {check.fix}"
        print(line)
        failed += (not check.ok) and check.required
    return 1 if failed else 0
