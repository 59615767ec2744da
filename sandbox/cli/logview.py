"""`sandbox logs`: a sandbox's log file as it grows, filtered and stamped.

The log (``log.jsonl`` in the sandbox's state dir: one LogRecord per line,
``logs.FileSink``) holds STDOUT and STDERR, STDIN when it was logged
(`--log-stdin`), and notes of the engine's (stream ``sandbox``), across
every run of a kept sandbox, until it is removed.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from ..errors import SpecError, StateError
from ..logs import LogRecord
from ..units import parse_duration

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:  # the daemon's client prints with LogPrinter and loads no engine module
    from .. import state


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``--since``: a duration ago (``10m``) or epoch seconds, as epoch seconds."""
    if text is None:
        return None
    try:
        value = float(text)
        if value > 1e9:  # epoch seconds, not a duration in seconds
            return value
    except ValueError:
        pass
    try:
        ago = parse_duration("since", text)
    except SpecError:
        raise SpecError("since", text, "a duration ago like 10m or 2h, or epoch seconds") from None
    return (now or time.time()) - (ago or 0)


def stamp(when: float) -> str:
    return datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LogPrinter:
    """Prints log records as `sandbox logs` shows them: filtered by stream and time, each
    line stamped with ``--timestamps``; whether the records come from a log file here
    (``LogView``) or from a daemon."""

    def __init__(self, *, since: str | None = None, timestamps: bool = False,
                 stdin: bool = False) -> None:
        self.since = parse_since(since)
        self.timestamps = timestamps
        self.streams = {"stdout", "stderr"} | ({"stdin"} if stdin else set())
        self._line_start = {"stdout": True, "stderr": True, "stdin": True}

    def show(self, rec: LogRecord) -> None:
        if rec.stream not in self.streams or (self.since and rec.time < self.since):
            return
        out = sys.stderr.buffer if rec.stream == "stderr" else sys.stdout.buffer
        data = rec.data
        if self.timestamps:
            data = self._stamped(rec)
        out.write(data)
        out.flush()

    def _stamped(self, rec: LogRecord) -> bytes:
        """Each line of the record starts with its time (a record may end mid-line)."""
        prefix = stamp(rec.time).encode() + b" "
        out = bytearray()
        for piece in rec.data.splitlines(keepends=True):
            if self._line_start[rec.stream]:
                out += prefix
            out += piece
            self._line_start[rec.stream] = piece.endswith(b"\n")
        return bytes(out)


class LogView:
    """What of one sandbox's log file has been printed so far."""

    def __init__(self, sdir: state.SandboxDir, printer: LogPrinter) -> None:
        self.sdir = sdir
        self.printer = printer
        self.pos = 0

    def print_new(self) -> None:
        """Print the whole records added since the last call."""
        try:
            with open(self.sdir.log_path, "rb") as f:
                f.seek(self.pos)
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # being written
                    self.pos += len(line)
                    if b'"stream": "sandbox"' not in line:
                        self.printer.show(LogRecord.from_json(line.decode()))
        except FileNotFoundError:  # nothing written yet, or the sandbox is gone
            pass

    def still_running(self) -> bool:
        """Whether more can come: its supervisor runs, or its owner (a foreground run)."""
        from ..supervisor.status import read_status, supervisor_alive

        if not self.sdir.path.exists():
            return False
        try:
            if read_status(self.sdir) is not None:
                return supervisor_alive(self.sdir)
            return self.sdir.read_record().owner_alive
        except StateError:
            return False
