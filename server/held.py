"""The sandboxes the daemon made, held in its process from create to remove.

A ``Held`` sandbox wraps one engine ``Sandbox``: made by create, started by
start (its monitor thread reads the output into a LogBuffer and, once the
command has ended, tears the container down: ``Sandbox.start(on_ended=...)``),
which keeps the Result and the log in memory until the sandbox is removed,
as Docker keeps an exited container. So what the host
holds (cgroup, mounts, network, state dir) lives exactly as long as the
command, and a daemon killed by SIGKILL takes its containers with it (they
die with their owner) and leaves only what `sandbox gc` removes.

Only sandboxes whose life is one request live here (`sandbox run` and
`run -i` through the daemon, the console's terminals, a class's seats):
they are the daemon's and end with it. A detached sandbox (``?detach=true``,
`sandbox run -d`) is handed to a supervisor of its own instead and
outlives the daemon: see ``server.detached``.
A sandbox made with ``tty`` has its
command on a pty made inside it: keystrokes go to the Sandbox's live
input (its pty's master), the screen comes as its stdout.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox import LogRecord, Result, Sandbox, SandboxSpec, StateError

from .logbuffer import LogBuffer

#: Exited sandboxes kept for their result and log, oldest dropped first beyond this.
MAX_EXITED = 500
#: An exited sandbox made with ``auto_remove`` is forgotten once waited for, or after this.
AUTO_REMOVE_AFTER = 60.0
#: Keystrokes a terminal has not taken for this long are refused (its program reads nothing).
INPUT_TIMEOUT = 30.0


@dataclass
class Held:
    """One sandbox the daemon made: who made it, its state, its log and (once ended) its Result."""

    sandbox: Sandbox
    owner: str
    created: float
    auto_remove: bool = False
    status: str = "created"  # created, running, exited
    logs: LogBuffer[LogRecord] = field(default_factory=LogBuffer)
    result: Result | None = None
    error: str | None = None
    stdin_w: int | None = None
    stdin_r: int | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    ended_at: float = 0.0
    terminal: Any = None  # its server.terminal.Terminal, once a page looked at it

    @property
    def id(self) -> str:
        return self.sandbox.id

    @property
    def spec(self) -> SandboxSpec:
        return self.sandbox.spec

    def row(self) -> dict[str, Any]:
        """What `sandbox ps` shows of it (the host's own rows have the same keys)."""
        return {"id": self.id, "name": self.spec.name, "image": self.spec.image,
                "status": self.status if self.status != "exited" else
                f"exited ({self.result.exit_code if self.result else '?'})",
                "created": self.created, "command": list(self.spec.command),
                "owner_pid": os.getpid(), "owner": self.owner}

    @property
    def tty(self) -> bool:
        """Whether its command runs on a pty made inside the sandbox (``spec.tty``)."""
        return self.spec.tty

    def write_stdin(self, data: bytes) -> None:
        """Pass bytes to the command's stdin (a pipe; empty bytes close it: EOF) or, on a
        terminal, keystrokes to its pty (empty bytes do nothing: a terminal's EOF is
        Ctrl-D). StateError once the command takes no more input."""
        if self.tty:
            if data and self.status == "running":
                self.sandbox.write_stdin(data, timeout=INPUT_TIMEOUT)
            return
        if self.stdin_w is None:
            return
        if not data:
            os.close(self.stdin_w)
            self.stdin_w = None
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self.stdin_w, view):]

    def resize(self, rows: int, cols: int) -> None:
        """Set its terminal's size (the command gets SIGWINCH); StateError without one."""
        if not self.tty:
            raise StateError(f"sandbox {self.id} has no terminal to resize",
                             hint="create it with tty: true")
        if self.status != "running":
            raise StateError(f"sandbox {self.id} is not running", hint=f"it is {self.status}")
        self.sandbox.resize(rows, cols)

    async def wait_ended(self) -> None:
        """Return once the command has ended and the container is gone (without a thread)."""
        while not self.logs.closed:  # every append wakes the waiters: wait again until closed
            await self.logs.wait_beyond(sys.maxsize)

    def close_fds(self) -> None:
        for name in ("stdin_w", "stdin_r"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)


class _BufferSink:
    def __init__(self, buffer: LogBuffer[LogRecord]) -> None:
        self.buffer = buffer

    def write(self, record: LogRecord) -> None:
        self.buffer.append(record)

    def close(self) -> None:
        pass


