"""A multi-threaded session's marked tests, run by its single-threaded twin.

A pytest process with more than one thread (a pytest-xdist worker:
execnet's thread; pytest-timeout's thread method; pytest-rerunfailures'
status server) must not be forked, so it cannot take the fast path itself.
Before its first marked test (in a pytest-xdist worker: as soon as it has
collected) it starts its *twin*: ``python -m pytest`` with the session's own
arguments, in its directory and environment, plus ``-p pytest_sandbox.twin``
(the other end, which says what the twin does). The twin collects the same
tests once; then, for each marked test, this process sends its node id
(and the next one's), the twin runs it in a sandbox through the fast path
(a fork of itself, the next sandbox made ahead, a fork server) and sends
back what the test's run wrote, unread (``Ran``), which this process reads
and shows as its own.

The twin dies with this process (SIGTERM, which ends a running test's
sandbox first) and ends when its socket closes. A pytest-xdist worker
whose controller was killed would wait for its test to end before it
notices; while it waits for its twin it watches its parent instead, and
ends the test and the twin as soon as the controller is gone. A twin that cannot start
(it collects differently, say) leaves the tests to the slow path, saying
so once; one that dies while it runs a test fails that test, saying so, and
the next test starts another.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
from typing import IO

from _pytest.outcomes import Exit  # pytest.exit.Exception, named for the type checker

from .. import wire
from . import STOPPED, Ran

#: The twin's end of the socket and this process's pid, in the twin's environment.
ENV = "PYTEST_SANDBOX_TWIN"
#: How long a twin has to end once asked, before it is killed.
END_WAIT = 30.0
#: How much of a twin's own output a message shows.
LOG_TAIL = 3000
#: How often a pytest-xdist worker waiting for its twin looks whether its controller is there.
WATCH_INTERVAL = 1.0


class TwinError(Exception):
    """The twin could not start, or ended."""


class ControllerGone(Exit):
    """This pytest-xdist worker's controller has gone: the worker's session ends."""


class Twin:
    """This session's handle on its twin, started on first use."""

    def __init__(self, config) -> None:
        self.config = config
        self.proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._log: IO[bytes] | None = None  # the twin's stdout and stderr: an unnamed temp file
        self._unusable: str | None = None  # why no twin can start in this session
        self._env: dict | None = None  # the environment the twin was last given
        self._ready = False  # it has collected and waits for tests
        self._busy = False  # a request is out
        #: a pytest-xdist worker's parent, its controller: watched while a test runs
        self._controller = os.getppid() if hasattr(config, "workerinput") else None

    def start(self) -> None:
        """Start the twin unless it runs, without waiting for it to collect (``ready``)."""
        if self._sock is None and self._unusable is None:
            self._guarded(self._launch)

    def ready(self) -> bool:
        """Start the twin unless it runs and wait until it has collected; False (said once)
        when it cannot run."""
        self.start()
        if not self._ready and self._sock is not None:
            self._guarded(self._await_ready)
        return self._ready

    def _guarded(self, step) -> None:
        try:
            step()
        except (TwinError, OSError) as exc:
            self._unusable = str(exc)
            self._end()
            sys.stderr.write(f"pytest-sandbox: marked tests run as subprocesses in their sandboxes "
                             f"(slow): this multi-threaded session's single-threaded twin could "
                             f"not start: {exc}\n")

    def run(self, item, nextitem) -> Ran | None:
        """What the twin gave back for ``item``; None when it cannot run it (run it another way)."""
        if not self.ready():
            return None
        request = (item.nodeid, None if nextitem is None else nextitem.nodeid, self._changed_env(),
                   os.getcwd())
        assert self._sock is not None  # ready() started it
        try:
            self._busy = True
            wire.send(self._sock, request)
            reply = self._reply()
            self._busy = False
        except OSError:
            reply = None
        if reply is None:
            return self._died(item)
        kind, value = reply
        return value if kind == "ran" else None  # "unknown": the twin did not collect it

    def _reply(self):
        """The twin's answer. A signal handler that raises here (pytest-timeout's signal
        method, Ctrl-C) has the twin end the test's sandbox first; an exception stops the
        test as it would stop a sandbox this process ran."""
        try:
            self._await_reply()
            return wire.receive(self._sock)
        except OSError:
            raise
        except ControllerGone:
            self._signal(signal.SIGTERM)  # ends the test's sandbox, then the twin
            raise
        except STOPPED as exc:
            self._signal(signal.SIGUSR1)
            reply = wire.receive(self._sock)
            if reply is not None and reply[0] == "ran":
                reply[1].reason = f"sandbox: the test was stopped from outside its sandbox: {exc}"
            return reply
        except BaseException:
            self._signal(signal.SIGUSR1)
            raise

    def close(self) -> None:
        """Let the twin end (and end it if it does not), and reap it."""
        if self.proc is not None and self._busy:
            self._signal(signal.SIGTERM)  # it runs a test this process no longer waits for
        self._end()

    # -- starting and ending ------------------------------------------------------

    def _launch(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        self._log = tempfile.TemporaryFile(prefix="pytest-sandbox-twin-")  # noqa: SIM115 - kept open
        env = self._environment()
        env[ENV] = f"{theirs.fileno()}:{os.getpid()}"
        try:
            self.proc = subprocess.Popen(
                twin_argv(self.config), cwd=str(self.config.invocation_params.dir), env=env,
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        wire.send(ours, {"workerinput": getattr(self.config, "workerinput", None)})

    def _await_ready(self) -> None:
        assert self._sock is not None
        reply = wire.receive(self._sock)  # once it has collected
        if reply is None:
            raise TwinError(self._ended_how())
        kind, value = reply
        if kind != "ready":
            raise TwinError(value)
        self._ready = True

    def _end(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                proc.wait(END_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._busy = self._ready = False

    def _died(self, item) -> Ran:
        """The twin ended while it ran ``item``: that test fails, saying so; the next test
        starts another twin."""
        how = self._ended_how()
        self._end()
        return Ran(b"", None, "twin", reason=f"sandbox: this session's twin ended while it ran "
                                             f"{item.nodeid}: {how}")

    def _ended_how(self) -> str:
        """How the twin ended, with the end of its output."""
        status = None
        if self.proc is not None:
            try:
                status = self.proc.wait(END_WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                status = self.proc.wait()
        how = (f"it was killed by signal {-status}" if status is not None and status < 0
               else f"it exited with status {status}")
        tail = self._log_tail()
        return f"{how}{'; its output ends with:' + chr(10) + tail if tail else ''}"

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - LOG_TAIL))
        return self._log.read().decode("utf-8", "replace").strip()

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            self.proc.send_signal(sig)
        except OSError:
            pass

    def _await_reply(self) -> None:
        """Return once the twin's answer is there; ControllerGone when this pytest-xdist
        worker's controller has gone meanwhile."""
        if self._controller is None or self._sock is None:
            return
        while not select.select([self._sock], [], [], WATCH_INTERVAL)[0]:
            if os.getppid() != self._controller:
                raise ControllerGone("pytest-sandbox: the pytest-xdist controller of this worker "
                                     "has gone: its sandboxed test was ended")

    # -- what the twin is given ------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTEST_CURRENT_TEST", None)
        self._env = dict(env)
        return env

    def _changed_env(self) -> dict[str, str] | None:
        """This process's environment if it changed since the twin was last given it
        (a test, a fixture here changed it): a test there sees what it sees here."""
        env = dict(os.environ)
        env.pop("PYTEST_CURRENT_TEST", None)
        if env == self._env:
            return None
        self._env = env
        return env


def twin_argv(config) -> list[str]:
    """The twin's command: this session's arguments and ini file, its rootdir and base temp."""
    argv = [sys.executable, "-m", "pytest", "-p", "pytest_sandbox.twin",
            *(str(a) for a in config.invocation_params.args), "--rootdir", str(config.rootpath)]
    if config.inipath:
        argv += ["-c", str(config.inipath)]
    factory = getattr(config, "_tmp_path_factory", None)
    basetemp = factory and (factory._basetemp or factory._given_basetemp)
    if basetemp:
        argv.append(f"--basetemp={basetemp}")
    return argv
