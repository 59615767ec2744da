"""User namespaces and idmapped mounts: made by a privileged process for a sandbox.

``make_user_namespace`` makes a user namespace with a given uid and gid map
and returns an fd for it, without entering it: a helper task is cloned into
a new user namespace (clone(2) with CLONE_NEWUSER and CLONE_VM: it shares
this process's memory, so no page tables are copied, and runs only libc's
pause(3) on a small stack of its own), this process writes the helper's
/proc/PID/uid_map and gid_map (user_namespaces(7): the writer needs
CAP_SETUID and CAP_SETGID in the parent namespace), opens its ns/user and
kills it; the namespace lives on through the fd. The namespace is made with
the range's first ids as its owner (the effective ids at clone time), so
the kernel's per-user counts above it (inotify instances, user namespaces)
are the sandbox's own, not root's.

The helper is reaped later (``Helper.reap``, before this process forks
again), not at once: a killed task still has to be scheduled to end, and a
newly cloned one waits on whichever CPU the scheduler put it, behind what
runs there (the idle CPU of a waiting parent does not pull it), so waiting
for it here cost a scheduler slice whenever the other CPU was busy.

``idmapped_mount`` clones a tree (open_tree(2)), gives it the namespace's
mapping (mount_setattr(2) with MOUNT_ATTR_IDMAP: files owned by 0 on disk
show as the range's first id) and attaches it (move_mount(2)).
``set_fs_ids`` sets the filesystem ids a mount (an overlay) records as its
mounter's, keeping this process's capabilities.
"""

from __future__ import annotations

import ctypes
import os
import signal

from .syscalls import CLONE_NEWUSER, _CapDataPair, _CapHeader, _check, _MountAttr, setns

__all__ = ["Helper", "idmapped_mount", "make_user_namespace", "set_fs_ids"]

_CLONE_VM = 0x100
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442  # every architecture
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x100000
_STACK_SIZE = 16384

_libc = ctypes.CDLL(None, use_errno=True)
#: glibc's clone(fn, stack, flags, arg, parent_tid): with CLONE_PIDFD the kernel puts a
#: pidfd of the child in *parent_tid (Linux 5.2)
_clone = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                          ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), use_errno=True)(("clone", _libc))
_CLONE_PIDFD = 0x1000
_PIDFD = ctypes.c_int(-1)
#: The helper's whole program: pause(3), called by libc's clone wrapper on the helper's stack.
_PAUSE = ctypes.cast(_libc.pause, ctypes.c_void_p)
#: Made at import (in the zygote), not in each container's freshly forked first process.
_STACK = ctypes.create_string_buffer(_STACK_SIZE)
_STACK_TOP = (ctypes.addressof(_STACK) + _STACK_SIZE - 64) & ~0xF
_open_tree = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p,
                              ctypes.c_uint, use_errno=True)(("syscall", _libc))
_mount_setattr = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p,
                                  ctypes.c_uint, ctypes.POINTER(_MountAttr), ctypes.c_size_t,
                                  use_errno=True)(("syscall", _libc))
_move_mount = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_int, ctypes.c_char_p, ctypes.c_uint,
                               use_errno=True)(("syscall", _libc))
_capget = _libc.capget
_capset = _libc.capset
_CAP_V3 = 0x20080522
_setfsuid = _libc.setfsuid
_setfsgid = _libc.setfsgid