class SandboxTable:
    """Every sandbox the daemon holds, by id; the verbs of the API on them.

    The verbs block (they make namespaces and mounts): the routes call them
    from worker threads.
    """

    def __init__(self) -> None:
        self._held: dict[str, Held] = {}
        self._lock = threading.Lock()

    def create(self, spec: SandboxSpec, owner: str, *, stdin: bool = False,
               auto_remove: bool = False, sinks: tuple[Any, ...] = ()) -> Held:
        """Make the sandbox (nothing runs yet); errors as the engine raises them. ``sinks``
        take its output records too (a class's recording)."""
        # a terminal takes its input through its pty's master, which the Sandbox holds
        stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC) if stdin and not spec.tty else (None, None)
        buffer: LogBuffer[LogRecord] = LogBuffer()
        sandbox = Sandbox(spec, sinks=[_BufferSink(buffer), *sinks], stdin_fd=stdin_r)
        held = Held(sandbox, owner, time.time(), auto_remove, logs=buffer,
                    stdin_r=stdin_r, stdin_w=stdin_w)
        try:
            sandbox.create()
        except BaseException:
            held.close_fds()
            sandbox.destroy()
            raise
        with self._lock:
            self._held[held.id] = held
        return held

    def start(self, held: Held) -> None:
        """Start its command; its monitor's thread tears it down at its end."""
        if held.status != "created":
            raise StateError(f"sandbox {held.id} is {held.status}, not created",
                             hint="create a new one to run again")
        held.status = "running"  # before: a short command can end before start returns
        try:
            held.sandbox.start(background=True, on_ended=lambda _sandbox: self._wait(held))
        except BaseException as exc:
            held.error = str(exc)
            self._end(held, None)
            self.drop(held)
            raise
        finally:
            if held.stdin_r is not None:  # the container has its own copy now
                os.close(held.stdin_r)
                held.stdin_r = None

    def _wait(self, held: Held) -> None:
        """Its end, in its monitor's thread: keep the result, tear it down."""
        result = None
        try:
            result = held.sandbox.wait()
        except Exception as exc:  # an output sink failed: the engine killed it
            held.error = str(exc)
        self._end(held, result)

    def _end(self, held: Held, result: Result | None) -> None:
        try:
            held.sandbox.destroy()
        except Exception as exc:
            held.error = held.error or str(exc)
        if result is None:
            try:  # wait() raised after the end (an output sink failed): the Result is kept
                result = held.sandbox.wait(timeout=0)
            except Exception:
                pass
        held.result = result
        held.close_fds()
        held.status, held.ended_at = "exited", time.time()
        held.ended.set()
        held.logs.close()  # after ``ended``: a follower that saw the end sees the result
        self._trim()

    def _trim(self) -> None:
        """Forget the oldest exited sandboxes beyond MAX_EXITED, and those created with
        ``auto_remove`` that nobody waited for within AUTO_REMOVE_AFTER of their end."""
        now = time.time()
        with self._lock:
            for old in [h for h in self._held.values() if h.auto_remove and h.status == "exited"
                        and now - h.ended_at > AUTO_REMOVE_AFTER]:
                self._held.pop(old.id, None)
            exited = [h for h in self._held.values() if h.status == "exited"]
            for old in sorted(exited, key=lambda h: h.created)[:max(0, len(exited) - MAX_EXITED)]:
                self._held.pop(old.id, None)

    def get(self, sandbox_id: str) -> Held | None:
        with self._lock:
            return self._held.get(sandbox_id)

    def find(self, ref: str) -> Held | None:
        """The held sandbox with this id, unique id prefix or name (None: not held here)."""
        with self._lock:
            held = list(self._held.values())
        for h in held:
            if ref in (h.id, h.spec.name):
                return h
        matches = [h for h in held if h.id.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def all(self) -> list[Held]:
        with self._lock:
            return sorted(self._held.values(), key=lambda h: h.created)

    def drop(self, held: Held) -> None:
        with self._lock:
            self._held.pop(held.id, None)

    def kill(self, held: Held, sig: int = signal.SIGKILL) -> None:
        if held.status != "running":
            raise StateError(f"sandbox {held.id} is not running", hint=f"it is {held.status}")
        held.sandbox.kill(sig)

    def stop(self, held: Held, timeout: float) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds, as `docker stop`."""
        self.kill(held, signal.SIGTERM)
        if not held.ended.wait(timeout) and held.status == "running":
            held.sandbox.kill(signal.SIGKILL)
        held.ended.wait(30)

    def remove(self, held: Held, *, force: bool = False) -> str:
        """Remove it: kill it with ``force`` (refused while it runs otherwise), forget it.

        A running one is killed through its own Sandbox, and the thread that
        waits for it tears it down, as at the daemon's shutdown. Removing it
        as `sandbox rm` does (from outside: its cgroup, network, uid range and
        state directory) would race that teardown, and the loser's error
        (a cgroup or a file gone meanwhile) would be the request's answer.
        """
        if held.status == "created":
            held.close_fds()
            held.sandbox.destroy()
            held.status = "exited"
            held.logs.close()
        elif held.status == "running":
            if not force:
                raise StateError(f"sandbox {held.id} is running",
                                 hint="stop it first, or use `sandbox rm -f` to kill it")
            try:
                held.sandbox.kill(signal.SIGKILL)
            except (StateError, OSError):  # its process was reaped and closed meanwhile
                pass  # it ended meanwhile: its thread tears it down all the same
            held.ended.wait(30)
        self.drop(held)
        return held.id

    def shutdown(self) -> None:
        """Stop everything it holds (the daemon's SIGTERM): kill, wait, tear down."""
        for held in self.all():
            if held.status == "running":
                try:
                    held.sandbox.kill(signal.SIGKILL)
                except Exception:
                    pass
        for held in self.all():
            if held.status == "running":
                held.ended.wait(30)
            elif held.status == "created":
                held.close_fds()
                held.sandbox.destroy()
            self.drop(held)
