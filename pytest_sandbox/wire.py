"""Messages between a pytest session and its twin: length-prefixed pickles on a stream socket.

The two ends are processes of the same session, started one by the other
over a private socket pair (``where.twin``, ``twin``): nothing else can
write to it, so pickle, which keeps a Result and bytes as they are, is safe
here (never on the job queue, whose writers are not trusted).
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

_LENGTH = struct.Struct("!I")


def send(sock: socket.socket, message: Any) -> None:
    """Send one message (raises OSError when the other end is gone)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def receive(sock: socket.socket) -> Any:
    """The next message; None at the end of the stream (the other end closed or died)."""
    head = _exactly(sock, _LENGTH.size)
    if head is None:
        return None
    (length,) = _LENGTH.unpack(head)
    data = _exactly(sock, length)
    return None if data is None else pickle.loads(data)


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = []
    while size:
        try:
            chunk = sock.recv(min(size, 1 << 20))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
