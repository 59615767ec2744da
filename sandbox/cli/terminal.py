"""This process's terminal during an interactive session: raw mode, restored whatever happens.

``RawTerminal`` puts the terminal in raw mode (every key goes to the
sandbox's pty as typed, where its line discipline makes Ctrl-C a SIGINT and
Ctrl-Z a SIGTSTP, inside) and restores the saved settings in ``close``: at
the end, on an exception, on SIGTERM or SIGHUP (the relay's handlers). A
client killed with SIGKILL runs no code: a *guard* process, forked when the
terminal goes raw, holds a copy of the terminal and the saved settings, and
restores them when its pipe from this process closes without a "done".
The guard keeps no other fd of this process (its supervisor connection
must close when this process dies).

Detach keys (Docker's ``--detach-keys``: ``ctrl-p,ctrl-q`` by default) are
matched in what is typed by ``DetachKeys``: a partial sequence is held, and
sent on as typed if the next key does not continue it.
"""

from __future__ import annotations

import os
import signal
import termios
import tty
from typing import Any

from ..errors import SpecError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL_NAMES = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
_DONE = b"done"


def parse_detach_keys(text: str) -> bytes:
    """``ctrl-p,ctrl-q`` as bytes; an empty string: no detach keys."""
    keys = bytearray()
    accepted = "keys like ctrl-p,ctrl-q: ctrl-<a-z, @, [, \\, ], ^ or _>, or single characters"
    for item in (p.strip() for p in text.split(",") if p.strip()):
        if item.lower().startswith("ctrl-") and len(item) == 6:
            char = item[5].lower()
            if char.isalpha():
                keys.append(ord(char) - ord("a") + 1)
            elif char in _CTRL_NAMES:
                keys.append(_CTRL_NAMES[char])
            else:
                raise SpecError("detach keys", text, accepted)
        elif len(item) == 1 and item.isprintable():
            keys.append(ord(item))
        else:
            raise SpecError("detach keys", text, accepted)
    return bytes(keys)


class DetachKeys:
    """Finds the detach sequence in what is typed; ``feed`` returns (what to send, detach)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = bytearray()

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            if byte == self.keys[len(self._held)]:
                self._held.append(byte)
                if len(self._held) == len(self.keys):
                    self._held.clear()
                    return bytes(out), True
                continue
            out += self._held
            self._held.clear()
            if byte == self.keys[0]:
                self._held.append(byte)
            else:
                out.append(byte)
        return bytes(out), False


class RawTerminal:
    """Terminal ``fd`` in raw mode until ``close`` (idempotent), guarded against SIGKILL."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list[Any] | None = termios.tcgetattr(fd)
        self._guard = _fork_guard(fd, self.saved)
        try:
            tty.setraw(fd, termios.TCSANOW)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.saved is None:
            return
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        except termios.error:
            pass  # the terminal is gone
        self.saved = None
        if self._guard is not None:
            pid, pipe_w = self._guard
            self._guard = None
            try:
                os.write(pipe_w, _DONE)
            except OSError:
                pass
            os.close(pipe_w)
            os.waitpid(pid, 0)


def _fork_guard(fd: int, saved: list) -> tuple[int, int] | None:
    """The guard process: (pid, our end of its pipe); None where this process may not fork."""
    from ..process.launcher import single_threaded

    if not single_threaded():
        return None
    pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the guard: nothing of ours but the terminal and the pipe
        try:
            _guard(fd, saved, pipe_r)
        finally:
            os._exit(0)
    os.close(pipe_r)
    return pid, pipe_w


def _guard(fd: int, saved: list, pipe_r: int) -> None:
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    low = 3  # 0-2 stay: the terminal, most often
    for kept in sorted(k for k in (fd, pipe_r) if k >= 3):
        os.closerange(low, kept)
        low = kept + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
    message = b""
    while chunk := os.read(pipe_r, 16):
        message += chunk
    if message != _DONE:  # the client died without restoring the terminal
        try:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        except termios.error:
            pass
