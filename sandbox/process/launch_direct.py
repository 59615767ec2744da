"""The direct route: this process forks the container's init.

Only from a single-threaded process (``launcher`` decides). The init is pid 1
of a new pid namespace, a fork of this process: for a Python target that is
what the target needs (the init forks it from its own copy); for a command
it costs this process's page tables once, which the zygote's small forks
avoid for every later container.
"""

from __future__ import annotations

import os

from ..linux.proc import own_start_time
from ..plan import Plan
from .fds import ChildFds, flush_stdio
from .kernel import Kernel

TYPE_CHECKING = False  # typing itself is not loaded: the zygote (which imports this) stays small

if TYPE_CHECKING:
    from collections.abc import Callable

    from .container import ContainerProcess, Target

_NS_FD: dict[int, int] = {}
_FORKED = [0]  # containers this process forked itself (one cell: no `global`)


def own_pidns_fd() -> int:
    """An fd for this process's pid namespace (reopened after a fork)."""
    pid = os.getpid()
    if pid not in _NS_FD:
        _NS_FD.clear()
        _NS_FD[pid] = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    return _NS_FD[pid]


def forked_here() -> int:
    """How many containers this process has forked itself."""
    return _FORKED[0]


def fork_init(kernel: Kernel, plan: Plan, fds: ChildFds, target: Target | None = None) -> int:
    """Fork the plan's init as pid 1 of a new pid namespace; its host pid. The fds stay open."""
    from .init import fresh_main

    flush_stdio()
    parent = (os.getpid(), own_start_time())
    pid = kernel.fork_new_pidns(own_pidns_fd())
    if pid == 0:
        fresh_main(plan, fds, parent, kernel.child(trace=plan.trace), target)
    return pid


class DirectLauncher:
    """Forks the init here; with a target, the init forks the target from its copy."""

    def __init__(self, target: Target | None = None, kernel: Kernel | None = None) -> None:
        self.target = target
        self.kernel = kernel or Kernel()

    def start(self, plan: Plan, fds: ChildFds, prepare: Callable[[], None]) -> ContainerProcess:
        from .container import ContainerProcess

        try:
            prepare()
            pid = fork_init(self.kernel, plan, fds, self.target)
            pidfd = self.kernel.pidfd_open(pid)
        finally:
            for fd in fds.passed():
                self.kernel.close(fd)
        _FORKED[0] += 1
        return ContainerProcess(pid, pidfd, direct=True)
