"""`sandbox start`, `stop`, `restart`, `kill`, `wait`, `attach` and `exec` through a daemon:
the same lines, errors and exit statuses as the embedded verbs (``lifecycle``)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any

from . import fail


def _each(refs: list[str], verb) -> int:
    """As ``lifecycle._each``: ``verb(ref)`` for each sandbox, its line; the last error's status."""
    from ..client import DaemonError

    status = 0
    for ref in refs:
        try:
            line = verb(ref)
            if line is not None:
                print(line)
        except DaemonError as exc:
            print(f"sandbox: error: {exc}", file=sys.stderr)
            status = exc.exit_status
    return status


def start(args: argparse.Namespace, client: Any) -> int:
    if args.attach:
        if len(args.sandboxes) != 1:
            return fail("start -a attaches to one sandbox at a time")
        from .remote_session import start_attached

        return start_attached(args, client)
    return _each(args.sandboxes, lambda ref: (client.sandboxes.start(ref), ref)[1])


def stop(args: argparse.Namespace, client: Any) -> int:
    return _each(args.sandboxes, lambda ref: (client.sandboxes.stop(ref, args.time), ref)[1])


def restart(args: argparse.Namespace, client: Any) -> int:
    return _each(args.sandboxes, lambda ref: (client.sandboxes.restart(ref, args.time), ref)[1])


def kill(args: argparse.Namespace, client: Any) -> int:
    from .signal_names import parse_signal

    sig = str(parse_signal(args.signal))  # a bad one is said here, as embedded, before any call
    return _each(args.sandboxes, lambda ref: (client.sandboxes.kill(ref, sig), ref)[1])


def wait(args: argparse.Namespace, client: Any) -> int:
    codes: list[int] = []

    def one(ref: str) -> str:
        code = client.sandboxes.wait(ref)["exit_code"]
        codes.append(code if code is not None else 0)
        return str(code if code is not None else "")

    status = _each(args.sandboxes, one)
    return status or (codes[-1] if codes else 0)


def attach(args: argparse.Namespace, client: Any) -> int:
    from .remote_session import attach as attach_session

    return attach_session(args, client)


def exec_(args: argparse.Namespace, client: Any) -> int:
    """`sandbox exec` through the daemon: the exec is made there and started by its attach."""
    from ..client import DaemonError
    from ..client.attach import open_attach
    from . import parse_env
    from .sessions import NOT_A_TTY, _recorder, terminal_size

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return fail("exec needs a command to run in the sandbox (e.g. sandbox exec NAME sh)")
    if args.dry_run:
        raise DaemonError("--dry-run prints this host's plan: run it without SANDBOX_HOST/--host")
    if args.tty and args.interactive and not os.isatty(0):
        return fail(NOT_A_TTY)
    rows, cols = terminal_size()
    exec_id = client.sandboxes.exec(args.sandbox, {
        "command": command, "env": parse_env(args.env), "workdir": args.workdir,
        "user": args.user, "tty": args.tty, "interactive": args.interactive,
        **({"rows": rows, "cols": cols} if args.tty else {})})
    ws = open_attach(client.transport, args.sandbox, exec_id=exec_id)
    from .remote_session import _first_message

    first = _first_message(ws)
    if first.get("event") != "started":
        ws.close()
        raise DaemonError(str(first.get("error")), exit_status=int(first.get("exit_status", 125)))
    if args.tty:
        from .remote_session import session

        found = client.sandboxes.exec_inspect(exec_id)
        return session(ws, found["sandbox"], tty=True, stdin=args.interactive, keys=b"",
                       record=_recorder(args))
    return _plain_exec(ws, stdin=args.interactive)


def _plain_exec(ws: Any, *, stdin: bool) -> int:
    """An exec without a terminal: its output to ours, our stdin to it with -i; its exit
    status (nothing said about it, as `sandbox exec` says nothing)."""
    import json

    if stdin:
        threading.Thread(target=_pump_stdin, args=(ws,), daemon=True).start()
    code = 125
    try:
        for message in ws:
            if isinstance(message, str):
                code = int(json.loads(message).get("exit_code", 125))
                break
            out = sys.stdout.buffer if message[:1] == b"\x01" else sys.stderr.buffer
            out.write(message[1:])
            out.flush()
    finally:
        ws.close()
    return code


def _pump_stdin(ws: Any) -> None:
    try:
        while data := os.read(0, 65536):
            ws.send(data)
        ws.send(b"")
    except Exception:
        pass  # the exec ended meanwhile
