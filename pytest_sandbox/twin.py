"""The twin of a multi-threaded session: the same session, with one thread, that runs its marked tests.

Loaded with ``-p pytest_sandbox.twin`` into ``python -m pytest`` with the
session's own arguments, by the session itself (``where.twin``, which says
why). The twin:

- connects to the session over the socket it was given (``ENV``), dies with
  it (SIGTERM), and takes over what the session is in pytest-xdist (its
  ``workerinput``: ``worker_id`` and ``testrun_uid`` are the worker's);
- turns off what only the outer session does (report files, xdist's own
  workers, ``--lf``, pdb: ``inner.OUTER_ONLY``), and pytest-rerunfailures'
  status server, whose thread would keep it from forking (that plugin then
  keeps its counts per process, as in a session without pytest-xdist);
- collects, and says "ready" once collected (or why it cannot serve);
- then runs each test it is sent as a session with one thread runs a marked
  test (``where.local``: a fork of itself in the test's sandbox, the next one
  made while it runs, a fork server), in the session's current environment
  and directory, and sends back what the test wrote, unread.

It never runs a test itself, so its fork server's copy stands for every test.
A SIGUSR1 from the session ends the running test's sandbox (a signal
stopped the test there); SIGTERM ends it and then the twin.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from typing import Any

import pytest

from sandbox import StopOnSignals, die_with_parent, single_threaded

from . import wire
from .inner import not_outer
from .plugin import RUNNER
from .where.local import SERVING, UNKNOWN
from .where.twin import ENV

SOCKET = pytest.StashKey[socket.socket]()


class _Ended(Exception):
    """SIGTERM while the twin waited for a test: it ends."""


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_cmdline_main(config):
    """Before any plugin acts on its options: connect, become the session's twin."""
    sock = _connect()
    hello = wire.receive(sock)
    if hello is None:
        raise pytest.UsageError("pytest_sandbox.twin: the session that started it has ended")
    if hello.get("workerinput") is not None:
        config.workerinput = hello["workerinput"]
        config.workeroutput = {}
    not_outer(config)
    config.stash[SERVING] = True
    config.stash[SOCKET] = sock
    _no_status_server()
    signal.signal(signal.SIGUSR1, _ignore)  # the session's "stop the test", come too late
    return (yield)


def _connect() -> socket.socket:
    value = os.environ.pop(ENV, "")
    fd, _, parent = value.partition(":")
    if not (fd.isdigit() and parent.isdigit()):
        raise pytest.UsageError(f"-p pytest_sandbox.twin is loaded by pytest-sandbox itself, into "
                                f"the twin of a session ({ENV}={value!r})")
    if not die_with_parent(signal.SIGTERM, int(parent)):
        raise pytest.UsageError("pytest_sandbox.twin: the session that started it has ended")
    os.set_inheritable(int(fd), False)
    return socket.socket(fileno=int(fd))


def _no_status_server() -> None:
    """pytest-rerunfailures beside pytest-xdist serves its failure counts from a thread in
    every session that is not an xdist worker; a session whose counts stay in the process
    (as without xdist) starts none."""
    module: Any = sys.modules.get("pytest_rerunfailures")  # untyped: its flag is set as found
    if getattr(module, "HAS_PYTEST_HANDLECRASHITEM", False):
        module.HAS_PYTEST_HANDLECRASHITEM = False


def _ignore(_signum, _frame) -> None:
    pass


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session) -> bool:
    """Serve the session: run each test it sends, until it closes the socket."""
    sock = session.config.stash[SOCKET]
    try:
        if not single_threaded():
            names = ", ".join(t.name for t in threading.enumerate())
            wire.send(sock, ("refused", f"it has threads too ({names}): a plugin started them"))
            return True
        items: dict = {}
        for item in session.items:
            items.setdefault(item.nodeid, item)
        wire.send(sock, ("ready", len(items)))
        _serve(session.config.stash[RUNNER], items, sock)
    except (OSError, _Ended):
        pass  # the session has gone, or asked the twin to end
    finally:
        sock.close()
    return True


def _serve(runner, items: dict, sock: socket.socket) -> None:
    runner.stop = StopOnSignals(signal.SIGUSR1, signal.SIGTERM)
    state = {"idle": False, "ended": False}

    def on_term(_signum, _frame) -> None:
        state["ended"] = True
        if state["idle"]:
            raise _Ended

    signal.signal(signal.SIGTERM, on_term)
    while not state["ended"]:
        state["idle"] = True
        request = wire.receive(sock)
        state["idle"] = False
        if request is None:
            return
        reply = _answer(runner, items, request)
        if signal.SIGTERM in runner.stop.received:
            state["ended"] = True
        runner.stop.received.clear()
        wire.send(sock, reply)


def _answer(runner, items: dict, request: tuple) -> tuple:
    """Run the test a request names, where and as the session is now."""
    nodeid, next_nodeid, env, cwd = request
    item = _find(items, nodeid)
    if item is None:
        return ("unknown", nodeid)
    nextitem = _find(items, next_nodeid) if next_nodeid is not None else None
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    if cwd != os.getcwd():
        try:
            os.chdir(cwd)
        except OSError:
            pass  # gone there meanwhile: a test started from the session's own directory
    ran = runner.ran(item, nextitem, UNKNOWN)
    ran.nodeid = item.nodeid
    return ("ran", ran)


def _find(items: dict, nodeid: str):
    """The item of ``nodeid``; pytest-xdist's --dist loadgroup adds "@group" to a worker's."""
    item = items.get(nodeid)
    if item is None and "@" in nodeid:
        item = items.get(nodeid.rpartition("@")[0])
    return item
