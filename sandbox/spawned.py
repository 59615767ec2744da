"""Driving an interactive program on a terminal, as pexpect does: ``Spawned``.

``Sandbox.spawn(command)`` (and the pytest fixture's ``sandbox.spawn``)
starts ``command`` in a running sandbox on a terminal of its own;
``spawn(spec)`` makes a new sandbox whose command runs on one. Either way a
Spawned sends keys and waits for what the program writes:

    with sb.spawn(["sh"]) as sh:
        sh.expect("# ")
        sh.sendline("echo $((6 * 7))")
        sh.expect("42")
        sh.sendcontrol("d")
        assert sh.wait().exit_code == 0

What the terminal shows is collected as it comes (the monitor thread's
output callback) and searched from the end of the last match: ``before``
is what came before the match, ``after`` the match itself. As with pexpect,
``expect`` takes a regular expression (bytes, str, or compiled from bytes)
and ``expect_exact`` plain text.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Protocol

from .errors import SandboxError
from .logs import LogRecord
from .result import Result

#: How long expect() waits by default (seconds).
DEFAULT_TIMEOUT = 10.0
_POLL = 0.05


class Interactive(Protocol):
    """What a Spawned drives: an ``execute.Exec`` or a ``runtime.Sandbox`` with a terminal."""

    def write_stdin(self, data: bytes, timeout: float | None = None) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    def kill(self, sig: int = ...) -> None: ...

    def wait(self, timeout: float | None = None) -> Result: ...


class ExpectTimeout(SandboxError, TimeoutError):
    """What was expected did not come in time (the message shows the last output)."""


class ExpectEOF(SandboxError, EOFError):
    """The program ended before what was expected came."""


class Spawned:
    """A program on a terminal: send keys, expect output, wait for its end."""

    def __init__(self) -> None:
        self.proc: Interactive | None = None
        self._buffer = bytearray()
        self._pos = 0
        self._ended = False
        self._cond = threading.Condition()
        self.before = b""
        self.after = b""
        self.match: re.Match[bytes] | None = None
        self._done: Callable[[], bool] = lambda: True
        self._close: Callable[[], None] = lambda: None

    def attach(self, proc: Interactive, done: Callable[[], bool], close: Callable[[], None]) -> None:
        """Drive ``proc``: ``done()`` says it has ended, ``close()`` frees it (its maker's)."""
        self.proc = proc
        self._done = done
        self._close = close

    def feed(self, record: LogRecord) -> None:
        """The output callback: runs in the monitor's thread."""
        with self._cond:
            self._buffer += record.data
            self._cond.notify_all()

    @property
    def output(self) -> bytes:
        """Everything the program wrote so far."""
        with self._cond:
            return bytes(self._buffer)

    def send(self, data: bytes | str) -> None:
        self._proc().write_stdin(data.encode() if isinstance(data, str) else data)

    def sendline(self, line: bytes | str = "") -> None:
        """``line`` and Enter (a carriage return, as a terminal sends it)."""
        self.send((line.encode() if isinstance(line, str) else line) + b"\r")

    def sendcontrol(self, char: str) -> None:
        """Ctrl-``char``: ``sendcontrol("c")`` sends an interrupt, ``"d"`` end of input."""
        code = ord(char.lower()) & 0x1F if char.isalpha() else {"[": 27, "\\": 28, "]": 29,
                                                                 "^": 30, "_": 31}[char]
        self.send(bytes([code]))

    def resize(self, rows: int, cols: int) -> None:
        self._proc().resize(rows, cols)

    def expect(self, pattern: bytes | str | re.Pattern[bytes],
               timeout: float = DEFAULT_TIMEOUT) -> re.Match[bytes]:
        """Wait until the regular expression ``pattern`` matches what came after the last
        match; the match. ExpectTimeout after ``timeout`` seconds, ExpectEOF if the
        program ends first."""
        return self._wait_for(_compile(pattern), timeout)

    def expect_exact(self, text: bytes | str, timeout: float = DEFAULT_TIMEOUT) -> re.Match[bytes]:
        """``expect`` for the text itself (no regular expression: ``$ `` is a prompt)."""
        return self._wait_for(re.compile(re.escape(text.encode() if isinstance(text, str)
                                                   else text)), timeout)

    def _wait_for(self, regex: re.Pattern[bytes], timeout: float) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = regex.search(self._buffer, self._pos)
                if found is not None:
                    return self._matched(found)
                ended = self._done()
                if ended and self._ended:
                    raise ExpectEOF(f"the program ended before {regex.pattern!r} came; "
                                    f"last output: {self._tail()!r}")
                self._ended = ended  # one more search after the end: its last output
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ExpectTimeout(f"{regex.pattern!r} did not come within {timeout}s; "
                                        f"last output: {self._tail()!r}")
                if not ended:
                    self._cond.wait(min(left, _POLL))

    def _matched(self, found: re.Match[bytes]) -> re.Match[bytes]:
        self.before = bytes(self._buffer[self._pos:found.start()])
        self.after = found.group(0)
        self.match = found
        self._pos = found.end()
        return found

    def _tail(self) -> bytes:
        return bytes(self._buffer[max(self._pos, len(self._buffer) - 200):])

    def wait(self, timeout: float | None = None) -> Result:
        """Wait for the program's end: its Result."""
        return self._proc().wait(timeout)

    def kill(self, sig: int | None = None) -> None:
        if sig is None:
            self._proc().kill()
        else:
            self._proc().kill(sig)

    def _proc(self) -> Interactive:
        if self.proc is None:
            raise SandboxError("this Spawned drives no program yet")
        return self.proc

    def close(self) -> None:
        """End the program if it still runs, and free what it held."""
        if self.proc is not None:
            if not self._done():
                self.proc.kill()
            self._close()

    def __enter__(self) -> Spawned:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _compile(pattern: bytes | str | re.Pattern[bytes]) -> re.Pattern[bytes]:
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, bytes):
            raise TypeError("expect() takes a regular expression of bytes, like re.compile(rb'...')")
        return pattern
    return re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
