"""The container's init seen from the parent: a pid, a pidfd, and how to end and reap it."""

from __future__ import annotations

import os
import select
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

#: A Python callable run in a sandbox in place of its command; its return value is
#: the exit status.
Target = Callable[[], "int | None"]


class ChildProcess(NamedTuple):
    """A process of ours, and a pidfd for it."""

    pid: int
    pidfd: int


@dataclass
class ContainerProcess:
    """The container's init, seen from the parent.

    For a Python target forked into a held container (``launch_held``) also
    the target's process, our own child (``target``), and our end of the
    init's socket (``holder``): closing it ends the init.
    """

    pid: int
    pidfd: int
    direct: bool  # we forked it, so we must reap it
    reaped: bool = field(default=False)
    target: ChildProcess | None = None
    holder: socket.socket | None = None
    target_status: int | None = None

    def send_signal(self, sig: int) -> None:
        """Signal the command (through its init, or straight to our forked target);
        SIGKILL always goes to the init: the whole pid namespace dies."""
        pidfd = self.target.pidfd if self.target and sig != signal.SIGKILL else self.pidfd
        if pidfd < 0:
            return
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            pass

    def reap_target(self) -> int:
        """Collect our forked target's wait status, then let its init go."""
        if self.target_status is None and self.target is not None:
            _, self.target_status = os.waitpid(self.target.pid, 0)
            os.close(self.target.pidfd)
            self.target = self.target._replace(pidfd=-1)
            self.release_init()
        return self.target_status or 0

    def release_init(self) -> None:
        """A held init exits when our end of its socket closes."""
        if self.holder is not None:
            self.holder.close()
            self.holder = None

    def reap(self) -> None:
        """Wait for the init to end; collect it when it is our child.

        A forked target is collected first: an exiting pid-1 init waits until
        every process of its namespace has been reaped, and the target's
        parent is this process (the init's exit kills the target).
        """
        self.release_init()
        if self.target is not None:
            self.reap_target()
        if self.direct and not self.reaped:
            os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
        else:
            select.select([self.pidfd], [], [])
        self.reaped = True

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        self.release_init()
