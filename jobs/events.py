"""The live log of a job as a sequence of events, and the sinks that take them.

Every event has a kind, a sequence number (per job, from 1, no gaps), a time
and the step it belongs to:

- ``step-start``  a step begins (fields: index, count, run)
- ``out``         a chunk of a step's STDOUT or STDERR (stream, data); a service's
                  output has no step and its name in the field ``service``
- ``step-end``    a step ended (status, exit_code, duration, message)
- ``note``        a line from the runner itself (data), e.g. JUnit problems
- ``eof``         the last event: the job's verdict (status, headline)

- ``service``     a service changed state (service, state: ready, failed, exited;
                  message)

The same events go to a Redis stream (``jobs.logstream``) for queued jobs and
straight to the terminal (``jobs.render``) for embedded ones. A job with
secrets masks every event before any sink sees it (``jobs.secrets``).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .secrets import Secrets, StreamMasker

_BASE = ("kind", "seq", "time", "step", "stream", "data")


@dataclass(frozen=True)
class LogEvent:
    """One entry of a job's log."""

    kind: str
    seq: int
    time: float
    step: str = ""
    stream: str = ""
    data: bytes = b""
    fields: Mapping[str, str] = field(default_factory=dict)

    def to_fields(self) -> dict[str, bytes | str]:
        """Flat string fields for XADD."""
        return {"kind": self.kind, "seq": str(self.seq), "time": f"{self.time:.6f}",
                "step": self.step, "stream": self.stream, "data": self.data, **self.fields}

    @classmethod
    def from_fields(cls, raw: Mapping[bytes | str, bytes | str]) -> "LogEvent":
        """The inverse of to_fields, from what XRANGE/XREAD return."""
        text = {_s(k): v for k, v in raw.items()}
        data = text.get("data", b"")
        return cls(kind=_s(text.get("kind", b"")), seq=int(_s(text.get("seq", b"0"))),
                   time=float(_s(text.get("time", b"0"))), step=_s(text.get("step", b"")),
                   stream=_s(text.get("stream", b"")),
                   data=data if isinstance(data, bytes) else data.encode(),
                   fields={k: _s(v) for k, v in text.items() if k not in _BASE})


    def to_json(self) -> dict[str, object]:
        """As JSON (the daemon's SSE data): bytes as ``data`` if UTF-8, else ``b64``."""
        try:
            body: dict[str, object] = {"data": self.data.decode("utf-8")}
        except UnicodeDecodeError:
            body = {"b64": base64.b64encode(self.data).decode()}
        return {"kind": self.kind, "seq": self.seq, "time": self.time, "step": self.step,
                "stream": self.stream, **body, "fields": dict(self.fields)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LogEvent":
        """The inverse of to_json."""
        raw = base64.b64decode(data["b64"]) if "b64" in data else str(data.get("data", "")).encode()
        return cls(str(data.get("kind", "")), int(data.get("seq", 0)), float(data.get("time", 0)),
                   str(data.get("step", "")), str(data.get("stream", "")), raw,
                   {str(k): str(v) for k, v in (data.get("fields") or {}).items()})


def _s(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class Sink(Protocol):
    def write(self, event: LogEvent) -> None: ...


class JobLog:
    """Numbers a job's events, masks its secrets, and hands each event to every sink, in order.

    Safe to call from the sandboxes' monitor threads (output) and the
    runner's thread (sections) at once. Output goes through ``output``: it
    is masked per stream, so a secret split across two chunks is masked too
    (``end_output`` shows what a stream held back, when it ends).
    """

    def __init__(self, *sinks: Sink, secrets: Secrets | None = None) -> None:
        self.sinks = list(sinks)
        self.seq = 0
        self.secrets = secrets or Secrets()
        self._streams: dict[tuple[str, str, str], StreamMasker] = {}
        self._lock = threading.Lock()
        self._streams_lock = threading.Lock()

    def emit(self, kind: str, *, step: str = "", stream: str = "", data: bytes = b"",
             **fields: object) -> LogEvent:
        return self._emit(kind, step, stream, self.secrets.mask_bytes(data), fields)

    def _emit(self, kind: str, step: str, stream: str, data: bytes,
              fields: Mapping[str, object]) -> LogEvent:
        text = {k: self.secrets.mask("" if v is None else str(v)) for k, v in fields.items()}
        with self._lock:
            self.seq += 1
            event = LogEvent(kind, self.seq, time.time(), step, stream, data, text)
            for sink in self.sinks:
                sink.write(event)
        return event

    def output(self, stream: str, data: bytes, *, step: str = "", service: str = "") -> None:
        """A chunk of a step's (or a service's) output, as an ``out`` event once masked."""
        with self._streams_lock:
            masker = self._streams.setdefault((step, service, stream), self.secrets.stream())
        shown = masker.feed(data)
        if shown:
            self._emit("out", step, stream, shown, {"service": service} if service else {})

    def end_output(self, *, step: str = "", service: str = "") -> None:
        """The streams of that step or service ended: show what they held back."""
        with self._streams_lock:
            ended = [(k, self._streams.pop(k)) for k in list(self._streams) if k[:2] == (step, service)]
        for key, masker in ended:
            rest = masker.flush()
            if rest:
                self._emit("out", step, key[2], rest, {"service": service} if service else {})


class MemorySink:
    """Keeps every event (tests, and the in-process API)."""

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def write(self, event: LogEvent) -> None:
        self.events.append(event)
