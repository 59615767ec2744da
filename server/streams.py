"""How logs go over HTTP: Server-Sent Events, Docker's multiplexed frames, plain text.

- SSE (``text/event-stream``): one event per record, ``id`` its index (or a
  job event's sequence number) so a client that lost the connection sends
  ``Last-Event-ID`` and gets exactly what follows, the data one JSON line.
- Multiplexed (``application/vnd.docker.multiplexed-stream``): Docker's
  framing for output without a terminal, 8 bytes (stream type 0 stdin, 1
  stdout or 2 stderr, three zeros, the length big-endian) then the bytes.
  A run followed in its create request (``POST /v1/sandboxes?follow=true``)
  adds two types of ours around the output, each one JSON object: 3, the
  sandbox made (first), and 4, how it ended, as ``/wait`` answers (last).
- Text: the bytes as they came, both streams together, optionally each
  record prefixed with its time.
"""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

from jobs import LogEvent, Renderer
from sandbox import LogRecord

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
STREAM_TYPES = {"stdin": 0, "stdout": 1, "stderr": 2}
#: The frame types a followed run adds: what was made, and how it ended.
CREATED_FRAME, ENDED_FRAME = 3, 4


def data_fields(data: bytes) -> dict[str, str]:
    """Bytes as JSON: ``data`` when they are UTF-8, else ``b64``."""
    try:
        return {"data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(data).decode()}


def sse(event: str, ident: int | str, payload: dict[str, Any]) -> bytes:
    return f"id: {ident}\nevent: {event}\ndata: {json.dumps(payload)}\n\n".encode()


def record_sse(index: int, record: LogRecord) -> bytes:
    """A sandbox's output record as an SSE event (id: its index from 1)."""
    return sse(record.stream, index + 1, {"stream": record.stream, "time": record.time,
                                          **data_fields(record.data)})


def frame(record: LogRecord) -> bytes:
    return _framed(STREAM_TYPES.get(record.stream, 1), record.data)


def _framed(kind: int, data: bytes) -> bytes:
    """Docker's 8-byte header (the type, three zeros, the length big-endian), then the data."""
    return bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def json_frame(kind: int, payload: dict[str, Any]) -> bytes:
    """A frame of one of our own types (CREATED_FRAME, ENDED_FRAME): a JSON object."""
    return _framed(kind, json.dumps(payload).encode())


def timestamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d}Z"


def text(record: LogRecord, timestamps: bool) -> bytes:
    return (timestamp(record.time).encode() + b" " if timestamps else b"") + record.data


def render(events: list[LogEvent], service: str | None = None) -> bytes:
    """A job's log as the CLI prints it (sections and output, both streams together);
    with ``service``, that service's output alone (`sandbox jobs logs --service`)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)
    renderer = Renderer(out, out, service=service)
    for event in events:
        renderer.write(event)
    out.flush()
    return out.buffer.getvalue()
