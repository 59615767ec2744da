"""A spare: the next container's init, made before it is asked for.

Forking a Python process costs milliseconds on small VMs (page tables in the
parent, page faults in the child before it first runs), and so does
unshare. So the zygote (``zygote``: single-threaded and small) forks the
*next* container's init ahead of time, when its owner asks (after each
container that fitted one): pid 1 of a new pid namespace, PR_SET_PDEATHSIG,
its own session, garbage collection off, a netlink socket in the host's
network namespace (for a bridge's veth), every namespace but the cgroup one
unshared, ``lo`` up, the init's signal handlers installed, and /proc, /dev
and /sys made (with runc's masks) in a staging tmpfs of its own mount
namespace, for the plan's ``pseudo_fs`` step to move into the new root. It
holds no fd but its end of a socketpair and that netlink socket, and waits
for (plan, fds). The zygote sends the other end, with a pidfd, to the owner,
who hands the plan over itself, and the two sides work in parallel:

    owner (Spare.hand_over, release)        spare (spare_main)
    send (plan, fds)  ───────────────────►  make / private, walk the mounts
    write its pid to each cgroup.procs
    send "go" (or the join's error)  ─────► unshare(CLONE_NEWCGROUP): the cgroup
                                            namespace's root is the sandbox's cgroup
                                            init.finish: hooks, the command

The command never runs before the spare is in the sandbox's cgroup, so the
limits hold from its first instruction; a failed join comes back as the
usual SetupError for step "join cgroup".

While it waits, the spare's root is a *slave* of the host's (mounts made on
the host later still show in it); the plan's first step makes it private,
as for any container. It is in no sandbox cgroup, is named
``sandbox-spare``, and dies with the zygote (pdeathsig) or when its socket
closes (``Spare.discard``, or its owner's exit). A plan fits a spare when it
unshares the same namespaces and has no steps to run in the host's
namespaces but those done ahead. A hold plan (a Python target's) keeps the
socket open after the "go": the init says HELD on it (``init.hold``).
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import socket

from .. import linux
from ..linux.proc import own_start_time
from ..plan import Plan
from . import fds as fdmod
from . import steps
from .fds import MAX_CHILD_FDS, ChildFds
from .handshake import SETUP_FAILED
from .init import Forwarder, finish, install_forwarder, leave_parent, run_and_report
from .kernel import Kernel
from .steps import in_step

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small

if TYPE_CHECKING:
    from typing import NoReturn

NAME = "sandbox-spare"
MAX_PLAN = 1 << 20
GO = b"go"
#: Steps in the host's namespaces that every spare has done ahead (see _get_ready).
DONE_AHEAD = frozenset({"host_netlink"})


class JoinFailed(Exception):
    """The owner could not move the spare into the sandbox's cgroup."""


#: Namespaces a spare and its plan may disagree on: a plan that wants one the spare did
#: not unshare (the spare was made for a user namespace's plan, which makes its own) has it
#: unshared when it starts (``late``); a user namespace's plan leaves the spare's behind.
LATE = linux.CLONE_NEWNET | linux.CLONE_NEWUTS


def fits(plan: Plan, flags: int) -> bool:
    """True when a spare unshared with ``flags`` can become this plan's container: it
    unshared what the plan unshares first, but for LATE ones, and nothing the plan's
    container does not have of its own (a network namespace for a plan on the host's)."""
    first, every = spare_flags(plan.unshared_first), spare_flags(plan.unshare_flags)
    return (first & ~flags & ~LATE == 0 and flags & ~every == 0
            and all(op.kind in DONE_AHEAD for op in plan.pre_ops))


def late(plan: Plan, flags: int) -> int:
    """What a fitting spare unshared with ``flags`` still unshares for ``plan``."""
    return spare_flags(plan.unshared_first) & ~flags


def spare_flags(unshare_flags: int) -> int:
    """What a spare unshares ahead: everything but the cgroup namespace."""
    return unshare_flags & ~linux.CLONE_NEWCGROUP


class Spare:
    """The owner's handle on one waiting spare (the zygote, its parent, reaps it)."""

    def __init__(self, pid: int, pidfd: int, sock: socket.socket, flags: int,
                 kernel: Kernel) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.sock = sock
        self.flags = flags
        self.kernel = kernel
        self.owner = os.getpid()

    def alive(self) -> bool:
        return self.owner == os.getpid() and not select.select([self.pidfd], [], [], 0)[0]

    def hand_over(self, plan: Plan, fds: ChildFds) -> None:
        """Send the plan: the spare starts on its mounts; its pid and pidfd are now
        the caller's. OSError if it is gone before it got the plan. Call ``release`` next."""
        self.kernel.send_fds(self.sock, pickle.dumps(plan), fds.passed())

    def release(self, plan: Plan) -> None:
        """Join the spare to the plan's cgroup, then let it go on (or fail at "join cgroup").

        After hand_over every failure reaches the parent through the status
        pipe, as from a fresh fork. A hold plan's socket stays open: it is
        how the container's init and its target meet.
        """
        try:
            self.kernel.join_cgroup(plan.cgroup_procs, self.pid)
            reply = GO
        except OSError as exc:
            reply = pickle.dumps((exc.errno, exc.strerror, exc.filename))
        try:
            self.sock.send(reply)
        except OSError:
            pass  # it died meanwhile: the status pipe says why
        if not plan.hold:
            self.sock.close()

    def discard(self) -> None:
        """End an unused spare and reap it."""
        self.sock.close()
        if self.owner != os.getpid():
            return  # a forked copy of the owner: the spare is not ours
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
        except ChildProcessError:
            pass  # reaped already (the zygote reaps every child)
        os.close(self.pidfd)


