"""Processes started in running sandboxes through the daemon: `sandbox exec` over the API.

As Docker's execs: one is *made* (POST /v1/sandboxes/{ref}/exec: the
sandbox must run, the user must exist in its image; nothing starts yet),
then *started* by its attach WebSocket (/v1/execs/{id}/attach), which
carries its output, its input, its terminal's size and, at its end, its
exit status. The process is the engine's ``Exec`` (``sandbox.exec_into``),
started by the daemon: it runs in the sandbox's namespaces and cgroup,
under its limits, and dies with the sandbox; and with its client, as
`sandbox exec`'s process dies with the command: a WebSocket gone before
the end kills it. Ended execs are kept for GET /v1/execs/{id} (and a
sandbox's inspect) until MAX_ENDED newer ones have ended.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox import Exec, LogRecord, Result, StateError, exec_into

from .logbuffer import LogBuffer

#: An exec's terminal size when the client gives none (the engine's default).
DEFAULT_TTY_SIZE = (24, 80)
#: Ended execs kept for inspect, oldest forgotten first beyond this.
MAX_ENDED = 200
#: Keystrokes an exec's terminal has not taken for this long are refused.
INPUT_TIMEOUT = 30.0


@dataclass
class ExecEntry:
    """One exec: who made it, its process, its output and (once ended) its Result."""

    id: str
    sandbox_id: str
    owner: str
    command: list[str]
    tty: bool
    interactive: bool
    exe: Exec
    created: float = field(default_factory=time.time)
    logs: LogBuffer[LogRecord] = field(default_factory=LogBuffer)
    status: str = "created"  # created, running, exited
    result: Result | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        process = self.exe.process
        return {"id": self.id, "sandbox": self.sandbox_id, "command": self.command,
                "tty": self.tty, "interactive": self.interactive, "status": self.status,
                "running": self.status == "running", "owner": self.owner, "created": self.created,
                "exit_code": self.result.exit_code if self.result else None,
                "message": self.error or (self.result.limit_message() if self.result else None),
                "pid": process.pid if process is not None and self.status == "running" else None}

    def end(self) -> dict[str, Any]:
        """How it ended, as the attach WebSocket's last message says."""
        if self.result is None:
            return {"exit_code": 125, "message": self.error or "the exec ended without a result"}
        return {"exit_code": self.result.exit_code, "message": self.result.limit_message()}

    def write_stdin(self, data: bytes) -> None:
        """Keystrokes or stdin bytes (empty: close stdin; a terminal's EOF is Ctrl-D)."""
        if self.status != "running":
            return
        if data:
            self.exe.write_stdin(data, timeout=INPUT_TIMEOUT)
        elif not self.tty:
            self.exe.close_stdin()


class ExecTable:
    """Every exec the daemon made, by id."""

    def __init__(self) -> None:
        self._execs: dict[str, ExecEntry] = {}
        self._lock = threading.Lock()

    def create(self, ref: str, owner: str, *, command: list[str], env: dict[str, str],
               workdir: str | None, user: str | None, tty: bool, interactive: bool,
               size: tuple[int, int] | None) -> ExecEntry:
        """Make an exec in the running sandbox ``ref`` (StateError: none runs); not started."""
        logs: LogBuffer[LogRecord] = LogBuffer()
        exe = exec_into(ref, command, env=env, workdir=workdir, user=user, tty=tty,
                        tty_size=size or DEFAULT_TTY_SIZE, interactive=interactive,
                        on_output=logs.append)
        entry = ExecEntry(secrets.token_hex(6), exe.sandbox_id, owner, list(command), tty,
                          interactive or tty, exe, logs=logs)
        with self._lock:
            self._execs[entry.id] = entry
        return entry

    def start(self, entry: ExecEntry) -> None:
        """Start its process (SetupError, CommandNotFound...: it could not); a thread waits
        for its end."""
        with self._lock:
            if entry.status != "created":
                raise StateError(f"exec {entry.id} was started already")
            entry.status = "running"
        try:
            entry.exe.start()
        except BaseException as exc:
            entry.error = str(exc)
            self._ended(entry)
            raise
        threading.Thread(target=self._wait, args=(entry,), name=f"exec-{entry.id}",
                         daemon=True).start()

    def _wait(self, entry: ExecEntry) -> None:
        try:
            entry.result = entry.exe.wait()
        except Exception as exc:
            entry.error = str(exc)
        self._ended(entry)

    def _ended(self, entry: ExecEntry) -> None:
        entry.exe.close()
        entry.status = "exited"
        entry.logs.close()
        with self._lock:
            ended = sorted((e for e in self._execs.values() if e.status == "exited"),
                           key=lambda e: e.created)
            for old in ended[:max(0, len(ended) - MAX_ENDED)]:
                self._execs.pop(old.id, None)

    def get(self, exec_id: str) -> ExecEntry | None:
        with self._lock:
            return self._execs.get(exec_id)

    def of(self, sandbox_id: str) -> list[dict[str, Any]]:
        """The execs made in one sandbox, oldest first."""
        with self._lock:
            mine = [e for e in self._execs.values() if e.sandbox_id == sandbox_id]
        return [e.summary() for e in sorted(mine, key=lambda e: e.created)]

    def shutdown(self) -> None:
        """End every running exec (the daemon stops: their clients are gone)."""
        with self._lock:
            running = list(self._execs.values())
        for entry in running:
            entry.exe.close()
