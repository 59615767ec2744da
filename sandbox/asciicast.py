"""A terminal session as an asciicast v2 file (`--record FILE`), for `asciinema play`.

The format (asciinema's docs, "asciicast v2"): a header line, a JSON object
with ``version`` 2, ``width``, ``height``, ``timestamp`` and ``env``; then
one JSON array per event, ``[seconds since the start, code, data]``: ``o``
output, ``i`` input (only with ``record_input``: keystrokes can be
secrets), ``r`` a resize as ``"COLSxROWS"``. Output is UTF-8 text: a
character split across two reads is decoded whole (an incremental
decoder), bytes that are no UTF-8 become U+FFFD, as asciinema records them.
"""

from __future__ import annotations

import codecs
import json
import os
import time
from typing import IO


class Asciicast:
    """Writes one session's events to ``path`` as they happen (flushed: a killed client
    leaves a file that plays up to its end)."""

    def __init__(self, path: str, rows: int, cols: int, *, record_input: bool = False,
                 title: str | None = None) -> None:
        self.record_input = record_input
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._start = time.monotonic()
        self._decoders = {code: codecs.getincrementaldecoder("utf-8")("replace") for code in "oi"}
        header = {"version": 2, "width": cols, "height": rows, "timestamp": int(time.time()),
                  "env": {"TERM": os.environ.get("TERM", "xterm"),
                          "SHELL": os.environ.get("SHELL", "/bin/sh")}}
        if title:
            header["title"] = title
        self._write(header)

    def output(self, data: bytes) -> None:
        self._event("o", self._decoders["o"].decode(data))

    def input(self, data: bytes) -> None:
        if self.record_input:
            self._event("i", self._decoders["i"].decode(data))

    def resize(self, rows: int, cols: int) -> None:
        self._event("r", f"{cols}x{rows}")

    def _event(self, code: str, text: str) -> None:
        if text and self._file is not None:
            self._write([round(time.monotonic() - self._start, 6), code, text])

    def _write(self, obj: object) -> None:
        self._file.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
