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

Docker's default seccomp profile refuses those namespaces; a sandbox under
the ``nested`` profile (the default plus exactly what ``fork_nested`` does)
may make them, and ``fork_nested(seccomp="default")`` puts each copy back
under the default once it has settled: its capabilities those it had outside
(a new user namespace gives all of them), then the default filter, resolved
for those capabilities, stacked on the sandbox's (the kernel applies every
filter of a process; the strictest answer wins). Its code is then confined
as an ordinary sandbox's command is: it cannot make namespaces of its own.
``fork_confined`` does the same for a plain fork, where the kernel refuses
nested namespaces.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from . import linux
from .linux import seccomp as seccomp_call
from .linux.caps import last_cap
from .plan import SeccompFilter
from .security.filters import filter_for
from .security.profile import NESTED_MOUNT_FLAGS, NESTED_NAMESPACES

#: The namespaces of a nested copy.
NESTED = NESTED_NAMESPACES
#: Where a nested copy gets an empty tmpfs of its own.
PRIVATE_DIRS = ("/tmp", "/dev/shm")
PRIVATE_ROOT, PRIVATE_TMPFS = NESTED_MOUNT_FLAGS


class Confinement(NamedTuple):
    """What a copy is put under: this process's capabilities and a filter to stack."""

    bounding: int
    effective: int
    permitted: int
    inheritable: int
    filter: SeccompFilter


def fork_nested(seccomp: str | None = None) -> int:
    """fork() into nested namespaces: 0 in the child (already settled in them, pid 1),
    the child's pid in the caller's. Only from a single-threaded process.

    ``seccomp``: a profile ("default") the child stacks once it has settled, with
    this process's capabilities (``confinement``); compiled here, in the caller,
    once per process. OSError in the caller when the kernel refuses the
    namespaces; in the child, a failure to settle or to be confined (a mount
    refused) exits it with status 125 after saying why on stderr.
    """
    confined = confinement(seccomp) if seccomp else None
    uid, gid = os.geteuid(), os.getegid()
    pid = linux.fork_with(NESTED)
    if pid == 0:
        try:
            _settle(uid, gid)
            if confined is not None:
                _confine(confined, capabilities=True)
        except OSError as exc:
            os.write(2, f"sandbox: cannot settle in nested namespaces: {exc}\n".encode())
            os._exit(125)
    return pid


def fork_confined(seccomp: str) -> int:
    """os.fork(), the child under the filter of profile ``seccomp`` stacked as a nested
    copy's is (its capabilities are still this process's): for where the kernel refuses
    nested namespaces. A child that cannot be confined exits with status 125."""
    confined = confinement(seccomp)
    pid = os.fork()
    if pid == 0:
        try:
            _confine(confined, capabilities=False)
        except OSError as exc:
            os.write(2, f"sandbox: cannot confine the copy: {exc}\n".encode())
            os._exit(125)
    return pid


def confinement(seccomp: str) -> Confinement:
    """This process's capabilities, and the filter of profile ``seccomp`` resolved for its
    bounding set (the capability set its sandbox was given: so the sandbox's own
    profile resolves to the very program its sandbox was given)."""
    caps = _capabilities()
    found = filter_for(seccomp, caps["CapBnd"])
    if found is None:
        raise ValueError(f"{seccomp!r} is no filter to stack")
    return Confinement(caps["CapBnd"], caps["CapEff"], caps["CapPrm"], caps["CapInh"], found)


def _capabilities() -> dict[str, int]:
    with open("/proc/self/status") as f:
        return {key: int(value, 16) for key, _, value in (line.partition(":\t") for line in f)
                if key in ("CapBnd", "CapEff", "CapPrm", "CapInh")}


def _confine(confined: Confinement, *, capabilities: bool) -> None:
    """Capabilities back to ``confined``'s (a new user namespace gave all), no_new_privs,
    then the filter, on top of those the process has."""
    if capabilities:
        linux.drop_bounding_caps(confined.bounding, last_cap())
        linux.set_caps(confined.effective, confined.permitted, confined.inheritable)
    linux.set_no_new_privs()
    seccomp_call.load_filter(confined.filter.program, confined.filter.flags)


def _settle(uid: int, gid: int) -> None:
    """In the child: the same ids inside as outside, private mounts, fresh /tmp, lo up."""
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    linux.mount(None, "/", None, PRIVATE_ROOT)
    for path in PRIVATE_DIRS:
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", PRIVATE_TMPFS, "mode=1777")
    linux.loopback_up()


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
