"""Messages from a container's processes to the parent, one JSON object per line.

Written to the *status pipe* (fd 3 in the container's processes):

- ``{"event": "error", "step": ..., "errno": ..., "detail": ...}``: setup failed
  (then the process exits); ``step == "exec"`` means the command could not
  be started.
- ``{"event": "started", "pid": N}``: the command runs (N is its pid inside);
  with tracing, ``"trace"``: each setup step and when it was done.
- ``{"event": "exit", "status": S}``: the command ended; S is its wait status.

A pipe that closes without an ``exit`` message means the init itself was
killed (teardown, the OOM killer, the parent's death). A process whose setup
failed exits with SETUP_FAILED after its message (``fail_setup``). A held
init says HELD on its owner's socket once the container is ready.
"""

from __future__ import annotations

import json
from collections import namedtuple

from .fds import STATUS_FD
from .kernel import Kernel
from .steps import StepFailed

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small

if TYPE_CHECKING:
    from typing import Any, NoReturn

#: The exit status of a container process whose setup failed (Docker's 125).
SETUP_FAILED = 125
#: What a held init sends its owner's socket once the container is ready.
HELD = b"held"

#: One message: its kind ("error", "started", "exit") and the rest of its fields.
Event = namedtuple("Event", ("kind", "data"))


def send(kernel: Kernel, fd: int, kind: str, **data: Any) -> None:
    """Write one message; best effort, the reader may be gone."""
    line = json.dumps({"event": kind, **data}).encode() + b"\n"
    try:
        kernel.write(fd, line)
    except OSError:
        pass


def send_started(kernel: Kernel, fd: int, pid: int) -> None:
    """``send(kernel, fd, "started", pid=pid)``, formatted by hand: a forked Python target
    sends it, where json's first use would cost copied pages on top of its time."""
    try:
        kernel.write(fd, b'{"event": "started", "pid": %d}\n' % pid)
    except OSError:
        pass


def send_error(kernel: Kernel, fd: int, step: str, exc: BaseException, **extra: Any) -> None:
    err = getattr(exc, "errno", None)
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc)
        if exc.filename:
            detail += f": {exc.filename}"
    else:
        detail = str(exc) or type(exc).__name__
    send(kernel, fd, "error", step=step, errno=err, detail=detail, **extra)


def fail_setup(kernel: Kernel, exc: BaseException) -> NoReturn:
    """Report a failed setup on the status pipe (by step; "start" if unnamed) and exit."""
    if isinstance(exc, StepFailed):
        send_error(kernel, STATUS_FD, exc.step, exc.error)
    else:
        send_error(kernel, STATUS_FD, "start", exc)
    kernel.exit(SETUP_FAILED)


def read_events(buffer: bytes) -> tuple[list[Event], bytes]:
    """Complete messages in buffer, and what is left of an incomplete one."""
    events = []
    *lines, rest = buffer.split(b"\n")
    for line in lines:
        if line.strip():
            data = json.loads(line)
            events.append(Event(data.pop("event"), data))
    return events, rest
