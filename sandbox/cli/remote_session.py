"""Sessions through a daemon: `run -d`/`-t`, `attach`, `start -a` and `exec`, over the
attach WebSockets, printing and exiting exactly as the embedded sessions (``sessions``) do.

A sandbox run with -d or -t through the daemon is a detached one there:
the daemon hands it to a supervisor of its own, as `sandbox run -d` does
here (see ``server.detached``). With -t this process relays this terminal
to it with the same ``Relay`` as a local session (raw mode restored
whatever ends it, resizes on SIGWINCH, ``--record``); the WebSocket is
its endpoint. The detach keys are watched here: on them, ``{"detach":
true}`` goes to the daemon, which detaches from the supervisor, and the
sandbox goes on (exit 0, the same message as here). A session that goes
away otherwise (this client killed or told to end) is a hangup of a
foreground run: its supervisor ends it, as for a local client.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from typing import Any

from ..supervisor.protocol import EXIT, MAX_PAYLOAD, STDERR, STDOUT, FrameReader, frame
from . import fail


class WebSocketEndpoint:
    """The attach WebSocket as a relay's endpoint: a thread turns its messages into
    ``supervisor.protocol`` frames on a pipe, which the relay waits on with stdin."""

    def __init__(self, ws: Any, *, tty: bool) -> None:
        self.ws = ws
        self.tty = tty
        self._r, self._w = os.pipe2(os.O_CLOEXEC)
        self._reader = FrameReader()
        self._thread = threading.Thread(target=self._pump, name="sandbox-attach", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        """Output messages (first byte: 1 stdout, 2 stderr) and each end (a text message;
        one that says ``restarting`` is followed by the next run's output)."""
        try:
            for message in self.ws:
                if isinstance(message, str):
                    self._write(frame(EXIT, message.encode()))
                    if not json.loads(message).get("restarting"):
                        return
                    continue
                kind = STDERR if message[:1] == b"\x02" else STDOUT
                for at in range(1, len(message), MAX_PAYLOAD):
                    self._write(frame(kind, message[at:at + MAX_PAYLOAD]))
        except Exception:
            pass  # the connection went away: the relay reads the end of the pipe
        finally:
            os.close(self._w)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._w, view):]

    def fileno(self) -> int:
        return self._r

    def ready(self) -> bool:
        return False

    def read(self) -> list[tuple[bytes, bytes]] | None:
        data = os.read(self._r, 65536)
        return list(self._reader.feed(data)) if data else None

    def send_input(self, data: bytes) -> None:
        self.ws.send(data)

    def close_input(self) -> None:
        if not self.tty:  # a terminal's end of input is Ctrl-D, typed
            self.ws.send(b"")

    def resize(self, rows: int, cols: int) -> None:
        self.ws.send(json.dumps({"resize": {"rows": rows, "cols": cols}}))

    def detach(self) -> None:
        """The detach keys: the daemon lets go of the sandbox, which goes on."""
        try:
            self.ws.send(json.dumps({"detach": True}))
        except Exception:
            pass  # gone meanwhile: nothing left to detach from

    def close(self) -> None:
        self.ws.close()
        self._thread.join(10)
        os.close(self._r)


def run_supervised(args: argparse.Namespace, client: Any, body: dict[str, Any]) -> int:
    """`sandbox run -d` or `-t` through ``client``'s daemon (``sessions.run_supervised``)."""
    from .sessions import NOT_A_TTY, _detach_keys, _recorder, terminal_size

    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        return fail(NOT_A_TTY)
    if args.restart != "no" and not args.detach:
        return fail("--restart needs -d (a run in the foreground ends with its terminal)")
    if args.record and args.detach:
        return fail("--record records a session on this terminal: -t without -d "
                    "(or `sandbox attach --record FILE`)")
    keys = _detach_keys(args.detach_keys)
    rows, cols = terminal_size()
    query = {"detach": True, "remove": args.rm or not args.detach, "restart": args.restart,
             "foreground": not args.detach, "log_stdin": args.log_stdin,
             "stdin": args.interactive, "rows": rows, "cols": cols}
    body = {**body, "tty": args.tty}
    if args.detach:
        print(client.sandboxes.create(body, start=True, **query)["id"])
        return 0
    record = _recorder(args)
    try:
        created = client.sandboxes.create(body, **query)
        ws, tty, _id = _start_attached(client, created["id"])
    except BaseException:
        if record is not None:
            record.close()
        raise
    return session(ws, created["id"], tty=tty, stdin=args.interactive, keys=keys, record=record)


