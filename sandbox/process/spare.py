"""A spare: the next container's first process, forked before it is asked for.

Forking a Python process costs milliseconds on small VMs (page tables in the
parent, page faults in the child before it first runs), and so does unshare.
So the zygote (single-threaded and small: see ``spawner``) forks the *next*
container's first process ahead of time, when its owner asks for it (after
each container that fitted one): pid 1 of a new pid namespace,
PR_SET_PDEATHSIG, its own session, garbage collection off, a netlink socket
in the host's network namespace (for a bridge's veth), every namespace but
the cgroup one already unshared, ``lo`` up, the init's signal handlers
installed, and /proc, /dev and /sys made (with runc's masks) in a staging
tmpfs of its own mount namespace, for the plan's ``pseudo_fs`` step to move
into the new root. It holds no fd but its end of a socketpair and that netlink
socket, and waits on the socketpair for (plan, fds). The zygote sends the other
end, with a pidfd, to the owner.

The owner hands a plan over itself (``Spare.hand_over``, then
``Spare.release``), and the two sides work in parallel:

    owner                                   spare
    send (plan, fds)  ───────────────────►  make / private, walk the mounts
    write its pid to each cgroup.procs
    send "go" (or the join's error)  ─────► unshare(CLONE_NEWCGROUP): the cgroup
                                            namespace's root is the sandbox's cgroup
                                            hooks, the command (as child.py)

The command never runs before the spare is in the sandbox's cgroup, so the
limits hold from its first instruction; a failed join comes back as the
usual SetupError for step "join cgroup".

While it waits, the spare's root is a *slave* of the host's (mounts made on
the host later still show in it, unmounts reach it); the plan's first step
makes it private, as for any container. It is not in any sandbox cgroup and
is named ``sandbox-spare``. It dies with the zygote (pdeathsig) or when its
socket closes (``discard``, or its owner's exit). A plan fits a spare when it
has no steps to run in the host's namespaces (pre_ops) but those done ahead
and unshares the same namespaces.

A *hold* plan (a Python target's) keeps the socket open after the "go": the
spare sends ``HELD`` on it once the container is ready, and exits when the
owner closes its end (``child.hold``, ``target``).
"""

from __future__ import annotations

import fcntl
import gc
import os
import pickle
import select
import signal
import socket
import time

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small
if TYPE_CHECKING:
    from typing import NoReturn

from .. import linux
from ..plan import Plan
from ..linux.proc import own_start_time
from . import setup
from .child import (SETUP_FAILED, Forwarder, arrange_fds, close_all_but, finish_setup, in_step,
                    install_forwarder, join_cgroup, leave_parent, run_and_report)
from .setup import run_ops

MAX_PLAN = 1 << 20
GO = b"go"


class JoinFailed(Exception):
    """The parent could not move the spare into the sandbox's cgroup."""


#: Steps in the host's namespaces that every spare has done ahead (see spare_main).
DONE_AHEAD = frozenset({"host_netlink"})


def fits(plan: Plan, flags: int) -> bool:
    """True when a spare unshared with ``flags`` can become this plan's container."""
    return (spare_flags(plan.unshare_flags) == flags
            and all(op.kind in DONE_AHEAD for op in plan.pre_ops))


def spare_flags(unshare_flags: int) -> int:
    """What a spare unshares ahead: everything but the cgroup namespace."""
    return unshare_flags & ~linux.CLONE_NEWCGROUP


class Spare:
    """The owner's handle on one waiting spare (the zygote, its parent, reaps it)."""

    def __init__(self, pid: int, pidfd: int, sock: socket.socket, flags: int) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.sock = sock
        self.flags = flags
        self.owner = os.getpid()

    def alive(self) -> bool:
        return self.owner == os.getpid() and not select.select([self.pidfd], [], [], 0)[0]

    def hand_over(self, plan: Plan, fds: tuple[int, int, int, int], trace: bool) -> tuple[int, int]:
        """Send the plan: the spare starts on its mounts; (pid, pidfd), now the caller's.

        Raises OSError if the spare is gone before it got the plan (the
        caller then forks a fresh one). Call ``release`` next.
        """
        socket.send_fds(self.sock, [pickle.dumps((plan, trace))], list(fds))
        return self.pid, self.pidfd

    def release(self, plan: Plan) -> None:
        """Join the spare to the plan's cgroup, then let it go on (or fail at "join cgroup").

        After hand_over every failure reaches the parent through the status
        pipe, as from a fresh fork. A hold plan's socket stays open: it is
        how the container's init and its target meet.
        """
        try:
            join_cgroup(plan.cgroup_procs, self.pid)
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
            return  # a forked copy of the parent: the spare is not ours
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
        except ChildProcessError:
            pass  # reaped already (the zygote reaps every child)
        os.close(self.pidfd)


