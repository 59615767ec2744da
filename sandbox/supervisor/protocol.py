"""What goes over a supervisor's socket: frames of a kind byte, a length and a payload.

Every connection starts with one request from the client (``REQUEST``, a
JSON object with an ``op``); the supervisor answers with ``REPLY`` (JSON,
``{"ok": true, ...}`` or ``{"ok": false, "error": ..., "status": N}``).
Requests: ``attach`` (``stdin``: whether the client sends input),
``stop`` (``timeout``: seconds between SIGTERM and SIGKILL), ``kill``
(``signal``), ``wait``, ``remove``, ``status``. ``stop``, ``wait`` and
``remove`` are answered once done. After an ``attach`` the connection is a
stream of frames both ways:

    client → supervisor    INPUT bytes, CLOSE_INPUT, RESIZE [rows, cols], DETACH
    supervisor → client    STDOUT bytes, STDERR bytes (a terminal's all STDOUT),
                           EXIT {"exit_code", "message", "restarting"} at each end

The first client of a supervisor (the one that started it: its socket is
made before the supervisor and passed to it) gets ``REPLY`` with
``"event": "started"`` (and ``id``, ``tty``) or ``"failed"`` first, and is
attached from the start, so it misses no output. The daemon's WebSocket
attach carries the same frames.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from typing import Any

HEADER = struct.Struct(">cI")
#: The largest payload accepted (a frame is refused beyond it).
MAX_PAYLOAD = 1 << 20

REQUEST, REPLY = b"q", b"r"
INPUT, CLOSE_INPUT, RESIZE, DETACH = b"i", b"c", b"w", b"d"
STDOUT, STDERR, EXIT = b"o", b"e", b"x"
STREAM_KINDS = {"stdout": STDOUT, "stderr": STDERR}


class ProtocolError(Exception):
    """A peer sent something that is not a frame of this protocol."""


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def json_frame(kind: bytes, obj: Any) -> bytes:
    return frame(kind, json.dumps(obj).encode())


def parse_json(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("a JSON object was expected")
    return obj


def parse_size(payload: bytes) -> tuple[int, int]:
    """A RESIZE frame's [rows, cols]."""
    try:
        rows, cols = json.loads(payload)
        return int(rows), int(cols)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"a size is [rows, cols]: {exc}") from exc


class FrameReader:
    """Bytes in, frames out: ``feed`` what came, iterate the whole frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            kind, size = HEADER.unpack_from(self._buffer)
            if size > MAX_PAYLOAD:
                raise ProtocolError(f"a frame of {size} bytes is over the {MAX_PAYLOAD} allowed")
            if len(self._buffer) < HEADER.size + size:
                return
            payload = bytes(self._buffer[HEADER.size:HEADER.size + size])
            del self._buffer[:HEADER.size + size]
            yield kind, payload


def recv_frame(sock: socket.socket, reader: FrameReader,
               pending: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes] | None:
    """The next frame on a blocking socket (None at its end); ``pending`` keeps frames
    that came with it."""
    while not pending:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:  # a supervisor that exited before it took the connection
            return None
        if not data:
            return None
        pending.extend(reader.feed(data))
    return pending.pop(0)
