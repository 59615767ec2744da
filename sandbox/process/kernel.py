"""The one way from ``sandbox.process`` to the kernel: a Kernel object.

Every change a container's processes make goes through one Kernel: forks and
exec, namespaces, cgroup membership, mounts and the files of the new root,
credentials, file descriptors, signal dispositions, netlink requests and the
process's exit. Production code uses ``Kernel`` (over ``sandbox.linux`` and
``os``); unit tests pass a recorder (``tests/kernel_recorder.py``) and check
the whole order of a container's setup, for every start route, without root.
What the setup only reads (stat, readlink, /proc) it reads itself.

A Kernel also carries what its process did before it was given a plan (a
spare: the namespaces unshared, ``lo`` up, /proc, /dev and /sys staged, a
netlink socket opened in the host's network namespace): the steps ask it,
so no module global changes what a step does. One Kernel per process; a
forked child gets its own (``Kernel.child``).

A method that only passes its arguments on is the wrapped function itself
(a staticmethod): a freshly forked process copies every page it writes,
and a Python wrapper's function and code objects are written (reference
counts) at each call, so each layer costs copied pages in every fork.
"""

from __future__ import annotations

import _signal  # signal's C module: no enum wrapping in freshly forked children
import fcntl
import os
import resource
import select
import socket
import stat
import time

from .. import linux
from ..linux import pty, rtnetlink, seccomp, unix, userns
from ..linux.proc import namespace_ids

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small

if TYPE_CHECKING:
    from typing import NoReturn

#: Every signal a command starts with at its default disposition.
DEFAULT_SIGNALS = tuple(int(s) for s in _signal.valid_signals()
                        if s not in (_signal.SIGKILL, _signal.SIGSTOP) and s < _signal.SIGRTMIN)
RLIMITS = {
    "nofile": resource.RLIMIT_NOFILE, "fsize": resource.RLIMIT_FSIZE, "core": resource.RLIMIT_CORE,
    "nproc": resource.RLIMIT_NPROC, "stack": resource.RLIMIT_STACK,
    "memlock": resource.RLIMIT_MEMLOCK, "cpu": resource.RLIMIT_CPU, "as": resource.RLIMIT_AS,
}


