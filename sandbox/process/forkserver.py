"""A fork server: a copy of its owner, made once, that forks Python targets for it.

A Python target (a pytest test, say) needs its caller's memory, so its
process is a fork of the caller (``target``). But a fork write-protects
every page of the forking process, and each page it writes afterwards is
copied: a busy caller (pytest between two tests) that forks once per target
pays for every page it touches in between (bench/README.md has the
figures). A fork server takes the forking off the owner: it is forked
from the owner once, then idles, and forks each target from its own,
unchanging copy; the owner's pages stay its own.

Its copy is the owner's memory *when the server was made*: the owner must
only ask it for targets a fork of itself made now would run the same way
(``pytest_sandbox`` makes a new server whenever its session changed). A
target is named by a picklable key that the server turns into the callable
with ``resolve``, a function of the owner's, copied along with the rest.

The target's process is forked with CLONE_PARENT (``Kernel.fork_into_pidns``):
it is the owner's child, as after a fork of its own, so the owner reaps it
and gets its real wait status; the server never waits for it. The server
has its own session and, once it is made, no fd but its socket (and
/dev/null on 0-2): a pipe of the owner's still sees its end of file when
the owner closes it. It dies with its owner (PR_SET_PDEATHSIG) and exits
when its socket closes.
"""

from __future__ import annotations

import gc
import os
import pickle
import socket
from collections.abc import Callable, Hashable

from .. import linux
from ..errors import HostError
from ..linux.proc import own_start_time
from ..plan import Plan
from . import fds as fdmod
from .fds import ChildFds, flush_stdio
from .handshake import SETUP_FAILED
from .init import leave_parent
from .kernel import Kernel
from .launch_direct import own_pidns_fd
from .target import enter_held

Target = Callable[[], "int | None"]
MAX_REQUEST = 1 << 20
NAME = "sandbox-forker"
READY = b"ready"


class ForkServer:
    """The owner's handle on its fork server (forked when made)."""

    def __init__(self, resolve: Callable[[Hashable], Target]) -> None:
        """Fork the server now. Only from a single-threaded process.

        ``resolve(key)``, called in the server, returns the target ``key``
        names there; what it raises is sent back, and the owner forks that
        target itself instead.
        """
        if not linux.CAN_FORK_SIBLING:
            raise HostError(f"no fork server on {os.uname().machine}: clone(CLONE_PARENT) "
                            "is only wired up for x86_64, aarch64 and riscv64")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        owner = (os.getpid(), own_start_time())
        self.kernel = Kernel()
        flush_stdio()
        try:
            pid = self.kernel.fork()
        except BaseException:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            try:
                _serve(self.kernel.child(), theirs.fileno(), resolve, owner)
            finally:
                os._exit(1)
        theirs.close()
        self.pid = pid
        self.sock: socket.socket | None = ours
        self.owner = os.getpid()
        self.forked = 0  # targets the server forked
        try:
            ready = ours.recv(16)  # once it has come, the server holds none of our fds
        except OSError:
            ready = b""
        if ready != READY:
            self.close()
            raise HostError("the fork server exited as it started")

    def fork_target(self, plan: Plan, fds: ChildFds, key: Hashable,
                    init_pidfd: int, sock_fd: int) -> tuple[int, int] | None:
        """Have the server fork target ``key`` into the held container: (pid, pidfd).

        As ``launch_held.HeldLauncher`` forks a target, except that the
        target is named by its key. None when the server cannot: it is
        gone (then it is closed here) or could not resolve the key; the
        caller forks the target itself. Raises OSError as a fork would
        (ENOMEM: the container's init is exiting), HostError if the server
        died in the middle of the request.
        """
        if self.sock is None or self.owner != os.getpid():
            return None
        try:
            # the plan is unpickled in the child, without the steps only its init runs
            slim = plan._replace(ops=(), hooks=(), pre_ops=())
            request = pickle.dumps((key, pickle.dumps(slim)))
            self.kernel.send_fds(self.sock, request, [*fds.passed(), init_pidfd, sock_fd])
        except OSError:
            self.close()
            return None
        try:
            reply = self.sock.recv(65536)
        except OSError:
            reply = b""
        if not reply:
            self.close()
            raise HostError("the fork server exited while it forked a target")
        kind, value = pickle.loads(reply)
        if kind == "oserror":
            raise OSError(*value)
        if kind != "ok":
            return None
        self.forked += 1
        return value, os.pidfd_open(value)

    def alive(self) -> bool:
        return self.sock is not None and self.owner == os.getpid()

    def close(self) -> None:
        """End the server and reap it (in a forked copy of the owner: only drop the socket)."""
        sock, self.sock = self.sock, None
        if sock is None:
            return
        sock.close()
        if self.owner == os.getpid():
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


class ServedTarget:
    """A target its fork server can fork: ``key`` names it there.

    Called, it runs ``local``, the same target in this process: that is what
    a fork of this process runs when the server cannot fork it.
    """

    __slots__ = ("key", "local", "server")

    def __init__(self, server: ForkServer, key: Hashable, local: Target) -> None:
        self.server = server
        self.key = key
        self.local = local

    def __call__(self) -> int | None:
        return self.local()

    def fork_elsewhere(self, plan: Plan, fds: ChildFds, init_pidfd: int,
                       sock_fd: int) -> tuple[int, int] | None:
        """Used by ``launch_held``: (pid, pidfd) from the server, or None."""
        return self.server.fork_target(plan, fds, self.key, init_pidfd, sock_fd)


def _serve(kernel: Kernel, sock_fd: int, resolve: Callable[[Hashable], Target],
           owner: tuple[int, int | None]) -> None:
    """In the server: fork each requested target, until the owner closes the socket."""
    gc.disable()  # a collection would touch, and so copy, the whole heap the owner shares
    with open("/proc/self/comm") as f:
        owner_name = f.read().strip()
    leave_parent(kernel, owner)
    kernel.set_name(NAME)
    sock = socket.socket(fileno=fdmod.only(kernel, sock_fd))
    sock.send(READY)
    while True:
        msg, fds = kernel.recv_fds(sock, MAX_REQUEST, 6)
        if not msg:
            kernel.exit(0)
        _pid, reply = _fork_one(kernel, msg, fds, resolve, owner_name)
        for fd in fds:
            os.close(fd)
        sock.send(pickle.dumps(reply))


def _fork_one(kernel: Kernel, msg: bytes, fds: list[int], resolve: Callable[[Hashable], Target],
              owner_name: str) -> tuple[int, tuple]:
    """Fork one target (the child never returns); (pid, reply for the owner)."""
    try:
        if len(fds) != 6:
            raise ValueError(f"{len(fds)} file descriptors came with the request, not 6")
        key, plan = pickle.loads(msg)  # the plan still pickled: every object made here
        target = resolve(key)             # costs this process a copied page per request
    except Exception as exc:
        return -1, ("error", f"{type(exc).__name__}: {exc}")
    status_w, stdin_r, stdout_w, stderr_w, init_pidfd, held_fd = fds
    try:
        pid = kernel.fork_into_pidns(init_pidfd, own_pidns_fd(), sibling=True)
    except OSError as exc:
        return -1, ("oserror", (exc.errno, exc.strerror))
    if pid == 0:  # the target's process: it must never go back to the server's loop
        child = kernel.child()
        try:
            child.set_name(owner_name)
            plan = pickle.loads(plan)
        except BaseException:
            child.exit(SETUP_FAILED)
        enter_held(plan, ChildFds(status_w, stdin_r, stdout_w, stderr_w), target, init_pidfd,
                   held_fd, child)
    return pid, ("ok", pid)
