"""The supervisor: owns one long-lived sandbox, its runs, its clients and its status.

One Supervisor per sandbox, in a process of its own (``launch``) that no
client's end can take down. It runs the sandbox (``Sandbox`` with a fixed
id, ``kept``), again as the restart policy asks; holds its terminal or
stdin, its log and, for a kept sandbox, its writable layer; and serves its
socket (``protocol``): clients attach to its output and input, and ask it
to stop, kill, wait for or remove the sandbox. What it does is written to
the status file (``status``) at each change, for `ps -a`, `start` and gc.

Threads: the sandbox's monitor thread reads the output and hands it over
(``_on_output``: a queue and a byte on the wake pipe); everything else
happens in the main thread, in one select loop, which never blocks on a
client: a slow one is dropped (``connections``).

A client that started the sandbox in the foreground (`sandbox run -it`)
and goes away without detaching is a closed terminal: the command gets
SIGHUP, then SIGKILL after HANGUP_GRACE, and the sandbox ends (and, being
a foreground run, is removed).
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import state
from ..errors import SandboxError, StateError
from ..logs import LogRecord
from ..result import Result
from ..runtime import Sandbox
from ..spec import SandboxSpec
from . import layer
from .connections import Conn, listen
from .options import SupervisorOptions
from .protocol import (
    CLOSE_INPUT,
    DETACH,
    EXIT,
    INPUT,
    REPLY,
    REQUEST,
    RESIZE,
    STREAM_KINDS,
    ProtocolError,
    frame,
    json_frame,
    parse_json,
    parse_size,
)
from .status import SOCKET_NAME, Status, lock, read_status, unlock, write_status

#: After a hangup or a stop's SIGTERM, how long before SIGKILL (stop: its -t instead).
HANGUP_GRACE = 2.0
#: Restart delays: doubling from the first, at most the last (seconds).
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0
#: How long the last output may take to reach the clients at the end.
FINAL_FLUSH = 5.0


class Supervisor:
    """The owner of one supervised sandbox (``serve`` runs it to its end)."""

    def __init__(self, sandbox_id: str, first: socket.socket | None = None) -> None:
        self.sdir = state.SandboxDir(sandbox_id)
        status = read_status(self.sdir)
        if status is None:
            raise StateError(f"sandbox {sandbox_id} is not a supervised sandbox")
        self.status: Status = status
        self.spec = SandboxSpec.from_dict(status.spec)
        self.options = SupervisorOptions.from_dict(status.options)
        self.first = first
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._outbox: list[bytes] = []
        self._outbox_lock = threading.Lock()
        self.conns: list[Conn] = []
        self.sandbox: Sandbox | None = None
        self.ended_fd = -1
        self.run_over = False
        self.stop_requested = False  # no restart after this run
        self.removing = False
        self.kill_at: float | None = None
        self.pending_input = bytearray()
        self.announced = False
        self.signalled: list[int] = []

    # -- the whole life ----------------------------------------------------------------

    def serve(self) -> None:
        """Run the sandbox until it has ended for good; then leave it stopped, or remove it."""
        self._lock_fd = lock(self.sdir)
        self._listener: socket.socket | None = listen(self.sdir.path / SOCKET_NAME)
        self.sel.register(self._listener, selectors.EVENT_READ, "listener")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self._install_signals()
        if self.first is not None:
            self._add(Conn(self.first, attached=True, stdin=True,
                           foreground=self.options.foreground))
        try:
            upper = None if self.options.auto_remove else layer.make(self.sdir.id,
                                                                     self.spec.limits.disk)
            while self._start_run(upper):
                self._loop(lambda: self.run_over)
                result = self._finish_run()
                if not self._restarting(result):
                    break
            self._final()
        finally:
            self._let_go()

    def _let_go(self) -> None:
        """Stop owning the sandbox: no more connections, the lock and pid file released
        (before the last answers: a client that got one may start it again at once)."""
        if self._listener is not None:
            self.sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
            unlock(self.sdir, self._lock_fd)

    def _install_signals(self) -> None:
        """SIGTERM or SIGINT to the supervisor (a host shutting down): stop the sandbox.
        Only where Python takes signals: in a process's main thread."""
        if threading.current_thread() is not threading.main_thread():
            return
        signal.set_wakeup_fd(self.wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: self.signalled.append(signum))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def _start_run(self, upper: str | None) -> bool:
        """Create and start the next run; False (and the clients told) if it failed."""
        spec = self.spec.with_changes(upper_dir=upper) if upper else self.spec
        sandbox = Sandbox(spec, sandbox_id=self.sdir.id, kept=True, on_output=self._on_output,
                          tty_size=self.options.tty_size, log_stdin=self.options.log_stdin)
        try:
            sandbox.create()
            sandbox.start(background=True)
        except SandboxError as exc:
            sandbox.destroy()
            self._failed(exc)
            return False
        self.sandbox, self.run_over = sandbox, False
        assert sandbox.process is not None
        self.ended_fd = os.dup(sandbox.process.pidfd)
        self.sel.register(self.ended_fd, selectors.EVENT_READ, "ended")
        self._set_status(state="running", started_at=time.time(), exit_code=None, message=None)
        self._announce({"ok": True, "event": "started", "id": self.sdir.id, "tty": spec.tty})
        return True

    def _failed(self, exc: SandboxError) -> None:
        """The command could not be started: say so, and stay stopped (no restart)."""
        self._set_status(state="exited" if self.status.started_at else "created",
                         exit_code=exc.exit_status, message=str(exc), finished_at=time.time())
        self._announce({"ok": False, "event": "failed", "error": str(exc),
                        "status": exc.exit_status})
        self._broadcast(json_frame(EXIT, {"exit_code": exc.exit_status, "message": str(exc),
                                          "restarting": False}))

    def _announce(self, reply: dict[str, Any]) -> None:
        """The first client's first reply: started, or why not (once)."""
        if not self.announced:
            self.announced = True
            for conn in list(self.conns):
                if conn.foreground or conn.sock is self.first:
                    conn.queue(json_frame(REPLY, reply))
                    self._flush(conn)

    def _finish_run(self) -> Result:
        """The run has ended: its Result, the sandbox torn down, the clients told."""
        sandbox = self.sandbox
        assert sandbox is not None
        try:
            result = sandbox.wait()
        finally:
            self._flush_outbox()
            sandbox.destroy()
            self.sandbox = None
        self.kill_at = None
        restarting = self._wants_restart(result)
        self._set_status(state="restarting" if restarting else "exited",
                         exit_code=result.exit_code, message=result.limit_message(),
                         finished_at=result.ended_at)
        self._broadcast(json_frame(EXIT, {"exit_code": result.exit_code,
                                          "message": result.limit_message(),
                                          "restarting": restarting}))
        for conn in self.conns:
            if conn.waiting_for == "stop":
                self._answer(conn, {"ok": True, "exit_code": result.exit_code})
        return result

    def _wants_restart(self, result: Result) -> bool:
        if self.stop_requested or self.removing or self.signalled or result.removed:
            return False
        return self.options.restart.wants_restart(result.exit_code, self.status.restarts)

    def _restarting(self, result: Result) -> bool:
        """Wait out the backoff (serving clients); True to start the next run."""
        if self.status.state != "restarting":
            return False
        self._set_status(restarts=self.status.restarts + 1)
        delay = min(BACKOFF_FIRST * 2 ** (self.status.restarts - 1), BACKOFF_MAX)
        deadline = time.monotonic() + delay
        self._loop(lambda: time.monotonic() >= deadline or self.stop_requested or self.removing)
        if self.stop_requested or self.removing:
            self._set_status(state="exited")
            return False
        return True

    def _final(self) -> None:
        """For good: reply to the waiters, remove a --rm (or removed) sandbox, say goodbye."""
        if self.removing or self.options.auto_remove:
            self._set_status(state="removing")
            remove_all(self.sdir, self.spec.name)  # before the answers: `rm` returns when gone
        self._let_go()
        for conn in list(self.conns):
            if conn.waiting_for in ("wait", "remove", "stop"):
                self._answer(conn, {"ok": True, "exit_code": self.status.exit_code})
        self._flush_all(FINAL_FLUSH)
        for conn in list(self.conns):
            self._drop(conn)

    # -- the loop ------------------------------------------------------------------------

    def _loop(self, done: Callable[[], bool]) -> None:
        """Serve events until ``done()``."""
        while not done():
            for key, mask in self.sel.select(self._timeout()):
                self._event(key.data, mask)
            self._after_signals()
            self._check_deadline()

    def _timeout(self) -> float:
        if self.kill_at is None:
            return 0.5
        return max(0.0, min(0.5, self.kill_at - time.monotonic()))

    def _event(self, tag: object, mask: int) -> None:
        if tag == "listener":
            self._accept()
        elif tag == "wake":
            self._drain_wake()
        elif tag == "ended":
            self.sel.unregister(self.ended_fd)
            os.close(self.ended_fd)
            self.ended_fd = -1
            self.run_over = True
        elif tag == "input":
            self._write_input()
        elif isinstance(tag, Conn):
            if mask & selectors.EVENT_READ:
                self._read(tag)
            if mask & selectors.EVENT_WRITE and tag in self.conns:
                self._flush(tag)

    def _accept(self) -> None:
        if self._listener is None:
            return
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self._add(Conn(sock))

    def _add(self, conn: Conn) -> None:
        self.conns.append(conn)
        self.sel.register(conn, selectors.EVENT_READ, conn)

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        self._flush_outbox()

    def _after_signals(self) -> None:
        if self.signalled and not self.stop_requested:
            self._stop(10.0)

    def _check_deadline(self) -> None:
        if self.kill_at is not None and time.monotonic() >= self.kill_at and self.sandbox:
            self.kill_at = None
            self.sandbox.kill(signal.SIGKILL)

    # -- output and input ------------------------------------------------------------------

    def _on_output(self, record: LogRecord) -> None:
        """From the monitor thread: queue the output for the clients, wake the loop."""
        data = frame(STREAM_KINDS.get(record.stream, STREAM_KINDS["stdout"]), record.data)
        with self._outbox_lock:
            self._outbox.append(data)
        try:
            os.write(self.wake_w, b"o")
        except BlockingIOError:
            pass  # the loop is woken already

    def _flush_outbox(self) -> None:
        with self._outbox_lock:
            frames, self._outbox = self._outbox, []
        for data in frames:
            self._broadcast(data)

    def _broadcast(self, data: bytes) -> None:
        for conn in list(self.conns):
            if conn.attached and not conn.detached:
                conn.queue(data)
                self._flush(conn)

    def _input(self, data: bytes) -> None:
        if self.sandbox is None or self.sandbox.input is None:
            return
        was_empty = not self.pending_input
        self.pending_input += data
        if was_empty:
            self._write_input()

    def _write_input(self) -> None:
        """Write what the command takes now; wait for room in select for the rest."""
        live = self.sandbox.input if self.sandbox is not None else None
        registered = any(k.data == "input" for k in self.sel.get_map().values())
        if live is not None and self.pending_input and live.fd >= 0:
            try:
                written = live.write_some(bytes(self.pending_input))
                del self.pending_input[:written]
            except StateError:
                self.pending_input.clear()  # it takes no more input
        want = bool(self.pending_input) and live is not None and live.fd >= 0
        if want and not registered:
            self.sel.register(live.fd, selectors.EVENT_WRITE, "input")  # type: ignore[union-attr]
        elif not want and registered:
            fd = next(k.fd for k in self.sel.get_map().values() if k.data == "input")
            self.sel.unregister(fd)

    # -- requests ------------------------------------------------------------------------

    def _read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost(conn)
            return
        try:
            for kind, payload in conn.reader.feed(data):
                self._frame(conn, kind, payload)
        except (ProtocolError, ValueError, TypeError) as exc:
            conn.queue(json_frame(REPLY, {"ok": False, "error": f"bad request: {exc}"}))
            self._lost(conn)

    def _frame(self, conn: Conn, kind: bytes, payload: bytes) -> None:
        if not conn.requested:
            if kind != REQUEST:
                raise ProtocolError("a connection starts with a request")
            conn.requested = True
            self._request(conn, parse_json(payload))
        elif kind == INPUT and conn.stdin:
            self._input(payload)
        elif kind == RESIZE and self.sandbox is not None:
            try:
                self.sandbox.resize(*parse_size(payload))
            except StateError:
                pass
        elif kind == CLOSE_INPUT and self.sandbox is not None and self.sandbox.input:
            self.sandbox.close_stdin()
        elif kind == DETACH:
            conn.detached = True
            self._lost(conn)

    def _request(self, conn: Conn, req: dict[str, Any]) -> None:
        op = req.get("op")
        if op == "attach":
            conn.attached, conn.stdin = True, bool(req.get("stdin"))
            self._answer(conn, {"ok": True, "id": self.sdir.id, "tty": self.spec.tty,
                                "running": self.sandbox is not None}, close=False)
        elif op == "stop":
            conn.waiting_for = "stop"
            self._stop(float(req.get("timeout", 10)))
        elif op == "kill":
            self._kill(conn, int(req.get("signal", signal.SIGKILL)))
        elif op in ("wait", "remove"):
            conn.waiting_for = op
            if op == "remove":
                self.removing = self.stop_requested = True
                if self.sandbox is not None:
                    self.sandbox.kill(signal.SIGKILL)
        elif op == "status":
            self._answer(conn, {"ok": True, **vars(self.status)})
        else:
            self._answer(conn, {"ok": False, "error": f"unknown request {op!r}"})

    def _stop(self, timeout: float) -> None:
        """SIGTERM to the command now, SIGKILL after ``timeout``; no restart after."""
        self.stop_requested = True
        if self.sandbox is None:
            return
        self.sandbox.kill(signal.SIGTERM if timeout > 0 else signal.SIGKILL)
        self.kill_at = time.monotonic() + timeout

    def _kill(self, conn: Conn, sig: int) -> None:
        if self.sandbox is None:
            self._answer(conn, {"ok": False, "error": f"sandbox {self.sdir.id} is not running",
                                "status": 125})
            return
        if sig == signal.SIGKILL:
            self.stop_requested = True
        self.sandbox.kill(sig)
        self._answer(conn, {"ok": True})

    def _answer(self, conn: Conn, reply: dict[str, Any], close: bool = True) -> None:
        conn.queue(json_frame(REPLY, reply))
        conn.waiting_for = None
        conn.closing = close
        self._flush(conn)

    # -- clients -------------------------------------------------------------------------

    def _flush(self, conn: Conn) -> None:
        if conn.dropped or not conn.flush():
            self._drop(conn)
            return
        if not conn.out and conn.closing:
            self._drop(conn)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        if self.sel.get_key(conn).events != events:
            self.sel.modify(conn, events, conn)

    def _flush_all(self, within: float) -> None:
        """Send what the clients still have queued, for at most ``within`` seconds."""
        deadline = time.monotonic() + within
        while any(c.out for c in self.conns) and time.monotonic() < deadline:
            for key, mask in self.sel.select(0.05):
                if isinstance(key.data, Conn):
                    self._event(key.data, mask & selectors.EVENT_WRITE)

    def _lost(self, conn: Conn) -> None:
        """A client went away (or detached): a foreground one's terminal is gone."""
        hangup = conn.foreground and not conn.detached
        if conn.foreground and conn.detached:
            self.options = _replace(self.options, foreground=False)
        self._drop(conn)
        if hangup and self.sandbox is not None and not self.stop_requested:
            self.stop_requested = True
            self.sandbox.kill(signal.SIGHUP)
            self.kill_at = time.monotonic() + HANGUP_GRACE

    def _drop(self, conn: Conn) -> None:
        if conn in self.conns:
            self.conns.remove(conn)
            self.sel.unregister(conn)
            conn.close()

    def _set_status(self, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(self.status, name, value)
        try:
            write_status(self.sdir, self.status)
        except FileNotFoundError:
            pass  # removed meanwhile (`sandbox rm -f` of a supervisor that does not answer)


def _replace(options: SupervisorOptions, **changes: Any) -> SupervisorOptions:
    from dataclasses import replace

    return replace(options, **changes)


def remove_all(sdir: state.SandboxDir, name: str | None) -> None:
    """Remove what outlives a supervised sandbox's runs: its layer, state dir and name."""
    try:
        layer.remove(sdir.id)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EINVAL):
            raise
    state.release_name(name, sdir.id)
    sdir.remove()
