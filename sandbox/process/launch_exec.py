"""The exec route: a process started in a running container (`sandbox exec`).

Not a new container: its plan names the container's init (``Plan.enter``:
host pid, start time, and the namespaces' device and inode numbers, read
here) and holds no setup steps. This process opens a pidfd on the init and
checks that the pid is still the init it was (its start time), then forks
the exec's first process (``enter.enter_main``), which joins the cgroup and
the namespaces through that pidfd and runs the command as an init would:
it reports "started" and "exit" on the status pipe, so the owner watches
it as it watches a container's init. From a multi-threaded process the
zygote forks it instead (``launch_zygote``): fork() is unsafe there.

It is a route of its own behind the one Launcher interface: the same fds,
the same handshake, the same ContainerProcess (the exec's first process in
place of an init), so the monitor, the Result and the terminal work as for
a sandbox.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import StateError
from ..linux.proc import namespace_ids, process_start_time
from ..plan import Plan
from .container import ContainerProcess
from .enter import fork_enter
from .fds import ChildFds
from .kernel import Kernel


def init_namespaces(pid: int, start_time: int | None, flags: int) -> tuple[tuple[int, int], ...]:
    """The (device, inode) of each namespace ``flags`` names (pid too) of the init ``pid``,
    in ``enter.joined`` order; StateError if that pid is no longer that init."""
    from .. import linux
    from .enter import joined

    names, _ = joined(flags | linux.CLONE_NEWPID)
    try:
        ids = namespace_ids(f"/proc/{pid}/ns", names)
    except OSError:
        ids = ()
    if not ids or process_start_time(pid) != start_time:
        raise StateError(f"the sandbox's init (pid {pid}) has ended: the sandbox is not running")
    return ids


def open_init(pid: int, start_time: int | None, kernel: Kernel) -> int:
    """A pidfd on the init, checked after it was opened: the pid is still that process."""
    try:
        pidfd = kernel.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = -1
    if pidfd >= 0 and process_start_time(pid) == start_time:
        return pidfd
    if pidfd >= 0:
        kernel.close(pidfd)
    raise StateError(f"the sandbox's init (pid {pid}) has ended: the sandbox is not running")


class ExecLauncher:
    """Starts a process in a running container: forked here, or by the zygote."""

    def __init__(self, here: bool, kernel: Kernel | None = None) -> None:
        self.here = here
        self.kernel = kernel or Kernel()

    def start(self, plan: Plan, fds: ChildFds, prepare: Callable[[], None]) -> ContainerProcess:
        pid, start_time, _ = plan.enter
        init_pidfd = -1
        try:
            prepare()
            init_pidfd = open_init(pid, start_time, self.kernel)
            if self.here:
                child = fork_enter(self.kernel, plan, fds, init_pidfd)
                pidfd = self.kernel.pidfd_open(child)
            else:
                from .launch_zygote import ZygoteClient

                zygote = ZygoteClient.get()
                with zygote.lock:
                    child, pidfd = zygote.enter(plan, fds, init_pidfd)
        finally:
            if init_pidfd >= 0:
                self.kernel.close(init_pidfd)
            for fd in fds.passed():
                self.kernel.close(fd)
        return ContainerProcess(child, pidfd, direct=self.here)