class Kernel:
    """The syscalls of one container process, and what it did ahead of its plan."""

    def __init__(self, *, trace: bool = False) -> None:
        #: With tracing on: (step, time.perf_counter()) after each step.
        self.trace: list[tuple[str, float]] | None = [] if trace else None
        #: Where /proc, /dev and /sys were made ahead (a spare), or None.
        self.staged: str | None = None
        #: True once ``lo`` is up in this process's network namespace.
        self.loopback_is_up = False
        #: A NETLINK_ROUTE socket in the host's network namespace, opened before unshare.
        self.host_netlink: socket.socket | None = None
        #: An O_PATH fd on the writable layer's directory, held by the init for
        #: `sandbox commit` (pivot_root leaves no path to it), or -1.
        self.held_layer = -1
        #: An fd for the sandbox's user namespace, not yet entered, or -1: the namespace's
        #: own (made by this init), or a pidfd of the sandbox's init (an exec's).
        self.userns_fd = -1
        #: True once this process is in the sandbox's user namespace.
        self.in_userns = False
        #: The killed helper ``make_userns`` made the namespace with, until
        #: ``reap_userns_helper`` collects it (before this process forks again).
        self.userns_helper: userns.Helper | None = None

    def child(self, *, trace: bool = False) -> Kernel:
        """The Kernel of a process forked from this one (it starts with nothing done ahead)."""
        return Kernel(trace=trace)

    def mark(self, step: str) -> None:
        """Note that ``step`` is done (a no-op unless tracing)."""
        if self.trace is not None:
            self.trace.append((step, time.perf_counter()))

    # -- this process ------------------------------------------------------------

    set_pdeathsig = staticmethod(linux.set_pdeathsig)

    setsid = staticmethod(os.setsid)

    #: The process's name (comm).
    set_name = staticmethod(linux.set_name)

    #: What /proc/PID/cmdline shows for this process.
    set_cmdline = staticmethod(linux.set_cmdline)

    set_dumpable = staticmethod(linux.set_dumpable)

    set_signal = staticmethod(_signal.signal)

    def reset_signals(self) -> None:
        """Default dispositions and an empty mask: Python ignores SIGPIPE and the
        zygote SIGINT, and exec would pass those ignores on."""
        for sig in DEFAULT_SIGNALS:
            if _signal.getsignal(sig) != _signal.SIG_DFL:  # None: set outside Python
                try:
                    _signal.signal(sig, _signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        _signal.pthread_sigmask(_signal.SIG_SETMASK, ())

    def set_environ(self, env: dict[str, str]) -> None:
        """Make os.environ (and the C environment) exactly ``env``, changing only what differs."""
        for name in [n for n in os.environ if n not in env]:
            del os.environ[name]
        for name, value in env.items():
            if os.environ.get(name) != value:
                os.environ[name] = value

    exit = staticmethod(os._exit)

    # -- processes ---------------------------------------------------------------

    fork = staticmethod(os.fork)

    #: Fork a child that is pid 1 of a new pid namespace.
    fork_new_pidns = staticmethod(linux.unshare_pid_and_fork)

    def fork_into_pidns(self, pidfd: int, own_pidns_fd: int, sibling: bool = False) -> int:
        """Fork a child into the pid namespace of ``pidfd``'s process; with ``sibling``
        the child is our parent's (clone(CLONE_PARENT))."""
        fork = linux.fork_sibling if sibling else os.fork
        return linux.fork_into_pid_ns(pidfd, own_pidns_fd, fork=fork)

    def execve(self, path: str, argv: tuple[str, ...], env: dict[str, str]) -> NoReturn:
        """Replace this process with ``path`` (OSError if the kernel refuses)."""
        os.execve(path, list(argv), env)

    def spawn(self, path: str, argv: tuple[str, ...], env: dict[str, str]) -> int:
        """posix_spawn (vfork + exec: far cheaper than forking a Python process), every
        signal at its default disposition and none blocked."""
        return os.posix_spawn(path, list(argv), env, setsigdef=DEFAULT_SIGNALS, setsigmask=())

    def waitpid(self, pid: int) -> int:
        """Wait for child ``pid``; its wait status."""
        return os.waitpid(pid, 0)[1]

    kill = staticmethod(os.kill)

    def wait_any(self) -> tuple[int, int]:
        """waitpid(-1): (pid, wait status); ChildProcessError when no child is left."""
        return os.waitpid(-1, 0)

    def reap_exited(self) -> None:
        """Collect every child that has exited, without blocking."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    pidfd_open = staticmethod(os.pidfd_open)

    # -- file descriptors --------------------------------------------------------

    def pipe(self) -> tuple[int, int]:
        """A close-on-exec pipe: (read end, write end)."""
        return os.pipe2(os.O_CLOEXEC)

    dup = staticmethod(os.dup)

    def dup_above(self, fd: int, lowest: int) -> int:
        """A close-on-exec copy of ``fd`` numbered ``lowest`` or above."""
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)

    dup2 = staticmethod(os.dup2)

    close = staticmethod(os.close)

    #: Close every fd from ``low`` up to, not including, ``high``.
    close_range = staticmethod(os.closerange)

    open = staticmethod(os.open)

    read = staticmethod(os.read)

    write = staticmethod(os.write)

    #: Send one message with ``fds`` on unix socket ``sock`` (an object or an fd).
    send_fds = staticmethod(unix.send_fds)

    #: One message on unix socket ``sock`` (an object or an fd) and the fds that came
    #: with it (close-on-exec).
    recv_fds = staticmethod(unix.recv_fds)

    fchown = staticmethod(os.fchown)

    # -- terminals -----------------------------------------------------------------

    def open_pty(self) -> tuple[int, int]:
        """A new pty of this container's devpts (/dev/pts): (master, peer), close-on-exec,
        checked by fd, the peer reached from the master (``linux.pty.open_pty``)."""
        return pty.open_pty("/dev/pts")

    set_window_size = staticmethod(pty.set_window_size)

    #: Make terminal ``fd`` the controlling terminal of this session (its leader).
    set_controlling_tty = staticmethod(pty.set_controlling_tty)

    # -- namespaces and cgroups ----------------------------------------------------

    unshare = staticmethod(linux.unshare)

    #: (device, inode) of this process's namespaces ``names``, read through an fd on
    #: its /proc/PID/ns (opened before it left the host's mount namespace).
    namespace_ids = staticmethod(namespace_ids)

    setns = staticmethod(linux.setns)

    def join_cgroup(self, procs_files: tuple[str, ...], pid: int = 0) -> None:
        """Move process ``pid`` (0: this one) into the sandbox's cgroup(s), one
        cgroup.procs file per hierarchy; an OSError names the file refused."""
        data = str(pid).encode()
        for procs in procs_files:
            fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            try:
                try:
                    os.write(fd, data)
                except OSError as exc:
                    raise OSError(exc.errno, exc.strerror, procs) from exc
            finally:
                os.close(fd)

    # -- mounts and the files of the new root ----------------------------------------

    mount = staticmethod(linux.mount)

    umount = staticmethod(linux.umount)

    mount_setattr = staticmethod(linux.mount_setattr)

    pivot_root = staticmethod(linux.pivot_root)

    #: An overlay through fsopen/fsconfig(lowerdir+): for stacks too deep for one
    #: mount(2) option page.
    mount_overlay = staticmethod(linux.mount_overlay)

    chdir = staticmethod(os.chdir)

    def mkdir(self, path: str, mode: int) -> None:
        """Make a directory with exactly ``mode`` (the umask aside); an existing one is kept."""
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            return
        os.chmod(path, mode)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def mknod(self, path: str, mode: int, major: int, minor: int) -> None:
        os.mknod(path, stat.S_IFCHR | mode, os.makedev(major, minor))
        os.chmod(path, mode)

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, path)

    def touch(self, path: str) -> None:
        """Make an empty file unless one is there (a mount point for a file)."""
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))

    def write_file(self, path: str, text: str) -> None:
        with open(path, "w") as f:
            f.write(text)

    # -- network -----------------------------------------------------------------------

    sethostname = staticmethod(linux.sethostname)

    def loopback_up(self) -> None:
        linux.loopback_up()
        self.loopback_is_up = True

    def open_host_netlink(self) -> None:
        """Open ``host_netlink`` in the current (the host's) network namespace, above fd 3
        (0-3 become stdio and the status pipe)."""
        if self.host_netlink is None:
            sock = rtnetlink.open_socket()
            if sock.fileno() <= 3:
                high = self.dup_above(sock.fileno(), 4)
                sock.close()
                sock = socket.socket(fileno=high)
            self.host_netlink = sock

    def close_host_netlink(self) -> None:
        if self.host_netlink is not None:
            self.host_netlink.close()
            self.host_netlink = None

    def netlink_socket(self) -> socket.socket:
        """A NETLINK_ROUTE socket in the current network namespace."""
        return rtnetlink.open_socket()

    netlink_request = staticmethod(rtnetlink.request)

    interface_index = staticmethod(socket.if_nametoindex)

    # -- user namespace and seccomp ---------------------------------------------------------

    def make_userns(self, uid_map: str, gid_map: str, owner: tuple[int, int],
                    inside: int = 0) -> None:
        """Make the sandbox's user namespace (``userns_fd``), without entering it, and
        join new namespaces of the ``inside`` kinds that it owns (a new network
        namespace's lo is down: ``loopback_is_up`` no longer holds)."""
        self.userns_fd, self.userns_helper = userns.make_user_namespace(
            uid_map, gid_map, owner, inside)
        if inside & linux.CLONE_NEWNET:
            self.loopback_is_up = False

    def reap_userns_helper(self) -> None:
        """Collect the helper ``make_userns`` killed, so the next child takes its pid."""
        if self.userns_helper is not None:
            self.userns_helper.reap()
            self.userns_helper = None

    def idmapped_mount(self, source: str, target: str, attrs: int, recursive: bool) -> None:
        """Mount a copy of ``source`` on ``target``, its ids mapped as ``userns_fd``'s."""
        userns.idmapped_mount(source, target, self.userns_fd, attrs, recursive)

    #: The filesystem ids mounts made now record as their mounter's.
    set_fs_ids = staticmethod(userns.set_fs_ids)

    def keep_userns(self, fd: int) -> None:
        """Keep ``fd``, a pidfd of a process in the sandbox's user namespace, for
        ``enter_userns`` (setns by a pidfd with CLONE_NEWUSER joins that process's)."""
        self.userns_fd = fd

    def enter_userns(self) -> None:
        """Enter the user namespace ``userns_fd`` names (made by ``make_userns``, or
        kept by ``keep_userns``) and close its fd."""
        if self.userns_fd < 0:
            raise OSError(9, "no user namespace was made for this sandbox")
        linux.setns(self.userns_fd, linux.CLONE_NEWUSER)
        os.close(self.userns_fd)
        self.userns_fd = -1
        self.in_userns = True

    def join_userns(self, pidfd: int) -> None:
        """Enter the user namespace of ``pidfd``'s process (after its other namespaces)."""
        linux.setns(pidfd, linux.CLONE_NEWUSER)
        self.in_userns = True

    def set_sysctl(self, path: str, value: str) -> None:
        """Write a /proc/sys file (a setting of this process's namespaces)."""
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def reader_gone(self, fd: int) -> bool:
        """True when the read end of pipe ``fd`` (a write end) is closed (POLLERR)."""
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))

    #: Install a program compiled by the owner: one seccomp(2) call, no library.
    load_seccomp = staticmethod(seccomp.load_filter)

    # -- credentials ---------------------------------------------------------------------

    def set_rlimit(self, name: str, soft: int, hard: int) -> None:
        """Lower an rlimit; a hard limit above the current one is clamped to it."""
        res = RLIMITS[name]
        _, current = resource.getrlimit(res)
        if current != resource.RLIM_INFINITY:
            hard = min(hard, current)
        resource.setrlimit(res, (min(soft, hard), hard))

    drop_bounding_caps = staticmethod(linux.drop_bounding_caps)

    clear_ambient_caps = staticmethod(linux.clear_ambient_caps)

    def set_ids(self, uid: int, gid: int, groups: tuple[int, ...]) -> None:
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)

    set_caps = staticmethod(linux.set_caps)

    set_no_new_privs = staticmethod(linux.set_no_new_privs)
