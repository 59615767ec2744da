"""`sandbox start`, `stop`, `restart`, `kill`, `wait`, `attach` and `exec`."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("start", help="start stopped sandboxes again",
                       description="Start sandboxes made with `sandbox run -d` again, after "
                       "`stop` or their end: same id, name, writable layer and log.")
    p.add_argument("sandboxes", nargs="+", metavar="ID|NAME")
    p.add_argument("-a", "--attach", action="store_true",
                   help="attach this terminal to it (one sandbox)")
    p.add_argument("-i", "--interactive", action="store_true", help="with -a: pass stdin in")
    p.set_defaults(handler=start, remote=_remote("start"))
    p = sub.add_parser("stop", help="stop running sandboxes",
                       description="Send the command SIGTERM, then SIGKILL after the timeout. "
                       "A sandbox made with -d is kept, stopped (`sandbox start` runs it "
                       "again); one run in the foreground ends there.")
    p.add_argument("sandboxes", nargs="+", metavar="ID|NAME")
    p.add_argument("-t", "--time", type=float, default=10.0, metavar="SECONDS",
                   help="seconds between SIGTERM and SIGKILL (default 10)")
    p.set_defaults(handler=stop, remote=_remote("stop"))
    p = sub.add_parser("restart", help="stop, then start, sandboxes",
                       description="`sandbox stop`, then `sandbox start`.")
    p.add_argument("sandboxes", nargs="+", metavar="ID|NAME")
    p.add_argument("-t", "--time", type=float, default=10.0, metavar="SECONDS",
                   help="seconds between SIGTERM and SIGKILL (default 10)")
    p.set_defaults(handler=restart, remote=_remote("restart"))
    p = sub.add_parser("kill", help="send a signal to sandboxes' commands",
                       description="Send a signal to the command (SIGKILL, the default, ends "
                       "the whole sandbox at once, and it is not restarted).")
    p.add_argument("sandboxes", nargs="+", metavar="ID|NAME")
    p.add_argument("-s", "--signal", default="KILL", metavar="SIGNAL",
                   help="a name (TERM, SIGHUP) or number (default KILL)")
    p.set_defaults(handler=kill, remote=_remote("kill"))
    p = sub.add_parser("wait", help="wait for sandboxes to stop; print their exit statuses",
                       description="Block until each sandbox made with -d has stopped for good "
                       "(not to restart) and print its exit status; exit with the last one's.")
    p.add_argument("sandboxes", nargs="+", metavar="ID|NAME")
    p.set_defaults(handler=wait, remote=_remote("wait"))
    p = sub.add_parser("attach", help="attach this terminal to a running sandbox",
                       description="Attach to a sandbox made with -d (or a `run -it` detached "
                       "from): its terminal, or its output and stdin. Detach with Ctrl-P "
                       "Ctrl-Q (--detach-keys); the sandbox goes on.")
    p.add_argument("sandbox", metavar="ID|NAME")
    p.add_argument("--no-stdin", action="store_true", help="only watch: send no input")
    p.add_argument("--detach-keys", default=None, metavar="KEYS",
                   help="keys that detach (default ctrl-p,ctrl-q; '' for none)")
    p.add_argument("--record", default=None, metavar="FILE",
                   help="save the session as an asciicast v2 file")
    p.set_defaults(handler=attach, remote=_remote("attach"))
    _register_exec(sub)


def _register_exec(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "exec", help="run a command in a running sandbox",
        description="Run COMMAND in a running sandbox: its namespaces, cgroup, limits, user "
        "and capabilities; its own exit status (125 setup error, 126 cannot execute, 127 not "
        "found); it dies with the sandbox, and with this command.",
        epilog="example: sandbox exec -it web sh")
    p.add_argument("sandbox", metavar="ID|NAME")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="the command and its arguments (options for exec come before NAME)")
    p.add_argument("-i", "--interactive", action="store_true", help="pass this terminal's stdin in")
    p.add_argument("-t", "--tty", action="store_true",
                   help="on a terminal made inside the sandbox (with -i: this one, raw)")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                   help="set an environment variable (added to the sandbox's)")
    p.add_argument("-w", "--workdir", default=None, help="working directory (default: the sandbox's)")
    p.add_argument("-u", "--user", default=None,
                   help="UID[:GID] or NAME[:GROUP] from the image (default: the sandbox's user)")
    p.add_argument("--record", default=None, metavar="FILE",
                   help="with -t: save the session as an asciicast v2 file")
    p.add_argument("--dry-run", action="store_true", help="print how it would enter, run nothing")
    p.set_defaults(handler=exec_, remote=_remote("exec_"))


def _remote(verb: str):
    """The verb's form through a daemon (``remote_lifecycle``), imported when it runs."""

    def remote(args: argparse.Namespace, client) -> int:
        from . import remote_lifecycle

        return getattr(remote_lifecycle, verb)(args, client)

    return remote


def _each(refs: list[str], verb) -> int:
    """Do ``verb(ref)`` for each sandbox, printing its line; 125 if any failed."""
    from ..errors import SandboxError

    status = 0
    for ref in refs:
        try:
            line = verb(ref)
            if line is not None:
                print(line)
        except SandboxError as exc:
            print(f"sandbox: error: {exc}", file=sys.stderr)
            status = exc.exit_status
    return status


def start(args: argparse.Namespace) -> int:
    from ..supervisor import lifecycle

    if args.attach:
        if len(args.sandboxes) != 1:
            from . import fail

            return fail("start -a attaches to one sandbox at a time")
        from .sessions import attach_started

        return attach_started(lifecycle.start(args.sandboxes[0], attach=True), args.interactive)
    return _each(args.sandboxes, lambda ref: (lifecycle.start(ref), ref)[1])


def stop(args: argparse.Namespace) -> int:
    from ..supervisor import lifecycle

    return _each(args.sandboxes, lambda ref: (lifecycle.stop(ref, args.time), ref)[1])


def restart(args: argparse.Namespace) -> int:
    from ..supervisor import lifecycle

    return _each(args.sandboxes, lambda ref: (lifecycle.restart(ref, args.time), ref)[1])


def kill(args: argparse.Namespace) -> int:
    from ..supervisor import lifecycle
    from .signal_names import parse_signal

    sig = parse_signal(args.signal)
    def kill_one(ref: str) -> str:
        lifecycle.kill(ref, sig)
        return ref

    return _each(args.sandboxes, kill_one)


def wait(args: argparse.Namespace) -> int:
    from ..supervisor import lifecycle

    codes: list[int] = []

    def one(ref: str) -> str:
        code = lifecycle.wait(ref)
        codes.append(code if code is not None else 0)
        return str(code if code is not None else "")

    status = _each(args.sandboxes, one)
    return status or (codes[-1] if codes else 0)


def attach(args: argparse.Namespace) -> int:
    from .sessions import attach as attach_session

    return attach_session(args)


def exec_(args: argparse.Namespace) -> int:
    from .sessions import exec_ as exec_session

    return exec_session(args)
