"""What a marked test's forked process does inside its sandbox (the fast path).

The engine forks the pytest process into the sandbox and calls
``run_item`` there. The fork brought the whole session along, but not the
file descriptors (the engine closes every fd but 0-2, the sandbox's stdin,
stdout and stderr), so the capture and faulthandler plumbing is made again
first. A test whose sandbox was made ahead (``where.local``) then waits for
its turn: one byte on stdin. Then the usual setup, call and teardown phases
run, and each report is written to the report channel as soon as it
exists, so a crash in the call phase still leaves the setup report behind.
"""

from __future__ import annotations

import faulthandler
import os
import tempfile
from pathlib import Path

from .channel import write_report

_KEEP: list = []  # objects holding fds the engine closed: never let them be collected


def run_item(item, nextitem, wait_for_go: bool = False) -> int:
    """Run the protocol of ``item``; its reports go to the channel. Exit status 0.

    ``wait_for_go``: wait for a byte on stdin before the test (end of file:
    it is not to run after all); pytest's capture reads /dev/null meanwhile.
    """
    config = item.config
    go = os.dup(0) if wait_for_go else -1  # the capture about to start puts /dev/null on 0
    _forget_parent_finalizers(item.session)
    _restart_faulthandler()
    _restart_capture(config)
    _make_basetemp(config)
    if wait_for_go and not _wait_for_go(go):
        return 0
    for report in protocol(item, nextitem):
        write_report(config, report)
    return 0


def _wait_for_go(fd: int) -> bool:
    """Block until the pytest process says go (on ``fd``, a copy of stdin); False if it
    closed its end instead."""
    try:
        go = os.read(fd, 1)
    except OSError:
        go = b""
    os.close(fd)
    return go == b"g"


def protocol(item, nextitem):
    """Setup, call, teardown, as pytest's runtestprotocol (without logging)."""
    from _pytest.runner import call_and_report

    report = call_and_report(item, "setup", log=False)
    yield report
    if report.passed and not item.config.getoption("setuponly", False):
        yield call_and_report(item, "call", log=False)
    if item.session.shouldfail or item.session.shouldstop:
        nextitem = None
    yield call_and_report(item, "teardown", log=False, nextitem=nextitem)


def _forget_parent_finalizers(session) -> None:
    """Leave the finalizers of fixtures set up by the parent to the parent.

    This copy of the session must tear down only what it set up itself;
    the parent tears down its own fixtures, for real, when they are due.
    """
    stack = session._setupstate.stack
    for node, (_finalizers, exc) in list(stack.items()):
        stack[node] = ([], exc)


def _restart_capture(config) -> None:
    """New global capture on the sandbox's fds; the old one's fds are closed."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None or capman._global_capturing is None:
        return
    _KEEP.append(capman._global_capturing)
    capman._global_capturing = None
    capman.start_global_capturing()
    capman.suspend_global_capture()


def _restart_faulthandler() -> None:
    """Python tracebacks on stderr for a segfault or abort inside.

    The engine reset every signal handler before calling us, but
    faulthandler still believes it is enabled (and would not reinstall its
    handlers), so it is disabled first.
    """
    # fd 2 itself is captured while the test runs. A bare fd, not a file object: one
    # less object to make, and pages to copy, in each forked test process.
    stderr = os.dup(2)
    faulthandler.disable()
    faulthandler.enable(stderr, all_threads=False)


def _make_basetemp(config) -> None:
    """tmp_path works inside: the session's base temp dir, writable in the sandbox.

    The parent's base temp dir is either absent here (under the sandbox's
    own /tmp) and is made, or inside a read-only mount (``--basetemp`` under
    the rootdir): then a fresh one in the sandbox's /tmp takes its place.
    """
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return
    basetemp = factory._basetemp or factory._given_basetemp
    if basetemp is None:
        return  # pytest makes one under the sandbox's /tmp on first use
    try:
        os.makedirs(basetemp, mode=0o700, exist_ok=True)
        writable = os.access(basetemp, os.W_OK)
    except OSError:
        writable = False
    factory._basetemp = basetemp if writable else Path(tempfile.mkdtemp(prefix="pytest-basetemp-"))