def fork_spare(flags: int, own_pidns_fd: int, staging: str | None = None) -> Spare:
    """Fork a spare that unshares ``flags``. Only from a single-threaded process.

    ``staging``: an empty directory to make /proc, /dev and /sys under, ahead
    (``setup.stage_pseudo_fs``); None to leave them to the plan.
    """
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = (os.getpid(), own_start_time())
    try:
        pid = linux.unshare_pid_and_fork(own_pidns_fd)
    except BaseException:
        parent_sock.close()
        child_sock.close()
        raise
    if pid == 0:
        spare_main(child_sock.fileno(), flags, parent, staging)
    child_sock.close()
    try:
        pidfd = os.pidfd_open(pid)
    except BaseException:
        parent_sock.close()
        raise
    return Spare(pid, pidfd, parent_sock, flags)


def spare_main(sock_fd: int, flags: int, parent: tuple[int, int | None],
               staging: str | None = None) -> NoReturn:
    """In the spare: get ready, wait for a plan, become its container."""
    gc.disable()  # a collection would touch, and so copy, the parent's whole heap
    try:
        sock_fd = _only_fd(sock_fd)
        leave_parent(parent)
        linux.set_name("sandbox-spare")
        forward = install_forwarder()
        if flags & linux.CLONE_NEWNET:
            setup.open_host_netlink()  # for a bridge plan's veth request, before unshare
        linux.unshare(flags)
        if flags & linux.CLONE_NEWNS:
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE, None)
        if flags & linux.CLONE_NEWNET:
            linux.loopback_up()
            setup.LOOPBACK_UP = True
        if flags & linux.CLONE_NEWNS and staging:
            setup.stage_pseudo_fs(staging)
        sock = socket.socket(fileno=sock_fd)
        msg, fds, _, _ = socket.recv_fds(sock, MAX_PLAN, 4)
        sock.detach()  # the fd stays open, for the "go"
    except BaseException:  # noqa: BLE001 - the parent sees a dead spare and forks afresh
        os._exit(SETUP_FAILED)
    if not msg:
        os._exit(0)  # discarded
    plan, trace = pickle.loads(msg)
    if trace:
        setup.TRACE = [("spare got the plan", time.perf_counter())]
    run_and_report(lambda: _become_container(plan, fds, sock_fd, forward))


def _only_fd(sock_fd: int) -> int:
    """Close every inherited fd but the socket (moved above 3); /dev/null on 0, 1, 2."""
    sock_fd = fcntl.fcntl(sock_fd, fcntl.F_DUPFD_CLOEXEC, 4)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != null:
            os.dup2(null, fd)
    close_all_but((sock_fd,), above=2)
    return sock_fd


def _become_container(plan: Plan, fds: list[int], sock_fd: int, forward: Forwarder) -> int:
    in_step("start", arrange_fds, *fds, (sock_fd, *setup.held_fds()))
    run_ops(plan.ops)
    in_step("join cgroup", _wait_for_go, sock_fd, not plan.hold)
    setup.mark("join cgroup")
    if plan.unshare_flags & linux.CLONE_NEWCGROUP:
        in_step("unshare namespaces", linux.unshare, linux.CLONE_NEWCGROUP)
    setup.mark("unshare")
    return finish_setup(plan, forward=forward, hold_fd=sock_fd)


def _wait_for_go(sock_fd: int, close: bool = True) -> None:
    """Block until the parent has joined us to the cgroup; raise its error if it could not."""
    reply = os.read(sock_fd, 4096)
    if close:
        os.close(sock_fd)
    if reply == GO:
        return
    if not reply:
        raise JoinFailed("the owner went away before the cgroup was joined")
    err, strerror, filename = pickle.loads(reply)
    raise OSError(err, strerror, filename)
