"""The zygote: a small single-threaded process that forks containers on request.

Started once per host process by ``launch_zygote`` (see there for why), with
``python -S`` and only the container side of the package: every container
it forks is a copy of it. It reads requests from its socket, each a pickled
(kind, value):

- ("spawn", plan), with the container's four fds: forks a fresh init
  (``init.fresh_main``) and answers ("ok", pid) with a pidfd for it;
- ("enter", plan), with an exec's fds and the init's pidfd: forks an exec's
  first process (``enter.enter_main``) and answers ("ok", pid) with a pidfd;
- ("spare", (flags, staging)): forks a spare (``spare``) and answers
  ("ok", (pid, flags)) with a pidfd and the spare's socket: the owner hands
  the next plan to the spare itself.

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

from ..plan import Plan
from . import init, spare  # noqa: F401 - loaded once here, not in every fork
from .enter import fork_enter
from .fds import MAX_CHILD_FDS, ChildFds, flush_stdio
from .kernel import Kernel
from .launch_direct import fork_init, own_pidns_fd

REAP_INTERVAL_MS = 200
NAME = "sandbox-zygote"


def handle(kernel: Kernel, kind: str, value: object, fds: list[int]) -> tuple[object, list[int]]:
    """Carry out one request; (reply value, fds to send with it, then close here)."""
    if kind == "spawn":
        assert isinstance(value, Plan)
        pid = fork_init(kernel, value, ChildFds(*fds))
        return pid, [kernel.pidfd_open(pid)]
    if kind == "enter":
        assert isinstance(value, Plan)
        pid = fork_enter(kernel, value, ChildFds(*fds[:-1]), fds[-1])
        return pid, [kernel.pidfd_open(pid)]
    if kind == "spare":
        assert isinstance(value, tuple)
        flags, staging = value
        flush_stdio()
        pid, pidfd, sock = spare.fork_spare(kernel, flags, own_pidns_fd(), staging)
        return (pid, flags), [pidfd, sock.detach()]
    raise ValueError(f"unknown request {kind!r}")


def serve_one(kernel: Kernel, sock: socket.socket) -> bool:
    """Handle one request; False when the owner has gone."""
    try:
        msg, fds = kernel.recv_fds(sock, 1 << 20, MAX_CHILD_FDS + 1)
    except ConnectionResetError:
        return False
    if not msg:
        return False
    out_fds: list[int] = []
    try:
        kind, value = pickle.loads(msg)
        result, out_fds = handle(kernel, kind, value, fds)
        reply = ("ok", result)
    except Exception as exc:
        reply = ("error", f"{type(exc).__name__}: {exc}")
    for fd in fds:
        os.close(fd)
    try:
        kernel.send_fds(sock, pickle.dumps(reply), out_fds)
    finally:
        for fd in out_fds:
            os.close(fd)
    return True


def main(fd: int) -> None:
    """The zygote's loop, until its owner closes the socket."""
    kernel = Kernel()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kernel.set_name(NAME)
    sock = socket.socket(fileno=fd)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while True:
        if poller.poll(REAP_INTERVAL_MS) and not serve_one(kernel, sock):
            break
        kernel.reap_exited()
    os._exit(0)
