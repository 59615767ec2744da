"""`sandbox run -t` through a daemon: this terminal, raw, on a pty made inside the sandbox
on the daemon's host, relayed over the attach WebSocket.

The same ``Relay`` as a local session (resizes on SIGWINCH, raw mode
restored whatever ends it), with the WebSocket as its endpoint. The
daemon holds the sandbox: there are no detach keys (a session that goes
away, its client killed or told to end, is a hangup: the sandbox is
killed, as a foreground run's is).
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
        """Output messages (first byte: 1 stdout, 2 stderr) and the end (one text message)."""
        try:
            for message in self.ws:
                if isinstance(message, str):
                    self._write(frame(EXIT, message.encode()))
                    return
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
        """No detach keys through a daemon (see the module docstring)."""

    def close(self) -> None:
        self.ws.close()
        self._thread.join(10)
        os.close(self._r)


def run_on_terminal(args: argparse.Namespace, client: Any, body: dict[str, Any]) -> int:
    """`sandbox run -t [-i]` through ``client``'s daemon; the command's exit status."""
    from ..client import DaemonError
    from ..client.attach import open_attach
    from .relay import Relay
    from .sessions import NOT_A_TTY, note_printer, report_end, terminal_size
    from .terminal import RawTerminal

    if args.interactive and not os.isatty(0):
        return fail(NOT_A_TTY)
    created = client.sandboxes.create({**body, "tty": True}, start=True, remove=True)
    rows, cols = terminal_size()
    endpoint = WebSocketEndpoint(open_attach(client.transport, created["id"],
                                             {"rows": rows, "cols": cols}), tty=True)
    raw = RawTerminal(0) if args.interactive else None
    try:
        ended = Relay(endpoint, tty=True, stdin=args.interactive,
                      on_note=note_printer(raw is not None)).run()
    finally:
        if raw is not None:
            raw.close()
        endpoint.close()
    if ended.how != "exited":  # a hangup: the sandbox ends with its session
        try:
            client.sandboxes.kill(created["id"])
        except DaemonError:
            pass  # it has ended meanwhile
    client.sandboxes.wait(created["id"], remove=True)
    return report_end(ended, created["id"])
