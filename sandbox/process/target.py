"""A Python target forked by its owner into a container a spare holds ready.

A target (a callable of the caller's, e.g. a pytest test) needs the caller's
memory, so its process must be a fork of the caller. Forking a large
process costs milliseconds; forking it twice (once for the init, once for
the target under it) cost twice that, and the exit of two large copies
after. So the container's init is a small spare from the zygote, and only
the target's process is a fork of the caller:

    owner                                  spare (pid 1, plan with hold=True)
    hand over the plan, make the cgroup,
    "go"                                   mounts, pivot_root, hooks ...
    setns(spare's pidfd, CLONE_NEWPID),
    fork ──► target process                "held" on the socket, then reaps
             join the cgroup                orphans until the owner closes
             wait for "held"                its end of the socket
             setns(pidfd, mnt|uts|ipc|net|cgroup)
             become the plan's user
             "started" on the status pipe
             call the target, _exit(status)
    waitpid (its child): the exit status;
    close the socket: the init exits and the pid namespace with it

The target's process is the owner's child, so the owner gets its real wait
status (os.abort() is a SIGABRT, not pid 1's odd death), and the init, being
pid 1, reaps what the target leaves behind.
"""

from __future__ import annotations

import fcntl
import gc
import os

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small
if TYPE_CHECKING:
    from typing import Callable, NoReturn

from .. import linux
from ..plan import Plan
from . import handshake
from .child import (HELD, SETUP_FAILED, STATUS_FD, arrange_fds, close_all_but, fail_setup,
                    in_step, join_cgroup, replace_environ, reset_signals, run_target)
from .execute import become
from .fork import flush_stdio, own_pidns_fd


class InitFailed(Exception):
    """The init closed its socket before the container was ready (it reported why)."""


def fork_target(plan: Plan, fds: tuple[int, int, int, int], target: Callable[[], int | None],
                init_pidfd: int, sock_fd: int) -> tuple[int, int]:
    """Fork the target's process into the held container; (pid, pidfd).

    ``fds`` = (status_w, stdin_r, stdout_w, stderr_w), as for the init;
    they stay open here. Only from a single-threaded process. A target that
    can be forked elsewhere (``forkserver.ServedTarget``) is forked there
    when it can be.
    """
    elsewhere = getattr(target, "fork_elsewhere", None)
    if elsewhere is not None:
        forked = elsewhere(plan, fds, init_pidfd, sock_fd)
        if forked is not None:
            return forked
    flush_stdio()
    pid = linux.fork_into_pid_ns(init_pidfd, own_pidns_fd())
    if pid == 0:
        target_main(plan, fds, target, init_pidfd, sock_fd)
    return pid, os.pidfd_open(pid)


def target_main(plan: Plan, fds: tuple[int, int, int, int], target: Callable[[], int | None],
                init_pidfd: int, sock_fd: int) -> NoReturn:
    """In the forked target: enter the container, become its user, run the target."""
    gc.disable()  # as in the init: a collection would copy the parent's whole heap
    try:
        _enter(plan, fds, init_pidfd, sock_fd)
    except InitFailed:
        os._exit(SETUP_FAILED)  # the init reported why
    except BaseException as exc:  # noqa: BLE001 - reported to the parent by name
        fail_setup(exc)
    run_target(target)


def _enter(plan: Plan, fds: tuple[int, int, int, int], init_pidfd: int, sock_fd: int) -> None:
    """Everything between the fork and the target: after it, only 0, 1 and 2 are open."""
    init_pidfd, sock_fd = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, STATUS_FD + 1)
                           for fd in (init_pidfd, sock_fd))
    in_step("start", arrange_fds, *fds, (init_pidfd, sock_fd))
    os.setsid()
    in_step("join cgroup", join_cgroup, plan.cgroup_procs)
    _wait_until_held(sock_fd)
    in_step("enter namespaces", linux.setns, init_pidfd,
            plan.unshare_flags & ~linux.CLONE_NEWPID)
    close_all_but((), above=STATUS_FD)
    reset_signals()
    env = become(plan.exec)
    replace_environ(env)
    handshake.send_started(STATUS_FD, os.getpid())
    os.close(STATUS_FD)


def _wait_until_held(sock_fd: int) -> None:
    """Block until the init has the container ready; InitFailed if it ended instead."""
    try:
        reply = os.read(sock_fd, 64)
    except OSError as exc:
        raise InitFailed(str(exc)) from exc
    if reply != HELD:
        raise InitFailed(repr(reply))
