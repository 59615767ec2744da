"""The zygote: a single-threaded helper that forks containers on request.

Started once per host process by ``spawner.Zygote`` (see there for why). It
reads (plan, fds) requests from its socket, starts each container with
``start_container`` (its spare, or a fresh fork), answers with the init's pid
and a pidfd for it, then forks the next spare. It
reaps its children (the inits) and exits when the socket closes, which
SIGKILLs every init it forked (they have PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket

from .. import linux
from . import child, execute, setup  # noqa: F401 - imported once here, not per fork
from ..plan import Plan
from .spawner import keep_spare, start_container

REAP_INTERVAL_MS = 200


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def import_steps(plan: Plan) -> None:
    """Import here, once, the modules the plan's ``call`` steps need.

    Imported in each forked child instead, they would cost every container
    their import time (pyroute2's codecs, for a bridge network: ~200 ms).
    They are not imported ahead: a zygote that never sees such a step stays
    small, and so do the containers it forks.
    """
    for op in (*plan.pre_ops, *plan.ops, *plan.hooks):
        if op.kind == "call":
            __import__(op.args[0].rpartition(".")[0])


def serve_one(sock: socket.socket) -> bool:
    """Handle one request; False when the owner has gone."""
    try:
        msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, 4)
    except ConnectionResetError:
        return False
    if not msg:
        return False
    plan, release = None, None
    try:
        plan = pickle.loads(msg)
        import_steps(plan)
        pid, pidfd, release = start_container(plan, tuple(fds))
        reply, out_fds = ("ok", pid), [pidfd]
    except Exception as exc:  # noqa: BLE001 - sent back to the owner
        reply, out_fds = ("error", f"{type(exc).__name__}: {exc}"), []
    for fd in fds:
        os.close(fd)
    try:
        socket.send_fds(sock, [pickle.dumps(reply)], out_fds)
    finally:
        for fd in out_fds:
            os.close(fd)
        if release is not None:
            release()  # a spare joins its cgroup while the owner reads the reply
    if plan is not None:
        keep_spare(plan)  # with no request's fds open
    return True


def main(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    linux.set_name("sandbox-zygote")
    sock = socket.socket(fileno=fd)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while True:
        if poller.poll(REAP_INTERVAL_MS) and not serve_one(sock):
            break
        reap()
    os._exit(0)
