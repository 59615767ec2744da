"""Namespaces of its own for a copy of a process that runs inside a sandbox, made without privilege.

A process in a sandbox (a job's step: a pytest that collected once and runs
each test in a copy of itself) has no capability to make namespaces; a user
namespace it makes gives it them, over what it makes there. ``fork_nested``
forks a child into a new user namespace (its ids mapped to themselves) with
new mount, pid, network, IPC and UTS namespaces owned by it: the child is
pid 1 of its pid namespace, has a private tmpfs on /tmp and /dev/shm and only
``lo`` (up), and whatever it starts dies with it (the kernel ends a pid
namespace with its pid 1).

What it does not get: a cgroup of its own (the sandbox's limits cover it and
its siblings together), a /proc of its own (the sandbox's /proc has masked
paths, and a user namespace may not mount a proc that shows more: the
sandbox's stays, showing the sandbox's pids), and a root filesystem of its
own (what it writes outside /tmp and /dev/shm, later copies see). Where the
sandbox may not make user namespaces (a seccomp filter, a sysctl), it raises
the OSError the kernel gave.
"""

from __future__ import annotations

import os

from . import linux

#: The namespaces of a nested copy.
NESTED = (linux.CLONE_NEWUSER | linux.CLONE_NEWNS | linux.CLONE_NEWPID | linux.CLONE_NEWNET
          | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS)
#: Where a nested copy gets an empty tmpfs of its own.
PRIVATE_DIRS = ("/tmp", "/dev/shm")


def fork_nested() -> int:
    """fork() into nested namespaces: 0 in the child (already settled in them, pid 1),
    the child's pid in the caller's. Only from a single-threaded process.

    OSError in the caller when the kernel refuses the namespaces; in the child,
    a failure to settle (a mount refused) exits it with status 125 after saying
    why on stderr.
    """
    uid, gid = os.geteuid(), os.getegid()
    pid = linux.fork_with(NESTED)
    if pid == 0:
        try:
            _settle(uid, gid)
        except OSError as exc:
            os.write(2, f"sandbox: cannot settle in nested namespaces: {exc}\n".encode())
            os._exit(125)
    return pid


def _settle(uid: int, gid: int) -> None:
    """In the child: the same ids inside as outside, private mounts, fresh /tmp, lo up."""
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    for path in PRIVATE_DIRS:
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=1777")
    linux.loopback_up()


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
