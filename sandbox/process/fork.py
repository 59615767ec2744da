"""Forking a container's first process: pid 1 of a new pid namespace.

Only from a single-threaded process (see ``spawner``). Kept apart from the
spawner so the zygote loads no more than it must: every container is a copy
of it (no subprocess, threading or dataclasses here).
"""

from __future__ import annotations

import os
import sys

from .. import linux
from ..linux.proc import own_start_time

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small
if TYPE_CHECKING:
    from ..plan import Plan

_NS_FD: dict[int, int] = {}


def own_pidns_fd() -> int:
    """An fd for this process's pid namespace (reopened after a fork)."""
    pid = os.getpid()
    if pid not in _NS_FD:
        _NS_FD.clear()
        _NS_FD[pid] = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    return _NS_FD[pid]


def flush_stdio() -> None:
    """Flush Python's stdout and stderr, or a forked child would write them again."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream has nothing to flush
            pass


def fork_container(plan: Plan, fds: tuple[int, int, int, int], target=None) -> int:
    """Fork the init as pid 1 of a new pid namespace; return its host pid."""
    from .child import container_main

    flush_stdio()
    parent = (os.getpid(), own_start_time())
    pid = linux.unshare_pid_and_fork(own_pidns_fd())
    if pid == 0:
        container_main(plan, fds, parent, target)
    return pid


def start_container(plan: Plan, fds: tuple[int, int, int, int], target=None) -> tuple[int, int]:
    """Fork the plan's init; (pid, pidfd). The fds stay open here."""
    pid = fork_container(plan, fds, target)
    return pid, os.pidfd_open(pid)


def reap_exited_children() -> None:
    """Collect every child that has exited, without blocking (zygote, held init)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
