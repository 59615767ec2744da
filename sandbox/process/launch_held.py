"""The held route: a spare holds the container ready, and the Python target is forked into it.

A Python target (``Sandbox(spec, target=...)``) needs the caller's memory,
so its process is a fork of the caller. From a process's second target on,
the container's init is a spare from the zygote, given the plan with
``hold=True``: it builds the container and holds it (``init.hold``), while
this process forks only the target's process, straight into the init's pid
namespace (``target.enter_held``), and reaps it: so a large caller is
forked once per target, not twice, and gets the target's real wait status
(``os.abort()`` is a SIGABRT). A target that can be forked elsewhere (a
fork server's ``ServedTarget``) is forked there when it can be.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable

from ..errors import HostError
from ..plan import Plan
from .container import ChildProcess, ContainerProcess, Target
from .fds import ChildFds, flush_stdio
from .kernel import Kernel
from .launch_direct import own_pidns_fd
from .launch_zygote import ZygoteClient, release_spare
from .spare import spare_flags
from .target import enter_held


class HeldLauncher:
    """Starts a held container through the zygote, then forks ``target`` into it."""

    def __init__(self, target: Target, kernel: Kernel | None = None) -> None:
        self.target = target
        self.kernel = kernel or Kernel()

    def start(self, plan: Plan, fds: ChildFds, prepare: Callable[[], None]) -> ContainerProcess:
        zygote = ZygoteClient.get()
        plan = plan._replace(hold=True)
        try:
            with zygote.lock:
                spare = zygote.handed_spare(plan, fds, fresh=2)
            if spare is None:
                raise HostError("the zygote process could not make a container for the target")
            release_spare(spare, plan, prepare)
            proc = ContainerProcess(spare.pid, spare.pidfd, direct=False, holder=spare.sock)
            try:
                proc.target = self._fork(plan, fds, spare.pidfd, spare.sock.fileno())
            except OSError as exc:
                if exc.errno not in (errno.ENOMEM, errno.ESRCH):
                    _abandon(proc)
                    raise
                # the init failed and is exiting (its pid namespace takes no new
                # process: ENOMEM) or is gone (setns: ESRCH); its status pipe says
                # why, read as for a command
            except BaseException:
                _abandon(proc)
                raise
        finally:
            for fd in fds.passed():
                os.close(fd)
        with zygote.lock:
            zygote.ask_for_spare(spare_flags(plan.unshared_first))
        return proc

    def _fork(self, plan: Plan, fds: ChildFds, init_pidfd: int, sock_fd: int) -> ChildProcess:
        """Fork the target's process into the held container (fds stay open here)."""
        elsewhere = getattr(self.target, "fork_elsewhere", None)
        if elsewhere is not None:
            forked = elsewhere(plan, fds, init_pidfd, sock_fd)
            if forked is not None:
                return ChildProcess(*forked)
        flush_stdio()
        pid = self.kernel.fork_into_pidns(init_pidfd, own_pidns_fd())
        if pid == 0:
            enter_held(plan, fds, self.target, init_pidfd, sock_fd, self.kernel.child())
        return ChildProcess(pid, self.kernel.pidfd_open(pid))


def _abandon(proc: ContainerProcess) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.close()
