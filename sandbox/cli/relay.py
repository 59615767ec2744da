"""An interactive session: this process's stdio and a sandbox's terminal (or its stdio).

One ``Relay`` holds the copying, the resizes and the detach keys (as runc's
``tty.go`` does; raw mode is ``terminal.RawTerminal``, entered by the
caller before anything is started). It relays between this process's
stdin/stdout/stderr and an *endpoint*: an attachment to a supervisor
(``supervisor.client.Attachment``) or a process started here
(``ExecEndpoint``), both speaking ``supervisor.protocol``'s frames. It ends
when the command ends (its exit status), on the detach keys, when the
endpoint goes away, or on SIGTERM, SIGHUP or (without raw mode) SIGINT to
this process; SIGWINCH resizes the sandbox's terminal. ``--record`` writes
what the terminal shows as an asciicast file.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ..asciicast import Asciicast
from ..linux.pty import window_size
from ..logs import LogRecord
from ..supervisor.protocol import EXIT, STDERR, STDOUT, STREAM_KINDS, FrameReader, frame, json_frame
from .terminal import DetachKeys

if TYPE_CHECKING:
    from ..execute import Exec

#: The signals that end a session (and restore the terminal) rather than the client.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Ended(NamedTuple):
    """How a session ended: ``exited`` (the command's ``exit_code``), ``detached``,
    ``lost`` (the endpoint went away), or ``signal`` (this process got one)."""

    how: str
    exit_code: int
    message: str | None = None


class Endpoint(Protocol):
    def fileno(self) -> int: ...

    def ready(self) -> bool:
        """Frames are waiting that came before (``read`` returns them without waiting)."""
        ...

    def read(self) -> list[tuple[bytes, bytes]] | None: ...

    def send_input(self, data: bytes) -> None: ...

    def close_input(self) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    def detach(self) -> None: ...


class Relay:
    """Copies between this process's stdio and ``endpoint`` until the session ends."""

    def __init__(self, endpoint: Endpoint, *, tty: bool, stdin: bool, detach_keys: bytes = b"",
                 record: Asciicast | None = None, in_fd: int = 0, out_fd: int = 1,
                 err_fd: int = 2, on_note: Callable[[str], None] = lambda _text: None) -> None:
        self.endpoint = endpoint
        self.tty = tty
        self.stdin = stdin
        self.keys = DetachKeys(detach_keys)
        self.record = record
        self.in_fd, self.out_fd, self.err_fd = in_fd, out_fd, err_fd
        self.on_note = on_note
        self._signals: list[int] = []

    def run(self) -> Ended:
        sel = selectors.DefaultSelector()
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        previous = self._install(wake_w)
        try:
            sel.register(self.endpoint.fileno(), selectors.EVENT_READ, "endpoint")
            sel.register(wake_r, selectors.EVENT_READ, "signal")
            if self.stdin:
                sel.register(self.in_fd, selectors.EVENT_READ, "stdin")
            self._resize()
            while True:
                if self.endpoint.ready():  # frames that came with the attach's reply
                    ended = self._event("endpoint", sel)
                    if ended is not None:
                        return ended
                    continue
                for key, _ in sel.select():
                    ended = self._event(key.data, sel)
                    if ended is not None:
                        return ended
        finally:
            self._restore(previous)
            sel.close()
            os.close(wake_r)
            os.close(wake_w)

    def _install(self, wake_w: int) -> dict[int, object]:
        previous: dict[int, object] = {-1: signal.set_wakeup_fd(wake_w)}
        for sig in (*ENDING_SIGNALS, signal.SIGWINCH):
            previous[sig] = signal.signal(sig, lambda signum, _frame: self._signals.append(signum))
        return previous

    def _restore(self, previous: dict[int, object]) -> None:
        signal.set_wakeup_fd(previous.pop(-1))  # type: ignore[arg-type]
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _event(self, what: str, sel: selectors.BaseSelector) -> Ended | None:
        if what == "stdin":
            return self._typed(sel)
        if what == "signal":
            return self._signalled()
        frames = self.endpoint.read()
        if frames is None:
            return Ended("lost", 125, "the sandbox's supervisor went away")
        for kind, payload in frames:
            ended = self._frame(kind, payload)
            if ended is not None:
                return ended
        return None

    def _typed(self, sel: selectors.BaseSelector) -> Ended | None:
        data = os.read(self.in_fd, 65536)
        if not data:  # end of our stdin: the command's input ends (a terminal's stays)
            sel.unregister(self.in_fd)
            self.endpoint.close_input()
            return None
        send, detach = self.keys.feed(data)
        if send:
            self.endpoint.send_input(send)
            if self.record is not None:
                self.record.input(send)
        if detach:
            self.endpoint.detach()
            return Ended("detached", 0)
        return None

    def _frame(self, kind: bytes, payload: bytes) -> Ended | None:
        if kind == STDOUT:
            _write_all(self.out_fd, payload)
            if self.record is not None:
                self.record.output(payload)
        elif kind == STDERR:
            _write_all(self.err_fd, payload)
        elif kind == EXIT:
            end = json.loads(payload)
            if end.get("restarting"):
                self.on_note(f"exited with status {end.get('exit_code')}; restarting")
                return None
            return Ended("exited", int(end.get("exit_code") or 0), end.get("message"))
        return None

    def _signalled(self) -> Ended | None:
        signals, self._signals = self._signals, []
        for sig in signals:
            if sig == signal.SIGWINCH:
                self._resize()
            else:
                return Ended("signal", 128 + sig, f"got {signal.Signals(sig).name}: the "
                             "session ends (a sandbox run in the foreground ends with it)")
        return None

    def _resize(self) -> None:
        if not self.tty:
            return
        try:
            rows, cols = window_size(self.out_fd if os.isatty(self.out_fd) else self.in_fd)
        except OSError:
            return  # not a terminal here: the sandbox's keeps its size
        if rows and cols:
            self.endpoint.resize(rows, cols)
            if self.record is not None:
                self.record.resize(rows, cols)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            selectors.DefaultSelector().select(0.01)
        except BrokenPipeError:
            return


class ExecEndpoint:
    """A process started from here (``execute.Exec``) as a relay's endpoint: its output
    and its end come as frames on a pipe (written by its monitor's thread)."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_CLOEXEC)
        self._reader = FrameReader()
        self._exec: Exec | None = None

    @property
    def exec(self) -> Exec:
        """The process, once started."""
        if self._exec is None:
            raise RuntimeError("the exec has not started")
        return self._exec

    def on_output(self, record: LogRecord) -> None:
        _write_all(self._w, frame(STREAM_KINDS.get(record.stream, STDOUT), record.data))

    def start(self, exe: Exec) -> None:
        """Start ``exe`` (made with ``on_output=endpoint.on_output``); its end is a frame."""
        exe.start()
        self._exec = exe
        threading.Thread(target=self._wait, name="sandbox-exec-wait", daemon=True).start()

    def _wait(self) -> None:
        try:
            result = self.exec.wait()
            end = {"exit_code": result.exit_code, "message": result.limit_message()}
        except BaseException as exc:  # reported as the session's end
            end = {"exit_code": 125, "message": str(exc)}
        try:
            _write_all(self._w, json_frame(EXIT, end))  # its output is all written by now
        finally:
            os.close(self._w)

    def fileno(self) -> int:
        return self._r

    def ready(self) -> bool:
        return False

    def read(self) -> list[tuple[bytes, bytes]] | None:
        data = os.read(self._r, 65536)
        return list(self._reader.feed(data)) if data else None

    def send_input(self, data: bytes) -> None:
        self.exec.write_stdin(data)

    def close_input(self) -> None:
        self.exec.close_stdin()

    def resize(self, rows: int, cols: int) -> None:
        self.exec.resize(rows, cols)

    def detach(self) -> None:
        """An exec ends with its client (it is this process's): no detaching from it."""

    def close(self) -> None:
        """Close the pipe (the writing end too if the process never started)."""
        os.close(self._r)
        if self._exec is None:
            os.close(self._w)
