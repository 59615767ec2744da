"""Output of a sandbox: records, sinks, and the output limit.

Every chunk read from the command's STDOUT or STDERR pipe becomes a LogRecord
(stream, time, bytes) and is handed to each sink in order. The OutputLimiter
keeps the first ``limit`` bytes of both streams together and counts the rest,
which is drained (never left to block the writer) and dropped.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

STREAMS = ("stdout", "stderr")


@dataclass(frozen=True)
class LogRecord:
    """One chunk of output: which stream, when (epoch seconds), what bytes."""

    stream: str
    time: float
    data: bytes

    def to_json(self) -> str:
        """One JSON line; bytes that are not UTF-8 are stored as base64."""
        try:
            body = {"data": self.data.decode("utf-8")}
        except UnicodeDecodeError:
            body = {"b64": base64.b64encode(self.data).decode()}
        return json.dumps({"stream": self.stream, "time": round(self.time, 6), **body})

    @classmethod
    def from_json(cls, line: str) -> "LogRecord":
        return cls.from_dict(json.loads(line))

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> "LogRecord":
        """The record of ``to_json``'s object (as a log file or the daemon's SSE carry it)."""
        data = base64.b64decode(obj["b64"]) if "b64" in obj else obj.get("data", "").encode()
        return cls(obj.get("stream", "stdout"), obj.get("time", 0.0), data)


class Sink(Protocol):
    """Anything that takes records; ``close`` is called once at the end."""

    def write(self, record: LogRecord) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps every record it is given (the limiter bounds how many)."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self._lock = threading.Lock()

    def write(self, record: LogRecord) -> None:
        with self._lock:
            self.records.append(record)

    def close(self) -> None:
        pass

    def data(self, stream: str) -> bytes:
        with self._lock:
            return b"".join(r.data for r in self.records if r.stream == stream)


class FileSink:
    """JSON lines, one per record, flushed as they come (for `sandbox logs -f`).

    The file is made on the first record: a silent command costs no file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def _open(self) -> TextIO:
        if self._file is None:
            self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 - closed by close()
        return self._file

    def write(self, record: LogRecord) -> None:
        self._open().write(record.to_json() + "\n")

    def note(self, **fields: object) -> None:
        self._open().write(json.dumps({"stream": "sandbox", **fields}) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class CallbackSink:
    """Calls ``callback(record)`` for each record, live."""

    def __init__(self, callback: Callable[[LogRecord], None]) -> None:
        self.callback = callback

    def write(self, record: LogRecord) -> None:
        self.callback(record)

    def close(self) -> None:
        pass


#: After the limit, this much more is drained and counted; then the sandbox is
#: killed, so a writer that never stops (``yes``) cannot spin a host core forever.
DRAIN_ALLOWANCE = 64 << 20


class OutputLimiter:
    """Passes on the first ``limit`` bytes (both streams together), counts the rest.

    What comes after the limit is drained and counted up to DRAIN_ALLOWANCE
    bytes; then ``exhausted`` is true and the monitor kills the sandbox.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.kept = 0
        self.total = dict.fromkeys(STREAMS, 0)
        self.truncated = False

    @property
    def exhausted(self) -> bool:
        """True once the drained excess passed the allowance: end the sandbox."""
        return self.truncated and sum(self.total.values()) - self.kept > DRAIN_ALLOWANCE

    def admit(self, stream: str, data: bytes) -> bytes:
        """The part of data that is kept (possibly empty)."""
        self.total[stream] = self.total.get(stream, 0) + len(data)
        if self.limit is None:
            self.kept += len(data)
            return data
        room = self.limit - self.kept
        if room <= 0:
            self.truncated = True
            return b""
        if len(data) > room:
            self.truncated = True
            data = data[:room]
        self.kept += len(data)
        return data


def read_log(path: Path) -> Iterator[LogRecord]:
    """The records of a sandbox's log file, skipping notes."""
    with open(path) as f:
        for line in f:
            if line.strip() and '"stream": "sandbox"' not in line:
                yield LogRecord.from_json(line)
