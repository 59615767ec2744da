"""Messages from the container's init to the parent, one JSON object per line.

The init writes to the *status pipe*:

- ``{"event": "error", "step": ..., "errno": ..., "detail": ...}``: setup failed
  (then it exits); ``step == "exec"`` means the command could not be started.
- ``{"event": "started", "pid": N}``: the command runs (N is its pid inside).
- ``{"event": "exit", "status": S}``: the command ended; S is its wait status.

A pipe that closes without an ``exit`` message means the init itself was
killed (teardown, OOM killer, the parent's death).
"""

from __future__ import annotations

import json
import os
from collections import namedtuple

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small
if TYPE_CHECKING:
    from typing import Any

#: One message: its kind ("error", "started", "exit") and the rest of its fields.
Event = namedtuple("Event", ("kind", "data"))


def send(fd: int, kind: str, **data: Any) -> None:
    """Write one message; best effort, the reader may be gone."""
    line = json.dumps({"event": kind, **data}).encode() + b"\n"
    try:
        os.write(fd, line)
    except OSError:
        pass


def send_started(fd: int, pid: int) -> None:
    """``send(fd, "started", pid=pid)``, formatted by hand: a forked Python target sends
    it, where json's first use would cost copied pages on top of its time."""
    try:
        os.write(fd, b'{"event": "started", "pid": %d}\n' % pid)
    except OSError:
        pass


def send_error(fd: int, step: str, exc: BaseException, **extra: Any) -> None:
    err = getattr(exc, "errno", None)
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc)
        if exc.filename:
            detail += f": {exc.filename}"
    else:
        detail = str(exc) or type(exc).__name__
    send(fd, "error", step=step, errno=err, detail=detail, **extra)


def read_events(buffer: bytes) -> tuple[list[Event], bytes]:
    """Complete messages in buffer, and what is left of an incomplete one."""
    events = []
    *lines, rest = buffer.split(b"\n")
    for line in lines:
        if line.strip():
            data = json.loads(line)
            events.append(Event(data.pop("event"), data))
    return events, rest
