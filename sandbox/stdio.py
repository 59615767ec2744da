"""The owner's ends of a container process's fds: pipes, stdin, and the console socket.

A sandbox's init and a process started in a running sandbox (``execute``)
get the same fds (``process.fds.ChildFds``): the status pipe, stdin, stdout
and stderr, and, for a command on a terminal, the console socket. This
module makes them, keeps the owner's ends, and receives the pty's master
that the container sends back on the console socket (``receive_terminal``);
``start_process`` hands them to the route that starts the process.

stdin is one of: /dev/null; a copy of a caller's fd; a pipe the monitor
fills with ``SandboxSpec.stdin``; a pipe held open for live input
(``interactive``); or, on a terminal, /dev/null for the init while the
command reads the pty, whose master takes the input.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from .linux.unix import recv_fds
from .plan import Plan
from .process.container import ContainerProcess, Target
from .process.fds import ChildFds
from .process.launcher import launcher_for

#: What the container says with the master (process.console.PTY_MESSAGE).
PTY_MESSAGE = b"pty"


class ContainerStdio:
    """The fds between this process and one container process, made at once.

    ``child`` goes to the launcher (which closes it); the rest is this
    process's: ``status_r``, ``stdout_r``, ``stderr_r``, ``stdin_w`` (-1 when
    there is no pipe to write to), and the console socket until the master
    came (``receive_terminal``). ``close`` closes what is still open.
    """

    def __init__(self, *, tty: bool = False, stdin_data: bool = False, interactive: bool = False,
                 stdin_fd: int | None = None) -> None:
        self._opened: list[int] = []
        try:
            self.status_r, status_w = self._pipe()
            self.stdout_r, out_w = self._pipe()
            self.stderr_r, err_w = self._pipe()
            in_r, self.stdin_w = self._stdin(tty, stdin_data or interactive, stdin_fd)
            self.console: socket.socket | None = None
            console_child = -1
            if tty:
                self.console, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                console_child = theirs.detach()
                self._opened.append(console_child)
        except BaseException:
            self.close()
            raise
        self.child = ChildFds(status_w, in_r, out_w, err_w, console_child)
        self._child_fds = set(self.child.passed())

    def _pipe(self) -> tuple[int, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        self._opened += [r, w]
        return r, w

    def _stdin(self, tty: bool, pipe: bool, stdin_fd: int | None) -> tuple[int, int]:
        """(the child's stdin, our write end or -1)."""
        if pipe and not tty:
            return self._pipe()
        if stdin_fd is not None and not tty:
            fd = os.dup(stdin_fd)
        else:
            fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        self._opened.append(fd)
        return fd, -1

    def handed_over(self) -> None:
        """The launcher has the child's ends (and closed them)."""
        self._opened = [fd for fd in self._opened if fd not in self._child_fds]

    def release(self) -> None:
        """The caller owns every fd of ours from now on (``close`` closes nothing more)."""
        self._opened = []

    def receive_terminal(self) -> int | None:
        """Block until the container sends the pty's master: the master (close-on-exec),
        or None if the container process ended first (its status pipe says why)."""
        assert self.console is not None
        try:
            data, fds = recv_fds(self.console.fileno(), 16, 1)
        except OSError:
            data, fds = b"", []
        finally:
            self.console.close()
            self.console = None
        if data != PTY_MESSAGE or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return None
        return fds[0]

    def close(self) -> None:
        """Close every fd still ours (after an error, or what nobody took)."""
        for fd in self._opened:
            try:
                os.close(fd)
            except OSError:
                pass
        self._opened = []
        if self.console is not None:
            self.console.close()
            self.console = None


def start_process(plan: Plan, stdio: ContainerStdio, target: Target | None,
                  prepare: Callable[[], None]) -> ContainerProcess:
    """Start the plan's first process on the route ``launcher_for`` chooses.

    The launcher closes the child's ends of ``stdio``, also on error; after an
    error here every other fd of ``stdio`` is closed too.
    """
    try:
        launcher = launcher_for(plan, target)
    except BaseException:
        stdio.close()
        raise
    stdio.handed_over()
    try:
        return launcher.start(plan, stdio.child, prepare)
    except BaseException:
        stdio.close()
        raise
