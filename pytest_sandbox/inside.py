"""What a marked test's forked process does inside its sandbox (the fast path).

The engine forks the pytest process into the sandbox and calls
``run_item`` there. The fork brought the whole session along, but not the
file descriptors (the engine closes every fd but 0-2, the sandbox's stdin,
stdout and stderr), so the capture and faulthandler plumbing is made again
first. A test whose sandbox was made ahead (``where.local``) then waits for
its turn: one byte on stdin. Then pytest's own ``pytest_runtest_protocol``
runs, with every plugin's part in it (warnings, reruns, subtests, ...) but
this plugin's, and everything it hands to the hooks that show a test goes
to the report channel as it happens (``events.Recorder``), so a crash in the
call phase still leaves the setup report behind. ``pytest_sandbox.inner``
runs a test the same way in a pytest of its own.

Every object a forked process makes, and every one whose reference count
it changes, costs it a copied page: the hook callers it uses are made in the
pytest process before it forks (``prepare``), not in each test's process.

A prepared test learns with its go which test comes after it (its position
in ``session.items``): what its teardown ends depends on it, and the
session that runs it may not know it yet when the sandbox is made (a
pytest-xdist worker's twin learns a worker's tests one by one).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import tempfile
from pathlib import Path

import pytest

from .channel import INSIDE
from .events import HOOKS, Recorder

#: The module registered as this plugin (by name: importing it here would close a cycle).
PLUGIN = "pytest_sandbox.plugin"

_KEEP: list = []  # objects holding fds the engine closed: never let them be collected


def run_item(item, nextitem, wait_for_go: bool = False) -> int:
    """Run the protocol of ``item``; its reports go to the channel. Exit status 0.

    ``wait_for_go``: wait for the go on stdin before the test, which names
    the next item (end of file: it is not to run after all); pytest's
    capture reads /dev/null meanwhile.
    """
    config = item.config
    go = os.dup(0) if wait_for_go else -1  # the capture about to start puts /dev/null on 0
    _forget_parent_finalizers(item.session)
    _restart_faulthandler(config)
    _restart_capture(config)
    _make_basetemp(config)
    made = config.stash.get(_CALLERS, None)  # by the pytest process, before it forked this one
    callers = made[1] if made is not None else prepare(config)
    show_only_to(config, config.pluginmanager.get_plugin(RECORDER), callers)
    if wait_for_go:
        after = _wait_for_go(go)
        if after is None:
            return 0
        nextitem = item.session.items[after] if after >= 0 else None
    callers[PROTOCOL](item=item, nextitem=nextitem)
    return 0


def _wait_for_go(fd: int) -> int | None:
    """Block until the pytest process says go (on ``fd``, a copy of stdin): the position of
    the item after this one (-1: none); None if it closed its end instead."""
    try:
        go = os.read(fd, 32)  # one short write: it comes whole
    except OSError:
        go = b""
    os.close(fd)
    if not go.startswith(b"g"):
        return None
    try:
        return int(go[1:])
    except ValueError:
        return None


def register_recorder(config, directory: str = INSIDE) -> Recorder:
    """The Recorder of this session, registered now (not started: see Recorder)."""
    plugin = Recorder(config, directory)
    config.pluginmanager.register(plugin, RECORDER)
    return plugin


RECORDER = "sandbox-recorder"


def prepare(config) -> dict:
    """The hook callers a test's process calls, by hook name: those of the hooks that show
    a test reach the recorder and the session only (``show_only_to``), pytest's protocol
    every plugin but the one that sent the test here (which would send it again).

    Called in the pytest process before it forks a test's process, which finds them
    made; made again when the plugins changed (a test registered one).
    """
    pm = config.pluginmanager
    plugins = frozenset(map(id, pm.get_plugins()))
    made = config.stash.get(_CALLERS, None)
    if made is not None and made[0] == plugins:
        return made[1]
    keep = {pm.get_plugin(RECORDER), pm.get_plugin("session")}
    callers = {}
    for name in HOOKS.values():
        others = [impl.plugin for impl in getattr(pm.hook, name).get_hookimpls()
                  if impl.plugin not in keep]
        callers[name] = pm.subset_hook_caller(name, others)
    caller = sys.modules.get(PLUGIN)
    callers[PROTOCOL] = pm.subset_hook_caller(PROTOCOL, [caller] if caller else [])
    config.stash[_CALLERS] = (plugins, callers)
    return callers


PROTOCOL = "pytest_runtest_protocol"
_CALLERS = pytest.StashKey[tuple]()


def show_only_to(config, recorder: Recorder, callers: dict) -> None:
    """From now on the hooks that show a test reach ``recorder`` only, and the session.

    Here they would print to the sandbox's stdout, write files, or change a
    report (the terminal reporter marks a test with failed subtests failed):
    the pytest process that shows the test calls them, with what ``recorder``
    sends it. The session keeps its count of failures, which decides here as
    there whether ``-x`` / ``--maxfail`` end the run (the teardown's next item).
    ``callers``: from ``prepare``. ``config.hook`` keeps the callers it was
    asked for before (the pytest process asked for some): replaced there too.
    """
    recorder.started = True
    hook = config.pluginmanager.hook
    cached = getattr(config.hook, "__dict__", None) if config.hook is not hook else None
    for name in HOOKS.values():
        setattr(hook, name, callers[name])
        if cached is not None:
            cached[name] = callers[name]


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


def _restart_faulthandler(config) -> None:
    """Python tracebacks on stderr for a segfault or abort inside.

    The engine reset every signal handler before calling us, but
    faulthandler still believes it is enabled (and would not reinstall its
    handlers), so it is disabled first. pytest's ``faulthandler_timeout``
    dumps to the fd pytest keeps in its stash: the new one, here.
    """
    # fd 2 itself is captured while the test runs. A bare fd, not a file object: one
    # less object to make, and pages to copy, in each forked test process.
    stderr = os.dup(2)
    faulthandler.disable()
    faulthandler.enable(stderr, all_threads=False)
    from _pytest.faulthandler import fault_handler_stderr_fd_key

    if fault_handler_stderr_fd_key in config.stash:
        config.stash[fault_handler_stderr_fd_key] = stderr


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