def make_user_namespace(uid_map: str, gid_map: str, owner: tuple[int, int],
                        inside: int = 0) -> tuple[int, Helper]:
    """A new user namespace with these maps, owned by ``owner`` (uid, gid): its fd, and
    the helper it was made with, killed, for the caller to reap before it forks again.

    ``inside``: CLONE_NEW* flags (network, UTS) of namespaces the helper is
    cloned into as well, which the new user namespace owns; this process
    joins them before the helper is killed. Root in the sandbox then holds
    its capabilities there (its links, its hostname), and this process, root
    of the host, still may do anything there.

    Only from a single-threaded process with CAP_SETUID, CAP_SETGID (and
    real uid 0, to take its effective ids back).
    """
    pid, pidfd = _clone_helper(owner, inside)
    try:
        proc = f"/proc/{_pid_in_proc(pidfd)}"
        for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
            fd = os.open(f"{proc}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        if inside:
            setns(pidfd, inside)  # all at once, through the pidfd (Linux 5.8)
        ns_fd = os.open(f"{proc}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(pidfd)
    os.kill(pid, signal.SIGKILL)
    return ns_fd, Helper(pid, _open_last_pid())


class Helper:
    """The killed helper a user namespace was made with, until ``reap`` collects it."""

    def __init__(self, pid: int, last_pid_fd: int) -> None:
        self.pid = pid
        #: /proc/sys/kernel/ns_last_pid, opened while /proc was still the host's (it is
        #: read-only in the container by the time the helper is reaped), or -1.
        self.last_pid_fd = last_pid_fd

    def reap(self) -> None:
        """Wait for the helper's end (usually over by now); in a pid namespace's init,
        hand its pid out again next (ns_last_pid, pid_namespaces(7)), so the command is
        still the init's first child, pid 2."""
        os.waitpid(self.pid, 0)
        if self.last_pid_fd < 0:
            return
        try:
            os.write(self.last_pid_fd, b"%d" % (self.pid - 1))
        except OSError:
            pass  # pids merely go on from the helper's
        finally:
            os.close(self.last_pid_fd)
            self.last_pid_fd = -1


def _open_last_pid() -> int:
    """ns_last_pid of this process's pid namespace for writing, if it is the namespace's init."""
    if os.getpid() != 1:
        return -1
    try:
        return os.open("/proc/sys/kernel/ns_last_pid", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return -1


def _pid_in_proc(pidfd: int) -> int:
    """The pid of ``pidfd``'s process as the /proc mounted here numbers it.

    A container's first process is pid 1 of its own namespace while /proc is
    still the host's: the ``Pid:`` line of a pidfd's fdinfo is in the
    namespace of the procfs it is read from (proc(5)).
    """
    fd = os.open(f"/proc/self/fdinfo/{pidfd}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        info = os.read(fd, 4096)
    finally:
        os.close(fd)
    start = info.find(b"\nPid:")
    if start < 0:
        raise OSError(3, "the helper is not in this /proc")
    return int(info[start + 5:info.index(b"\n", start + 5)])


def _clone_helper(owner: tuple[int, int], inside: int) -> tuple[int, int]:
    """Clone the paused helper into a new user namespace owned by ``owner``, and into
    new namespaces of the ``inside`` kinds, which that one owns; its pid and a pidfd of it.

    Nothing but this process's SIGKILL is ever sent to the helper (it is in
    no session or process group of its own, and its pid is known only here),
    so it runs nothing but pause(3) until then.
    """
    os.setegid(owner[1])
    os.seteuid(owner[0])  # the new namespace's owner; effective capabilities drop meanwhile
    try:
        pid = _clone(_PAUSE, _STACK_TOP,
                     CLONE_NEWUSER | inside | _CLONE_VM | _CLONE_PIDFD | signal.SIGCHLD,
                     None, ctypes.byref(_PIDFD))
        err = ctypes.get_errno()
    finally:
        os.seteuid(0)  # capabilities come back with uid 0 (capabilities(7))
        os.setegid(0)
    if pid < 0:
        raise OSError(err, f"clone(CLONE_NEWUSER): {os.strerror(err)}")
    return pid, _PIDFD.value


def idmapped_mount(source: str, target: str, userns_fd: int, attrs: int = 0,
                   recursive: bool = False) -> None:
    """Attach at ``target`` a copy of the tree at ``source`` mapped through ``userns_fd``'s
    namespace, with MOUNT_ATTR_* ``attrs`` (``recursive``: submounts too)."""
    rec = _AT_RECURSIVE if recursive else 0
    fd = _check(_open_tree(_SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(source),
                           _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | rec), source)
    try:
        attr = _MountAttr(attrs | MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        _check(_mount_setattr(_SYS_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH | rec, attr,
                              ctypes.sizeof(attr)), source)
        _check(_move_mount(_SYS_MOVE_MOUNT, fd, b"", _AT_FDCWD, os.fsencode(target),
                           _MOVE_MOUNT_F_EMPTY_PATH), target)
    finally:
        os.close(fd)


def set_fs_ids(uid: int, gid: int) -> None:
    """setfsuid(2)/setfsgid(2) to ``uid``/``gid``, keeping the effective capabilities
    (which leaving fsuid 0 drops: they are raised again to the permitted set)."""
    _setfsgid(gid)
    _setfsuid(uid)
    if uid != 0:
        header = _CapHeader(_CAP_V3, 0)
        data = _CapDataPair()
        _check(_capget(ctypes.byref(header), data))
        for half in data:
            half.effective = half.permitted
        _check(_capset(ctypes.byref(header), data))
