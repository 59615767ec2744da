"""File descriptors of the container's processes: which fd is what, and nothing else open.

The parent hands a container four fds (``ChildFds``): the status pipe (the
handshake's messages), stdin, stdout and stderr, and a fifth for a command
on a terminal: the *console socket*, on which the container sends back the
master of the pty it made (``console``). Its first process puts the four
on 0-3, the console socket above them, and closes every other fd it
inherited (``arrange``): an fd of the host's that reached a container would
be a way out of it (runc CVE-2024-21626). Processes that hold no container's fds (a spare waiting for
its plan, a held init, the fork server) put /dev/null on 0-2 (``null_stdio``).
"""

from __future__ import annotations

import os
import sys
from collections import namedtuple

from .kernel import Kernel

#: Where the status pipe is in every container process.
STATUS_FD = 3


#: The most fds that come with a container's request: the four, and a console socket.
MAX_CHILD_FDS = 5


class ChildFds(namedtuple("ChildFds", ("status", "stdin", "stdout", "stderr", "console"),
                          defaults=(-1,))):
    """The parent's copies of a container's fds: status pipe (write end), stdin
    (read end), stdout and stderr (write ends), and the console socket (its end
    of a unix socket pair; -1 without a terminal)."""

    __slots__ = ()

    def passed(self) -> tuple[int, ...]:
        """The fds that exist: what is sent to another process, and closed after."""
        return tuple(self) if self.console >= 0 else tuple(self)[:4]


def arrange(kernel: Kernel, fds: ChildFds, keep: tuple[int, ...] = ()) -> int:
    """stdin/stdout/stderr on 0/1/2, the status pipe on 3, every other fd but ``keep``
    and the console socket closed; where the console socket is now (-1: none).

    ``keep`` must be above 3 (``Kernel.dup_above`` moves an fd there).
    """
    console = kernel.dup_above(fds.console, STATUS_FD + 1) if fds.console >= 0 else -1
    high = [kernel.dup(fd) for fd in (fds.stdin, fds.stdout, fds.stderr, fds.status)]
    moved = [fd if fd > STATUS_FD else kernel.dup(fd) for fd in high]
    for target, fd in enumerate(moved[:3]):
        kernel.dup2(fd, target, True)
    kernel.dup2(moved[3], STATUS_FD, False)
    close_all_but(kernel, (*keep, console) if console >= 0 else keep, above=STATUS_FD)
    return console


def close_all_but(kernel: Kernel, keep: tuple[int, ...], above: int) -> None:
    """Close every fd greater than ``above`` except those in ``keep``."""
    low = above + 1
    for fd in sorted(k for k in keep if k > above):
        kernel.close_range(low, fd)
        low = fd + 1
    kernel.close_range(low, os.sysconf("SC_OPEN_MAX"))


def null_stdio(kernel: Kernel, null: int = -1) -> None:
    """/dev/null on fds 0, 1 and 2 (``null``: one opened before, kept open here)."""
    own = null < 0
    if own:
        null = kernel.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != null:
            kernel.dup2(null, fd, True)
    if own and null > 2:
        kernel.close(null)


def only(kernel: Kernel, fd: int) -> int:
    """Keep nothing open but ``fd`` (moved above 3, returned) and /dev/null on 0-2."""
    fd = kernel.dup_above(fd, STATUS_FD + 1)
    null_stdio(kernel)
    close_all_but(kernel, (fd,), above=2)
    return fd


def flush_stdio() -> None:
    """Flush Python's stdout and stderr before a fork, or the child would write them again.

    A stream that cannot write (closed, or a test runner's capture of
    another process) has nothing that could be written twice.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
