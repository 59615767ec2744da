"""Thin ctypes wrappers for the syscalls Python 3.11 lacks.

Each raises OSError with errno and the path(s) involved, as os.* functions do.
Man pages: mount(2), umount(2), pivot_root(2), unshare(2), setns(2),
sethostname(2), prctl(2), capset(2), mknod(2), netdevice(7).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct

__all__ = [
    "CAN_FORK_SIBLING",
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "MOUNT_ATTR_NODEV",
    "MOUNT_ATTR_NOEXEC",
    "MOUNT_ATTR_NOSUID",
    "MOUNT_ATTR_RDONLY",
    "MS_BIND",
    "MS_MOVE",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "MS_SLAVE",
    "MS_STRICTATIME",
    "clear_ambient_caps",
    "drop_bounding_caps",
    "fork_into_pid_ns",
    "fork_sibling",
    "fork_with",
    "loopback_up",
    "mount",
    "mount_setattr",
    "pidfd_open",
    "pivot_root",
    "set_caps",
    "set_dumpable",
    "set_name",
    "set_no_new_privs",
    "set_pdeathsig",
    "sethostname",
    "setns",
    "umount",
    "unshare",
    "unshare_pid_and_fork",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}.get(os.uname().machine, 155)
#: clone(2), on the architectures whose argument order fork_sibling's zeros suit.
_SYS_CLONE = {"x86_64": 56, "aarch64": 220, "riscv64": 220}.get(os.uname().machine)
CAN_FORK_SIBLING = _SYS_CLONE is not None
_CLONE_PARENT = 0x00008000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long
_prctl_name = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong,
                               ctypes.c_ulong, ctypes.c_ulong, use_errno=True)(("prctl", _libc))


def _check(result: int, *paths: str | None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        names = [p for p in paths if p]
        if len(names) == 2:
            raise OSError(err, os.strerror(err), names[0], None, names[1])
        raise OSError(err, os.strerror(err), *(names[:1]))
    return result


def _b(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def mount(source: str | None, target: str, fstype: str | None = None,
          flags: int = 0, data: str | None = None) -> None:
    """mount(2)."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), target)


def umount(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), flags), target)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make new_root the root, moving the old one to put_old."""
    res = _libc.syscall(ctypes.c_long(_SYS_PIVOT_ROOT), _b(new_root), _b(put_old))
    _check(res, new_root, put_old)


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(flags))


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2)."""
    _check(_libc.setns(fd, nstype))


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)))


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> None:
    _check(_libc.prctl(option, arg2, arg3, 0, 0))


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: exec can never grant more privileges."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_pdeathsig(sig: int) -> None:
    """PR_SET_PDEATHSIG: get ``sig`` when the parent thread dies."""
    _prctl(PR_SET_PDEATHSIG, sig)


def set_dumpable(dumpable: bool) -> None:
    """PR_SET_DUMPABLE: a non-dumpable process cannot be ptraced by its own uid."""
    _prctl(PR_SET_DUMPABLE, int(dumpable))


def set_name(name: str) -> None:
    """PR_SET_NAME: the process name shown by ps (15 bytes at most).

    Called first thing in freshly forked processes: through a prototype
    taking the bytes as they are, so no ctypes array type is made per call.
    """
    _check(_prctl_name(PR_SET_NAME, name.encode()[:15], 0, 0, 0))


def drop_bounding_caps(keep_mask: int, last_cap: int) -> None:
    """Drop every capability not in keep_mask from the bounding set."""
    for cap in range(last_cap + 1):
        if not keep_mask & (1 << cap):
            _prctl(PR_CAPBSET_DROP, cap)


def clear_ambient_caps() -> None:
    """Empty the ambient capability set."""
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


#: Made here, not at the first call: that is in each freshly forked child, where a
#: new ctypes array type and function object cost copied pages as well as time.
_CapDataPair = _CapData * 2
_libc.capset.restype = ctypes.c_int


def set_caps(effective: int, permitted: int, inheritable: int = 0) -> None:
    """capset(2) with the 64-bit (version 3) layout."""
    header = _CapHeader(0x20080522, 0)
    data = _CapDataPair()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data))


SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (netdevice(7))."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_SYS_MOUNT_SETATTR = 442  # the same on every architecture (new syscall table)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(path: str, attr_set: int, recursive: bool = True) -> None:
    """mount_setattr(2): set flags on a mount and, recursively, all below it.

    Unlike a remount, this reaches every submount of a recursive bind, so a
    read-only bind of a tree is read-only all the way down.
    """
    attr = _MountAttr(attr_set, 0, 0, 0)
    flags = _AT_RECURSIVE if recursive else 0
    _check(_mount_setattr(_SYS_MOUNT_SETATTR, _AT_FDCWD, _b(path), flags, attr, _MOUNT_ATTR_SIZE),
           path)


#: syscall(2) typed for mount_setattr: no ctypes objects made per call (spares call it
#: for every bind, in a fresh fork each, where each new object costs copied pages).
_mount_setattr = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p,
                                  ctypes.c_uint, ctypes.POINTER(_MountAttr), ctypes.c_size_t,
                                  use_errno=True)(("syscall", _libc))
_MOUNT_ATTR_SIZE = ctypes.sizeof(_MountAttr)


def unshare_pid_and_fork(own_pidns_fd: int) -> int:
    """fork() a child that is pid 1 of a new pid namespace; we stay where we are.

    unshare(CLONE_NEWPID) only changes where our *children* go; setns back to
    our own pid namespace afterwards makes the next fork ordinary again.
    Only call this in a single-threaded process.
    """
    unshare(CLONE_NEWPID)
    try:
        return os.fork()
    finally:
        if os.getpid() != 1:
            setns(own_pidns_fd, CLONE_NEWPID)


def fork_sibling() -> int:
    """fork(), except that the child is our parent's child (clone(2) with CLONE_PARENT).

    Our parent then reaps it and gets its real wait status, as if it had
    forked it itself. Returns 0 in the child, as fork does. Only where
    CAN_FORK_SIBLING; only in a single-threaded process.
    """
    return fork_with(_CLONE_PARENT)


def fork_with(flags: int) -> int:
    """fork() as clone(2) with ``flags`` (CLONE_PARENT, CLONE_NEW*): Python's fork hooks
    run around it as around os.fork (``PyOS_BeforeFork`` and the rest). Returns 0 in
    the child, as fork does. Only where CAN_FORK_SIBLING; only in a single-threaded
    process.
    """
    if _SYS_CLONE is None:
        raise OSError(errno.ENOSYS, f"clone is not wired up for {os.uname().machine}")
    _before_fork()
    pid = _pylibc.syscall(_SYS_CLONE, flags | signal.SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        _after_fork_child()
        return 0
    err = ctypes.get_errno()
    _after_fork_parent()
    if pid < 0:
        raise OSError(err, os.strerror(err))
    return pid


#: syscall(2) called with the GIL held, as os.fork holds it: the child of
#: fork_sibling must come back holding it, for PyOS_AfterFork_Child.
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long
_pylibc.syscall.argtypes = [ctypes.c_long] + [ctypes.c_ulong] * 5
#: Looked up once here: looked up in the child, each would be a dlsym and a new
#: function object there, on pages it then copies.
_before_fork = ctypes.pythonapi.PyOS_BeforeFork
_after_fork_child = ctypes.pythonapi.PyOS_AfterFork_Child
_after_fork_parent = ctypes.pythonapi.PyOS_AfterFork_Parent
for _hook in (_before_fork, _after_fork_child, _after_fork_parent):
    _hook.argtypes, _hook.restype = [], None
del _hook


def fork_into_pid_ns(pidfd: int, own_pidns_fd: int, fork=os.fork) -> int:
    """fork() a child into the pid namespace of the process ``pidfd`` refers to.

    setns(pidfd, CLONE_NEWPID) changes only where our *children* go (to a
    namespace below ours); setns back afterwards, in the parent only (the
    child may not name an ancestor of its own namespace). ``fork``: os.fork,
    or fork_sibling. Only call this in a single-threaded process.
    """
    setns(pidfd, CLONE_NEWPID)
    pid = -1
    try:
        pid = fork()
        return pid
    finally:
        if pid != 0:
            setns(own_pidns_fd, CLONE_NEWPID)


def pidfd_open(pid: int) -> int:
    """A pidfd for ``pid`` (pidfd_open(2)); it becomes readable when pid exits."""
    return os.pidfd_open(pid)
