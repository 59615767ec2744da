"""Live input for a running command: its pty's master, or its stdin pipe.

A sandbox (or a process started in one) made with ``tty`` or
``interactive`` takes input while it runs: keystrokes for a shell, lines
for a REPL. One LiveInput owns the fd they go to and is written from any
thread: the monitor thread reads the same pty master (the open file is
non-blocking, so writes wait for room here, in select), and every write
tells the monitor the command is not idle. What is written can be logged
(``on_input``: `--log-stdin`).
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
from collections.abc import Callable

from .errors import StateError
from .linux import pty
from .stdio import ContainerStdio


class LiveInput:
    """The fd a running command's input goes to; ``close`` closes it (idempotent)."""

    def __init__(self, fd: int, *, terminal: bool, what: str,
                 on_input: Callable[[bytes], None] = lambda _data: None) -> None:
        self.fd = fd
        self.terminal = terminal
        self.what = what  # "sandbox ID" or "exec in sandbox ID", for messages
        self._on_input = on_input
        self._lock = threading.Lock()

    def write(self, data: bytes, timeout: float | None = None) -> None:
        """Write all of ``data``, waiting for room; StateError once the command takes no
        more input (it ended, or closed its stdin) or after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        view = memoryview(bytes(data))
        with self._lock:
            while view:
                written = self._write_some(view)
                view = view[written:]
                if view and not written:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise StateError(f"{self.what} took no input for {timeout}s")
                    select.select([], [self._fd()], [], left)

    def write_some(self, data: bytes) -> int:
        """Write what fits now, without waiting: how many bytes (0: no room yet)."""
        with self._lock:
            return self._write_some(memoryview(data))

    def _write_some(self, view: memoryview) -> int:
        try:
            written = os.write(self._fd(), view)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EIO, errno.EBADF):
                raise StateError(f"{self.what} takes no more input: its command ended "
                                 "or closed its stdin") from exc
            raise
        if written:
            self._on_input(bytes(view[:written]))
        return written

    def _fd(self) -> int:
        if self.fd < 0:
            raise StateError(f"{self.what}: its input is closed")
        return self.fd

    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal's size (the command gets SIGWINCH); StateError without one."""
        if not self.terminal:
            raise StateError(f"{self.what} has no terminal to resize (start it with tty)")
        if not (0 < rows < 65536 and 0 < cols < 65536):
            raise StateError(f"invalid terminal size {rows}x{cols}: expected rows and "
                             "columns from 1 to 65535")
        with self._lock:
            pty.set_window_size(self._fd(), rows, cols)

    def end(self) -> None:
        """End of input: a pipe is closed (the command reads EOF); a terminal stays, as
        its master carries the output too (type Ctrl-D to end a shell's input)."""
        if not self.terminal:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def take_input(stdio: ContainerStdio, *, tty: bool, interactive: bool, what: str,
               on_input: Callable[[bytes], None]) -> tuple[LiveInput | None, int]:
    """Once the container process started: where its live input goes (None: nowhere),
    and the copy of its pty's master the monitor reads (-1 without a terminal).

    Waits for the master, until the container has made its pty (or failed).
    Every fd of ``stdio`` is the caller's afterwards.
    """
    master = stdio.receive_terminal() if tty else None
    stdio.release()
    fd = master if master is not None else (stdio.stdin_w if interactive else -1)
    if fd < 0:
        return None, -1
    live = LiveInput(fd, terminal=master is not None, what=what, on_input=on_input)
    return live, (os.dup(master) if master is not None else -1)
