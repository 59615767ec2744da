"""The zygote: a single-threaded helper that forks containers on request.

Started once per host process by ``spawner.Zygote`` (see there for why). It
reads requests from its socket, each a pickled (kind, value):

- ("spawn", plan), with the container's fds: forks its first process and
  answers ("ok", pid) with a pidfd for it;
- ("spare", (flags, staging)): forks a spare (``spare``) that unshares ``flags``
  (and stages /proc, /dev and /sys on the ``staging`` directory) and
  answers ("ok", (pid, flags)) with a pidfd and the spare's socket: the owner
  hands the next plan to the spare itself.

An error is answered ("error", text). It reaps its children (the inits and
the spares) and exits when the socket closes, which SIGKILLs every one of
them (they have PR_SET_PDEATHSIG).
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
from .spare import fork_spare
from .fork import flush_stdio, own_pidns_fd, reap_exited_children, start_container

REAP_INTERVAL_MS = 200


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


def handle(kind: str, value: object, fds: list[int]) -> tuple[object, list[int]]:
    """Carry out one request; (reply value, fds to send with it, then close here)."""
    if kind == "spawn":
        assert isinstance(value, Plan)
        import_steps(value)
        pid, pidfd = start_container(value, tuple(fds))
        return pid, [pidfd]
    if kind == "spare":
        flags, staging = value
        flush_stdio()
        spare = fork_spare(flags, own_pidns_fd(), staging)
        return (spare.pid, spare.flags), [spare.pidfd, spare.sock.detach()]
    raise ValueError(f"unknown request {kind!r}")


def serve_one(sock: socket.socket) -> bool:
    """Handle one request; False when the owner has gone."""
    try:
        msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, 4)
    except ConnectionResetError:
        return False
    if not msg:
        return False
    out_fds: list[int] = []
    try:
        kind, value = pickle.loads(msg)
        result, out_fds = handle(kind, value, fds)
        reply = ("ok", result)
    except Exception as exc:  # noqa: BLE001 - sent back to the owner
        reply = ("error", f"{type(exc).__name__}: {exc}")
    for fd in fds:
        os.close(fd)
    try:
        socket.send_fds(sock, [pickle.dumps(reply)], out_fds)
    finally:
        for fd in out_fds:
            os.close(fd)
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
        reap_exited_children()
    os._exit(0)
