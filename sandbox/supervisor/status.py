"""The state of a supervised sandbox on disk: what `ps -a`, `start`, `wait` and gc read.

One JSON file in the sandbox's state dir (``supervisor.json``), replaced
whole at each change: the spec and options it is started with (again, by
`sandbox start`), its state, the exit status of its last run, how many
times it restarted. The supervisor that owns it writes ``supervisor.pid``
(pid and start time) and holds ``supervisor.lock`` (flock) while it lives,
so two supervisors never own one sandbox.

States: ``created`` (made, not started yet, or its start failed),
``running``, ``restarting`` (waiting before the next run), ``exited``
(stopped: kept until removed), ``removing``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import state
from ..errors import StateError

STATUS_NAME = "supervisor.json"
PID_NAME = "supervisor.pid"
LOCK_NAME = "supervisor.lock"
SOCKET_NAME = "control.sock"
LIVE_STATES = ("running", "restarting", "removing")


@dataclass
class Status:
    """One supervised sandbox's lifecycle state."""

    spec: dict[str, Any]
    options: dict[str, Any]
    state: str = "created"
    exit_code: int | None = None
    message: str | None = None  # why the last run ended, when a limit or an error ended it
    started_at: float | None = None
    finished_at: float | None = None
    restarts: int = 0
    created: float = field(default_factory=time.time)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


def read_status(sdir: state.SandboxDir) -> Status | None:
    """The sandbox's status, or None when it is no supervised sandbox."""
    try:
        data = json.loads((sdir.path / STATUS_NAME).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"unreadable status of sandbox {sdir.id}: {exc}") from exc
    return Status(**{k: v for k, v in data.items() if k in Status.__dataclass_fields__})


def write_status(sdir: state.SandboxDir, status: Status) -> None:
    state.write_atomically(sdir.path / STATUS_NAME, json.dumps(asdict(status)).encode())


def supervisor_alive(sdir: state.SandboxDir) -> bool:
    """True while a supervisor process owns the sandbox (its pid file names a live one)."""
    return not state.owner_gone(sdir.path, PID_NAME, now=time.time()) and (
        sdir.path / PID_NAME).exists()


def lock(sdir: state.SandboxDir) -> int:
    """Take the sandbox's supervisor lock (held until the fd closes): StateError if
    another supervisor has it."""
    fd = os.open(sdir.path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StateError(f"sandbox {sdir.id} is running already") from None
        raise
    state.write_owner(sdir.path, PID_NAME)
    return fd


def unlock(sdir: state.SandboxDir, fd: int) -> None:
    """Let go: the socket's path first, then the lock, last the pid file that says a
    supervisor runs (a new one can start from then on)."""
    _unlink(sdir.path / SOCKET_NAME)
    os.close(fd)
    _unlink(sdir.path / PID_NAME)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
