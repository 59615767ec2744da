"""`sandbox class create|ls|show|extend|reset|rm`: teaching classes, through the daemon.

A class lives in the daemon (its sandboxes, its students' tokens), so these
verbs always talk to one: SANDBOX_HOST (or --host), else the daemon's
default unix socket on this host.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("class", help="teaching classes: one sandbox and terminal per student",
                       description="Classes live in the daemon (SANDBOX_HOST, or this host's "
                       "socket): each student gets a long-lived sandbox, a token and a link to "
                       "their terminal in the web console; the teacher's page is "
                       "/console/classes/NAME. At the TTL or `sandbox class rm` everything goes.")
    p.set_defaults(handler=_usage, remote=lambda args, client: _usage(args))
    verbs = p.add_subparsers(dest="class_verb", metavar="VERB", parser_class=sub._parser_class)
    c = verbs.add_parser("create", help="start a class (prints each student's link once)",
                         epilog="example: sandbox class create intro --students 30 --image busybox --ttl 2h")
    c.add_argument("name")
    c.add_argument("--students", type=int, required=True, metavar="N")
    c.add_argument("--image", required=True)
    c.add_argument("--ttl", default="2h", help="how long the class lasts (default 2h)")
    c.add_argument("--memory", default="256m")
    c.add_argument("--cpus", default="0.25")
    c.add_argument("--disk", default="512m")
    c.add_argument("--pids", default="256")
    c.add_argument("--network", default="none", choices=("none", "class"),
                   help="none: each sandbox alone; class: one bridge for the class")
    c.add_argument("--home-volume", action="store_true",
                   help="a persistent home per student, kept across a reset")
    c.add_argument("--keep-recordings", action="store_true",
                   help="keep the session recordings (asciicast) after the class ends")
    c.add_argument("--userns", action=argparse.BooleanOptionalAction, default=None,
                   help="a user namespace per student sandbox (default: on when the engine has "
                   "them; --userns is refused when it has not)")
    _verb(c, create)
    _verb(verbs.add_parser("ls", help="list the classes"), list_classes)
    s = verbs.add_parser("show", help="a class's students: state, connections, usage")
    s.add_argument("name")
    _verb(s, show)
    e = verbs.add_parser("extend", help="give a class more time")
    e.add_argument("name")
    e.add_argument("--by", default="30m")
    _verb(e, extend)
    r = verbs.add_parser("reset", help="a fresh sandbox from the image for one student")
    r.add_argument("name")
    r.add_argument("student")
    _verb(r, reset)
    d = verbs.add_parser("rm", help="end a class now: sandboxes, tokens, network, recordings")
    d.add_argument("name")
    _verb(d, remove)


def _verb(parser: argparse.ArgumentParser, remote) -> None:
    parser.set_defaults(handler=lambda args: _here(args, remote), remote=remote)


def _usage(_args: argparse.Namespace) -> int:
    from sandbox import SandboxError

    raise SandboxError("usage: sandbox class create|ls|show|extend|reset|rm (see --help)")


def _here(args: argparse.Namespace, remote) -> int:
    """No SANDBOX_HOST: the daemon of this host, on its default socket."""
    from sandbox import SandboxError, run_dir
    from sandbox.client import Client, DaemonError

    client = Client(f"unix://{run_dir() / 'sandbox.sock'}")
    try:
        return int(remote(args, client) or 0)
    except DaemonError as exc:
        if exc.kind == "unreachable":
            raise SandboxError(f"{exc}: classes live in the daemon",
                               hint="start `sandbox daemon`, or set SANDBOX_HOST") from None
        raise SandboxError(str(exc)) from None
    finally:
        client.close()


def _table(header: tuple[str, ...], rows: Sequence[tuple[object, ...]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def create(args: argparse.Namespace, client) -> int:
    room = client.classes.create({
        "name": args.name, "students": args.students, "image": args.image, "ttl": args.ttl,
        "memory": args.memory, "cpus": args.cpus, "disk": args.disk, "pids": args.pids,
        "network": args.network, "home_volume": args.home_volume,
        "keep_recordings": args.keep_recordings,
        **({} if args.userns is None else {"userns": args.userns})})
    ends = time.strftime("%H:%M", time.localtime(room["expires"]))
    print(f"class {room['name']}: {len(room['students'])} students on {room['image']}, until {ends}; "
          f"teacher's page: /console/classes/{room['name']}")
    relative = any(s["url"].startswith("/") for s in room["students"])
    _table(("STUDENT", "LINK"), [(s["name"], s["url"]) for s in room["students"]])
    if relative:
        print("(the daemon listens on its unix socket only: prefix each link with the address "
              "of its TCP listener, `sandbox daemon --listen tcp://ADDR:PORT`)")
    return 0


def list_classes(args: argparse.Namespace, client) -> int:
    rows = [(r["name"], r["image"], str(r["students"]), str(r["running"]), str(r["connected"]),
             f"{int(r['left'] // 60)}m") for r in client.classes.list()]
    _table(("NAME", "IMAGE", "STUDENTS", "RUNNING", "CONNECTED", "LEFT"), rows)
    return 0


def show(args: argparse.Namespace, client) -> int:
    room = client.classes.show(args.name)
    print(f"class {room['name']}: {room['running']}/{room['students']} running, "
          f"{room['connected']} connected, {int(room['left'] // 60)}m left")
    rows = [(s["name"], s["status"], "yes" if s["connected"].get("owner") else "no",
             "-" if s["cpu_percent"] is None else f"{s['cpu_percent']}%",
             "-" if s["memory"] is None else f"{s['memory'] >> 20}M", str(s["generation"]))
            for s in room["seats"]]
    _table(("STUDENT", "STATUS", "CONNECTED", "CPU", "MEMORY", "SANDBOXES"), rows)
    return 0


def extend(args: argparse.Namespace, client) -> int:
    room = client.classes.extend(args.name, args.by)
    print(f"class {room['name']} now ends at {time.strftime('%H:%M', time.localtime(room['expires']))}")
    return 0


def reset(args: argparse.Namespace, client) -> int:
    seat = client.classes.reset(args.name, args.student)
    print(f"{args.name}/{seat['name']}: a fresh sandbox {seat['sandbox'][:12]}")
    return 0


def remove(args: argparse.Namespace, client) -> int:
    done = client.classes.remove(args.name)
    kept = f"; recordings kept in {done['recordings']}" if done.get("recordings") else ""
    print(f"class {args.name} ended{kept}")
    return 0
