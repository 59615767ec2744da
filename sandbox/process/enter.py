"""A process started in a running container (`sandbox exec`): its first process.

Forked by the owner (``launch_exec``) or its zygote, with the container
init's pidfd, it does what runc's nsexec does, in the order that matters:

1. fds: stdio on 0-2, the status pipe on 3, the console socket and the
   init's pidfd above; every other fd closed, before anything else (runc
   CVE-2024-21626: a host fd must never reach the container). A /dev/null
   of the host's is opened now, for later: the container's could be
   anything by then.
2. Its own session; death with its parent; non-dumpable (CVE-2019-5736:
   nothing in the container may ptrace it or open its /proc files).
3. The sandbox's cgroup, by the host's path: its limits hold from here on.
4. An fd on its own /proc/PID/ns, then one setns(pidfd, every namespace of
   the init but its user namespace, pid included): all joined at once
   (Linux 5.8's setns by pidfd), through a pidfd the owner checked by the
   init's start time, so no recycled pid is ever entered.
5. Each namespace checked against the init's (device and inode, read by
   the owner; pid against ``pid_for_children``): a mismatch ends here. (The
   user namespace is the one of the process the same pidfd names.)
6. As an init does from here, in the same order: its terminal if asked
   (made as root of the host, in the sandbox's devpts), then ``become``:
   the sandbox's user namespace first, if it has one, joined by the same
   pidfd (``Kernel.keep_userns``, then ``enter_userns``: setns(pidfd,
   CLONE_NEWUSER)), then the user, capabilities, rlimits and no_new_privs,
   and the sandbox's seccomp filter last; spawn the command, reap it and report its
   wait status. setns with a pid namespace moves only the *children* into
   it: the command runs inside, pid N of the container, its parent outside
   it (pid 0 from inside, as with `docker exec`), this process invisible to
   the container.

The user namespace is joined last and on its own, unlike runc's nsexec,
which joins it first: as the init does, the exec makes the terminal as
root of the host, in the sandbox's mount namespace, before it enters the
user namespace. A process in the namespace whose host uid the namespace
does not map (root of the host, until it becomes the user) cannot give a
pty it made to the user (fchown: EPERM), and one setns naming the user
namespace with the others would put it there at once. The other namespaces
are the host's user namespace's (the init made them as root of the host),
but a network or UTS namespace made with the sandbox's (``process.userns``);
this process, root of the host, may join all of them, but the host's only
before it is in the sandbox's. A process with threads cannot join a user
namespace: this one is a fresh fork of a single-threaded process (the
owner, or its zygote).

The command dies with the container (its pid namespace's init) and with
this process's cgroup; this process dies with its parent (pdeathsig).
"""

from __future__ import annotations

import gc
import os

from .. import linux
from ..linux.proc import own_start_time
from ..plan import Plan
from . import fds as fdmod
from .fds import STATUS_FD, ChildFds, flush_stdio
from .init import install_forwarder, leave_parent, run_and_report, start_command
from .kernel import Kernel
from .steps import in_step

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small

if TYPE_CHECKING:
    from typing import NoReturn

NAME = "sandbox-exec"
#: (clone flag, the init's namespace file, ours after setns) for each namespace joined.
NAMESPACES = (
    (linux.CLONE_NEWUSER, "user", "user"), (linux.CLONE_NEWNS, "mnt", "mnt"),
    (linux.CLONE_NEWUTS, "uts", "uts"), (linux.CLONE_NEWIPC, "ipc", "ipc"),
    (linux.CLONE_NEWNET, "net", "net"), (linux.CLONE_NEWCGROUP, "cgroup", "cgroup"),
    (linux.CLONE_NEWPID, "pid", "pid_for_children"),
)


def joined(flags: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the init's namespace files, ours to compare) for the namespaces in ``flags``."""
    chosen = [(theirs, ours) for flag, theirs, ours in NAMESPACES if flags & flag]
    return tuple(t for t, _ in chosen), tuple(o for _, o in chosen)


def fork_enter(kernel: Kernel, plan: Plan, fds: ChildFds, init_pidfd: int) -> int:
    """Fork an exec's first process (only from a single-threaded process); its pid."""
    flush_stdio()
    parent = (os.getpid(), own_start_time())
    pid = kernel.fork()
    if pid == 0:
        enter_main(plan, fds, init_pidfd, parent, kernel.child(trace=plan.trace))
    return pid


def enter_main(plan: Plan, fds: ChildFds, init_pidfd: int, parent: tuple[int, int | None],
               kernel: Kernel) -> NoReturn:
    """The whole life of an exec's first process: enter, run the command, report, exit."""
    gc.disable()  # a collection would touch, and so copy, the parent's whole heap
    kernel.mark("forked")

    def setup_and_run() -> int:
        pidfd = kernel.dup_above(init_pidfd, STATUS_FD + 1)
        console = in_step("start", fdmod.arrange, kernel, fds, (pidfd,))
        null = kernel.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        in_step("start", leave_parent, kernel, parent)
        kernel.set_dumpable(False)
        in_step("join cgroup", kernel.join_cgroup, plan.cgroup_procs)
        kernel.mark("join cgroup")
        in_step("enter namespaces", enter_namespaces, kernel, plan, pidfd)
        kernel.mark("enter namespaces")
        kernel.set_name(NAME)
        return start_command(plan, kernel, None, install_forwarder(kernel), console, null)

    run_and_report(kernel, setup_and_run)


def enter_namespaces(kernel: Kernel, plan: Plan, pidfd: int) -> None:
    """setns into every namespace of the init at once but its user namespace, check
    each was joined, and keep the pidfd for the user namespace, joined in ``become``."""
    own = kernel.open("/proc/self/ns", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    keep = False
    try:
        kernel.setns(pidfd, plan.unshare_flags | linux.CLONE_NEWPID)
        theirs, ours = joined(plan.unshare_flags | linux.CLONE_NEWPID)
        now = kernel.namespace_ids(own, ours)
        check_joined(plan, theirs, now)
        if plan.exec.userns is not None:
            kernel.keep_userns(pidfd)
            keep = True
    finally:
        kernel.close(own)
        if not keep:
            kernel.close(pidfd)


def check_joined(plan: Plan, theirs: tuple[str, ...], now: tuple[tuple[int, int], ...]) -> None:
    """OSError unless every namespace joined is the one the owner read of the init."""
    expected = tuple(tuple(ids) for ids in plan.enter[2])
    if len(expected) != len(theirs):
        raise OSError(f"the plan names {len(expected)} namespaces to check, not {len(theirs)}")
    for name, got, want in zip(theirs, now, expected):
        if tuple(got) != want:
            raise OSError(f"the {name} namespace joined is not the sandbox's (its init "
                          "ended meanwhile?)")
