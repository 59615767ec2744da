"""The supervisor's clients: one ``Conn`` per connection to its socket.

Non-blocking sockets, each with a FrameReader for what comes in and a
buffer for what goes out; a client that falls more than CLIENT_BUFFER_MAX
behind is dropped (the sandbox never waits for a slow client: its output
goes on to the log and the other clients).
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from .protocol import FrameReader

#: What a client may have waiting to be sent to it before it is dropped.
CLIENT_BUFFER_MAX = 8 << 20
#: AF_UNIX paths are at most 107 bytes: longer ones are reached through /proc/self/fd.
_SUN_PATH_MAX = 100


class Conn:
    """One client connection."""

    def __init__(self, sock: socket.socket, *, attached: bool = False, stdin: bool = False,
                 foreground: bool = False) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.reader = FrameReader()
        self.out = bytearray()
        self.requested = attached  # its first frame (the request) came, or none is due
        self.attached = attached
        self.stdin = stdin
        self.foreground = foreground  # the terminal that started the sandbox
        self.detached = False
        self.waiting_for: str | None = None  # "stop", "wait" or "remove": answered at the end
        self.closing = False  # close once ``out`` is sent
        self.dropped = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def queue(self, data: bytes) -> None:
        if self.dropped:
            return
        self.out += data
        if len(self.out) > CLIENT_BUFFER_MAX:
            self.dropped = True  # too slow: dropped, its output is lost to it
            self.out.clear()

    def flush(self) -> bool:
        """Send what can be sent now; False when the client is gone."""
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                return True
            except OSError:
                return False
            del self.out[:sent]
        return True

    def close(self) -> None:
        self.sock.close()


def bind_path(path: Path) -> tuple[str, int]:
    """The address to bind or connect to for ``path``, and an fd to close after (-1 if
    none): a long path is reached through an O_PATH fd on its directory."""
    text = str(path)
    if len(text.encode()) <= _SUN_PATH_MAX:
        return text, -1
    dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{dirfd}/{path.name}", dirfd


def listen(path: Path) -> socket.socket:
    """A listening socket at ``path`` (a stale one from a dead supervisor is replaced)."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            path.unlink()
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    address, dirfd = bind_path(path)
    try:
        sock.bind(address)
        os.chmod(path, 0o600)
        sock.listen(16)
    except BaseException:
        sock.close()
        raise
    finally:
        if dirfd >= 0:
            os.close(dirfd)
    sock.setblocking(False)
    return sock


def connect(path: Path) -> socket.socket:
    """A blocking connection to the socket at ``path`` (OSError if nobody listens)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    address, dirfd = bind_path(path)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    finally:
        if dirfd >= 0:
            os.close(dirfd)
    return sock