def fork_spare(kernel: Kernel, flags: int, own_pidns_fd: int,
               staging: str | None = None) -> tuple[int, int, socket.socket]:
    """Fork a spare that unshares ``flags``: (pid, pidfd, the owner's end of its socket).

    Only from a single-threaded process. ``staging``: an empty directory to
    make /proc, /dev and /sys under, ahead; None to leave them to the plan.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = (os.getpid(), own_start_time())
    try:
        pid = kernel.fork_new_pidns(own_pidns_fd)
    except BaseException:
        ours.close()
        theirs.close()
        raise
    if pid == 0:
        spare_main(theirs.fileno(), flags, parent, staging, kernel.child())
    theirs.close()
    try:
        pidfd = kernel.pidfd_open(pid)
    except BaseException:
        ours.close()
        raise
    return pid, pidfd, ours


def spare_main(sock_fd: int, flags: int, parent: tuple[int, int | None], staging: str | None,
               kernel: Kernel) -> NoReturn:
    """In the spare: get ready, wait for a plan, become its container's init."""
    gc.disable()  # a collection would touch, and so copy, the parent's whole heap
    try:
        sock_fd, forward = _get_ready(kernel, sock_fd, flags, parent, staging)
        msg, fds = kernel.recv_fds(sock_fd, MAX_PLAN, MAX_CHILD_FDS)  # the fd stays open, for the "go"
    except BaseException:
        kernel.exit(SETUP_FAILED)
    if not msg:
        kernel.exit(0)  # discarded
    plan = pickle.loads(msg)
    if plan.trace:
        kernel.trace = []
        kernel.mark("spare got the plan")
    run_and_report(kernel, lambda: _become(plan, ChildFds(*fds), sock_fd, forward, kernel, flags))


def _get_ready(kernel: Kernel, sock_fd: int, flags: int, parent: tuple[int, int | None],
               staging: str | None) -> tuple[int, Forwarder]:
    """Everything a spare does before its plan; its socket's fd (moved above 3)."""
    sock_fd = fdmod.only(kernel, sock_fd)
    leave_parent(kernel, parent)
    kernel.set_name(NAME)
    forward = install_forwarder(kernel)
    # for a bridge plan's veth request, in the host's network namespace: before unshare, or
    # for a spare that unshares none (a user namespace's plan makes its own later) at any time
    kernel.open_host_netlink()
    kernel.unshare(flags)
    if flags & linux.CLONE_NEWNS:
        kernel.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE, None)
    if flags & linux.CLONE_NEWNET:
        kernel.loopback_up()
    if flags & linux.CLONE_NEWNS and staging:
        steps.stage_pseudo_fs(kernel, staging)
    return sock_fd, forward


def _become(plan: Plan, fds: ChildFds, sock_fd: int, forward: Forwarder, kernel: Kernel,
            flags: int) -> int:
    """What the spare (unshared with ``flags``) left to the plan, the plan's mounts, the
    owner's "go", the cgroup namespace, then init.finish."""
    held = (kernel.host_netlink.fileno(),) if kernel.host_netlink is not None else ()
    console = in_step("start", fdmod.arrange, kernel, fds, (sock_fd, *held))
    if missing := late(plan, flags):
        in_step("unshare namespaces", kernel.unshare, missing)
    steps.run(plan.ops, kernel)
    in_step("join cgroup", _wait_for_go, kernel, sock_fd, not plan.hold)
    kernel.mark("join cgroup")
    if plan.unshare_flags & linux.CLONE_NEWCGROUP:
        in_step("unshare namespaces", kernel.unshare, linux.CLONE_NEWCGROUP)
    kernel.mark("unshare")
    return finish(plan, kernel, forward=forward, hold_fd=sock_fd, console_fd=console)


def _wait_for_go(kernel: Kernel, sock_fd: int, close: bool = True) -> None:
    """Block until the owner has joined us to the cgroup; raise its error if it could not."""
    reply = kernel.read(sock_fd, 4096)
    if close:
        kernel.close(sock_fd)
    if reply == GO:
        return
    if not reply:
        raise JoinFailed("the owner went away before the cgroup was joined")
    err, strerror, filename = pickle.loads(reply)
    raise OSError(err, strerror, filename)