def _start_attached(client: Any, ref: str) -> tuple[Any, bool, str]:
    """Start the sandbox with this client attached from the start: the WebSocket, whether
    it has a terminal, its id (DaemonError with the engine's exit status if it did not start)."""
    from ..client import DaemonError
    from ..client.attach import open_attach

    ws = open_attach(client.transport, ref, {"start": True})
    first = _first_message(ws)
    if first.get("event") != "started":
        ws.close()
        raise DaemonError(str(first.get("error")), exit_status=int(first.get("exit_status", 125)))
    return ws, bool(first.get("tty")), str(first.get("id"))


def _first_message(ws: Any) -> dict[str, Any]:
    from ..client import DaemonError

    try:
        message = ws.recv()
    except Exception as exc:
        raise DaemonError(f"the daemon closed the session as it started: {exc}") from exc
    return json.loads(message) if isinstance(message, str) else {}


def session(ws: Any, sandbox_id: str, *, tty: bool, stdin: bool, keys: bytes, record: Any) -> int:
    """Relay this terminal (or stdio) to the WebSocket until the session ends; the exit status,
    said as a local session says it (``sessions.report_end``)."""
    from .relay import Relay
    from .sessions import note_printer, report_end
    from .terminal import RawTerminal

    raw = RawTerminal(0) if tty and stdin and os.isatty(0) else None
    endpoint = WebSocketEndpoint(ws, tty=tty)
    try:
        ended = Relay(endpoint, tty=tty, stdin=stdin, detach_keys=keys, record=record,
                      on_note=note_printer(raw is not None)).run()
    finally:
        if raw is not None:
            raw.close()
        endpoint.close()
        if record is not None:
            record.close()
    return report_end(ended, sandbox_id)


def attach(args: argparse.Namespace, client: Any) -> int:
    """`sandbox attach` through the daemon (``sessions.attach``)."""
    from ..client import DaemonError
    from ..client.attach import open_attach
    from .sessions import NOT_A_TTY, _detach_keys, _recorder

    found = client.sandboxes.inspect(args.sandbox)
    if found.get("detached") is None and found.get("owner") is None:
        raise DaemonError(f"sandbox {found['id']} runs in the foreground of the process that "
                          "made it: there is nothing to attach to (`sandbox logs -f` follows "
                          "its output)")
    keys = _detach_keys(args.detach_keys)
    if found.get("detached") is not None and found["status"] not in ("running", "restarting"):
        raise DaemonError(f"sandbox {found['id']} is not running")
    tty = found.get("terminal") == "pty"
    if tty and not args.no_stdin and not os.isatty(0):
        return fail(NOT_A_TTY)
    ws = open_attach(client.transport, found["id"], {"stdin": not args.no_stdin, "logs": False})
    return session(ws, found["id"], tty=tty, stdin=not args.no_stdin, keys=keys,
                   record=_recorder(args))


def start_attached(args: argparse.Namespace, client: Any) -> int:
    """`sandbox start -a` through the daemon (``sessions.attach_started``)."""
    from .sessions import NOT_A_TTY, _detach_keys

    ws, tty, sandbox_id = _start_attached(client, args.sandboxes[0])
    if tty and args.interactive and not os.isatty(0):
        ws.close()
        return fail(NOT_A_TTY)
    return session(ws, sandbox_id, tty=tty, stdin=args.interactive,
                   keys=_detach_keys(None), record=None)
