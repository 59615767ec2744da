"""A student's session as an asciicast v2 file: what the shell printed and what was typed.

asciicast v2 (asciinema's format): a header line, a JSON object with
``version``, ``width``, ``height``, ``timestamp`` and ``title``, then one
JSON array per event, ``[seconds since the start, code, data]``, with code
``o`` for output, ``i`` for input and ``r`` for a resize (``COLSxROWS``).
`asciinema play FILE` replays it; the teacher's page links it.

The Recorder is an output sink of the sandbox (called by its monitor
thread) and takes the input the terminal passes on (from the event loop's
threads): one lock keeps the lines whole. Each sandbox of a student (a reset
makes a new one) is recorded in a file of its own.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from sandbox import LogRecord


class Recorder:
    """Appends a session's events to ``path`` (made 0600); closed when the sandbox is gone."""

    def __init__(self, path: Path, *, title: str, size: tuple[int, int] = (24, 80)) -> None:
        self.path = path
        self.start = time.time()
        self._lock = threading.Lock()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._file: Any = os.fdopen(fd, "w", encoding="utf-8")
        rows, cols = size
        self._line({"version": 2, "width": cols, "height": rows, "timestamp": int(self.start),
                    "title": title, "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"}})

    def _line(self, value: object) -> None:
        with self._lock:
            if self._file is None:
                return
            self._file.write(json.dumps(value) + "\n")
            self._file.flush()

    def _event(self, code: str, data: bytes | str, when: float | None = None) -> None:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        self._line([round((when or time.time()) - self.start, 6), code, text])

    # the output sink's side (sandbox.logs.Sink)
    def write(self, record: LogRecord) -> None:
        self._event("o", record.data, record.time)

    def close(self) -> None:
        """The sink's end: nothing more is written (idempotent)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def input(self, data: bytes) -> None:
        self._event("i", data)

    def resize(self, rows: int, cols: int) -> None:
        self._event("r", f"{cols}x{rows}")


def read_events(path: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    """A recording's header and events (for tests and the teacher's page)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:] if line]
