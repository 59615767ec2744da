"""A client of a sandbox's supervisor: one request, or an attachment to its stream.

``request(sdir, op, ...)`` sends one request and waits for its reply (a
stop's comes once the sandbox has stopped). ``attach(sdir)`` returns an
Attachment: the sandbox's output as frames, and its input, window size
and detach going the other way (``protocol``).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from .. import state
from ..errors import StateError
from .connections import connect
from .protocol import (
    CLOSE_INPUT,
    DETACH,
    EXIT,
    INPUT,
    REPLY,
    REQUEST,
    RESIZE,
    STDERR,
    STDOUT,
    FrameReader,
    frame,
    json_frame,
    parse_json,
    recv_frame,
)
from .status import SOCKET_NAME

EVENT_NAMES = {STDOUT: "stdout", STDERR: "stderr", EXIT: "exit"}


def open_connection(sdir: state.SandboxDir) -> socket.socket:
    """A connection to the sandbox's supervisor; StateError when none runs."""
    try:
        return connect(sdir.path / SOCKET_NAME)
    except OSError:
        raise StateError(f"sandbox {sdir.id} is not running") from None


def request(sdir: state.SandboxDir, op: str, **args: Any) -> dict[str, Any]:
    """Send one request, wait for its reply; StateError if the supervisor refused it."""
    with open_connection(sdir) as sock:
        try:
            sock.sendall(json_frame(REQUEST, {"op": op, **args}))
        except OSError:
            raise StateError(f"sandbox {sdir.id} is not running") from None
        got = recv_frame(sock, FrameReader(), [])
    if got is None or got[0] != REPLY:
        raise StateError(f"the supervisor of sandbox {sdir.id} went away during `{op}`")
    reply = parse_json(got[1])
    if not reply.get("ok"):
        raise StateError(str(reply.get("error")))
    return reply


class Attachment:
    """The client's end of an attachment: frames in, input and resizes out."""

    def __init__(self, sock: socket.socket, sandbox_id: str, tty: bool,
                 reader: FrameReader | None = None,
                 pending: list[tuple[bytes, bytes]] | None = None) -> None:
        self.sock = sock
        self.id = sandbox_id
        self.tty = tty
        self._reader = reader or FrameReader()
        self._pending = pending or []  # frames that came with the reply

    def fileno(self) -> int:
        return self.sock.fileno()

    def ready(self) -> bool:
        """Frames came with the reply, before the socket is next readable: read them."""
        return bool(self._pending)

    def read(self) -> list[tuple[bytes, bytes]] | None:
        """The frames that came (waits for some); None at the end."""
        if self._pending:
            frames, self._pending = self._pending, []
            return frames
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            return None
        return list(self._reader.feed(data))

    def read_events(self) -> list[tuple[str, bytes]] | None:
        """As ``read``, each frame named: ``stdout``, ``stderr`` (bytes) or ``exit`` (its
        JSON: ``exit_code``, ``message``, ``restarting``), for a bridge that knows no frames."""
        frames = self.read()
        if frames is None:
            return None
        return [(EVENT_NAMES[kind], payload) for kind, payload in frames if kind in EVENT_NAMES]

    def send_input(self, data: bytes) -> None:
        self.sock.sendall(frame(INPUT, data))

    def close_input(self) -> None:
        self.sock.sendall(frame(CLOSE_INPUT))

    def resize(self, rows: int, cols: int) -> None:
        self.sock.sendall(frame(RESIZE, json.dumps([rows, cols]).encode()))

    def detach(self) -> None:
        try:
            self.sock.sendall(frame(DETACH))
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def attach(sdir: state.SandboxDir, *, stdin: bool = True) -> Attachment:
    """Attach to a running supervised sandbox's output (and input, with ``stdin``)."""
    sock = open_connection(sdir)
    try:
        sock.sendall(json_frame(REQUEST, {"op": "attach", "stdin": stdin}))
        reply, reader, pending = first_reply(sock)
        if reply is None:
            raise StateError(f"sandbox {sdir.id} ended before it could be attached")
    except BaseException:
        sock.close()
        raise
    return Attachment(sock, sdir.id, bool(reply.get("tty")), reader, pending)


def first_reply(sock: socket.socket) -> tuple[dict[str, Any] | None, FrameReader,
                                                list[tuple[bytes, bytes]]]:
    """The reply a connection starts with (None if it ended first), the reader, and the
    frames that came with it."""
    reader = FrameReader()
    pending: list[tuple[bytes, bytes]] = []
    got = recv_frame(sock, reader, pending)
    if got is None or got[0] != REPLY:
        return None, reader, pending
    return parse_json(got[1]), reader, pending
