"""Namespaces of its own for a copy of a process that runs inside a sandbox, made without privilege.

A process in a sandbox (a job's step: a pytest that collected once and runs
each test in a copy of itself) has no capability to make namespaces; a user
namespace it makes gives it them, over what it makes there. ``fork_nested``
forks a child into a new user namespace (its ids mapped to themselves) with
new mount, pid, network, IPC and UTS namespaces owned by it: the child is
pid 1 of its pid namespace, has a private tmpfs on /tmp and /dev/shm and only
``lo`` (up), and whatever it starts dies with it (the kernel ends a pid
namespace with its pid 1).

With ``own_root`` in a sandbox made with ``root_view``, it also gets a root
filesystem of its own: an overlay over each of the sandbox's writable mounts
(the root, through its view, which shows it without the mounts on it: a user
namespace may not take a tree whose mounts it would reveal; the image's other
overlays; the workspace), their upper dirs on a tmpfs of its own, the other
mounts (/proc, /dev, /sys) bound as they are, ``keep`` bound through
writable, then pivot_root. What it writes is its own and goes with it. Where
that cannot be made (overlayfs in a user namespace wants user xattrs on its
upper dir's tmpfs: Linux 6.6), it runs on the sandbox's root, as without it,
and ``$SANDBOX_NESTED_ROOT`` says which (``own``, or ``shared: why``).

What it does not get: a cgroup of its own (``delegated_cgroup`` makes one in a
sandbox that has a subtree), and a /proc of its own (the sandbox's /proc has
masked paths, and a user namespace may not mount a proc that shows more: the
sandbox's stays, showing the sandbox's pids). Where the sandbox may not make
user namespaces (a seccomp filter, a sysctl), it raises the OSError the
kernel gave.

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
from .linux.mountinfo import unescape
from .plan import SeccompFilter
from .securejoin import within
from .security.filters import filter_for
from .security.profile import NESTED_MOUNT_FLAGS, NESTED_NAMESPACES
from .spec import ROOT_VIEW

#: The namespaces of a nested copy.
NESTED = NESTED_NAMESPACES
#: Where a nested copy gets an empty tmpfs of its own.
PRIVATE_DIRS = ("/tmp", "/dev/shm")
PRIVATE_ROOT, PRIVATE_TMPFS, BIND_TREE = NESTED_MOUNT_FLAGS
#: What tells a nested copy whether it has a root filesystem of its own.
ROOT_ENV = "SANDBOX_NESTED_ROOT"
#: Mounts a copy with a root of its own binds as they are: read-only ones, /dev (its
#: device nodes), and these kernel filesystems. Every other one gets an overlay.
KERNEL_FILESYSTEMS = ("proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "bpf", "debugfs",
                      "tracefs", "securityfs", "fusectl", "binfmt_misc", "hugetlbfs", "configfs")


class Confinement(NamedTuple):
    """What a copy is put under: this process's capabilities and a filter to stack."""

    bounding: int
    effective: int
    permitted: int
    inheritable: int
    filter: SeccompFilter


def fork_nested(seccomp: str | None = None, *, own_root: bool = False, keep: tuple[str, ...] = ()) -> int:
    """fork() into nested namespaces: 0 in the child (already settled in them, pid 1),
    the child's pid in the caller's. Only from a single-threaded process.

    ``own_root``: a root filesystem of its own (see above), with the directories
    ``keep`` bound through writable (what the copy writes for its caller).

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
            _settle(uid, gid, own_root, keep)
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


def _settle(uid: int, gid: int, own_root: bool = False, keep: tuple[str, ...] = ()) -> None:
    """In the child: the same ids inside as outside, private mounts, a root of its own
    if asked and possible, fresh /tmp, lo up."""
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    linux.mount(None, "/", None, PRIVATE_ROOT)
    if own_root:
        os.environ[ROOT_ENV] = _own_root(keep)
    for path in PRIVATE_DIRS:
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", PRIVATE_TMPFS, "mode=1777")
    linux.loopback_up()


#: Where the copy stages its new root (a tmpfs of its own there, out of sight once pivoted).
STAGING = "/tmp"


def _own_root(keep: tuple[str, ...]) -> str:
    """Make a root filesystem of its own and pivot into it: "own"; or leave the sandbox's
    as it was: "shared: why"."""
    if not os.path.isdir(ROOT_VIEW):
        return f"shared: the sandbox has no view of its root at {ROOT_VIEW}"
    linux.mount("tmpfs", STAGING, "tmpfs", PRIVATE_TMPFS, "mode=0700")
    try:
        _check_user_xattrs(STAGING)
        root = _stage_root(keep)
    except OSError as exc:
        linux.umount(STAGING, linux.MNT_DETACH)  # with whatever was mounted in it
        return f"shared: {exc.strerror} ({exc.filename})"
    cwd = os.getcwd()
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount(".", linux.MNT_DETACH)  # the old root, the staging tmpfs with it
    os.chdir(cwd)  # the same path, in the new root: relative paths mean what they meant
    return "own"


def _check_user_xattrs(directory: str) -> None:
    """OSError unless the tmpfs at ``directory`` keeps user xattrs (Linux 6.6+). Without
    them an overlay still mounts, but removing a lower layer's directory fails with EIO
    (its upper copy cannot be marked opaque): better the sandbox's root than that."""
    try:
        os.setxattr(directory, "user.sandbox", b"1")
    except OSError as exc:
        raise OSError(exc.errno, "this kernel's tmpfs keeps no user xattrs, which overlayfs "
                      "needs in a user namespace (Linux 6.6)", directory) from None


def _stage_root(keep: tuple[str, ...]) -> str:
    """The new root under STAGING: an overlay of each writable mount of the sandbox, in
    mount order (the root's through its view), the others bound with what is on them
    (``KERNEL_FILESYSTEMS``)."""
    root = f"{STAGING}/root"
    os.mkdir(root)
    bound: list[str] = []
    for index, (point, fstype, writable) in enumerate(_mounts()):
        if point == ROOT_VIEW or any(within(point, top) for top in (STAGING, *PRIVATE_DIRS, *bound)):
            continue  # fresh ones come later; a bound mount brought what is on it
        target = root + point if point != "/" else root
        if point == "/" or (writable and point != "/dev" and fstype not in KERNEL_FILESYSTEMS):
            upper, work = f"{STAGING}/{index}-upper", f"{STAGING}/{index}-work"
            os.mkdir(upper)
            os.mkdir(work)
            lower = _escaped(ROOT_VIEW if point == "/" else point)
            linux.mount("overlay", target, "overlay", PRIVATE_TMPFS,
                        f"lowerdir={lower},upperdir={upper},workdir={work},userxattr")
        else:
            linux.mount(point, target, None, BIND_TREE, None)
            bound.append(point)
    for path in keep:
        linux.mount(path, root + path, None, BIND_TREE, None)
    return root


def _escaped(path: str) -> str:
    """A path as overlayfs's options take it: its separators (, and :) escaped."""
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def _mounts() -> list[tuple[str, str, bool]]:
    """(mount point, filesystem type, writable) of each mount, parents first."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, post_fields = pre.split(), post.split()
            found.append((unescape(fields[4]), post_fields[0], "rw" in fields[5].split(",")))
    return found


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
