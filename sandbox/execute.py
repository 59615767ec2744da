"""A process started in a running sandbox (`sandbox exec`, ``Sandbox.exec``): ``Exec``.

It joins the sandbox's namespaces and cgroup (``process.launch_exec``:
the exec route) and runs under the sandbox's limits, capabilities and
policy, as its user unless told otherwise; it has its own stdio, its own
exit status and its own Result (without the cgroup's accounting, which is
the sandbox's), and dies with the sandbox. It is watched as a sandbox is
(``Monitor``): output through the output limit to the sinks, live input
with ``tty`` or ``interactive``, a terminal that can be resized.

``exec_into(ref, command, ...)`` makes one for a sandbox of any process on
this host, by id or name: refused for an unknown sandbox, one that is not
running (stopped, not started) and one being removed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping

from . import images, state
from .entry import exec_plan, find_init
from .errors import StateError
from .liveinput import LiveInput, take_input
from .logs import CallbackSink, LogRecord, MemorySink, OutputLimiter, Sink
from .monitor import Monitor
from .plan import Plan
from .planner import DEFAULT_TTY_SIZE
from .process.container import ContainerProcess
from .process.launch_exec import init_namespaces
from .result import Result
from .stdio import ContainerStdio, start_process


class Exec:
    """One process in a running sandbox, from ``start`` to ``wait``; ``close`` ends it.

    ``plan`` comes from ``exec_plan`` (a terminal if its ExecPlan has a
    ``tty`` size); ``interactive``: its stdin stays open for ``write_stdin``
    (always so on a terminal); ``stdin_fd``: an fd to read stdin from
    instead; ``output_limit``: bytes of output kept (the sandbox's).
    """

    def __init__(self, plan: Plan, *, on_output: Callable[[LogRecord], None] | None = None,
                 sinks: Iterable[Sink] = (), interactive: bool = False,
                 stdin_fd: int | None = None, output_limit: int | None = 16 << 20) -> None:
        self.plan = plan
        self.sandbox_id = plan.sandbox_id
        self.tty = plan.exec.tty is not None
        self._interactive = interactive
        self._stdin_fd = stdin_fd
        self._output_limit = output_limit
        self._memory = MemorySink()
        self._sinks: list[Sink] = [self._memory, *sinks]
        if on_output is not None:
            self._sinks.append(CallbackSink(on_output))
        self.process: ContainerProcess | None = None
        self.input: LiveInput | None = None
        self._monitor: Monitor | None = None
        self._result: Result | None = None
        self._started_at = 0.0

    def start(self) -> None:
        """Start the process; SetupError (CommandNotFound, ...) if it could not be."""
        if self.process is not None:
            raise StateError(f"this exec in sandbox {self.sandbox_id} was started already")
        stdio = ContainerStdio(tty=self.tty, interactive=self._interactive,
                               stdin_fd=self._stdin_fd)
        self._started_at = time.time()
        self.process = start_process(self.plan, stdio, None, lambda: None)
        self.input, terminal = take_input(
            stdio, tty=self.tty, interactive=self._interactive,
            what=f"exec in sandbox {self.sandbox_id}", on_input=self._on_input)
        self._monitor = Monitor(
            self.process, stdio.status_r, stdio.stdout_r, stdio.stderr_r, self._sinks,
            OutputLimiter(self._output_limit), kill=self._kill_command, sample=lambda: None,
            timeout=None, terminal=terminal)
        self._monitor.start()
        self._monitor.wait_started()
        if self._monitor.start_error is not None:
            from .errors import SetupError

            self._monitor.join()
            self.close()
            raise SetupError.from_report(self._monitor.start_error)

    def _on_input(self, _data: bytes) -> None:
        if self._monitor is not None:
            self._monitor.note_input()

    def _kill_command(self) -> None:
        """SIGKILL the command (its pid came with "started", checked to be our exec's
        child), or the exec's first process if the command does not run yet."""
        mon, proc = self._monitor, self.process
        if proc is None:
            return
        pid = mon.command_pid if mon is not None else None
        if pid and _parent_of(pid) == proc.pid:
            try:
                os.kill(pid, signal.SIGKILL)
                return
            except ProcessLookupError:
                pass
        proc.send_signal(signal.SIGKILL)

    @property
    def done(self) -> bool:
        """True once the process has ended (its output all read)."""
        return self._monitor is not None and self._monitor.done.is_set()

    def write_stdin(self, data: bytes, timeout: float | None = None) -> None:
        self._live_input().write(data, timeout)

    def close_stdin(self) -> None:
        self._live_input().end()

    def resize(self, rows: int, cols: int) -> None:
        self._live_input().resize(rows, cols)

    def _live_input(self) -> LiveInput:
        if self.input is None:
            raise StateError(f"this exec in sandbox {self.sandbox_id} takes no input: start "
                             "it with tty or interactive")
        return self.input

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the command: SIGKILL ends it; others are passed on to it."""
        if self.process is None or self._monitor is None:
            raise StateError(f"this exec in sandbox {self.sandbox_id} is not running")
        if sig == signal.SIGKILL:
            self._monitor.kill()
        else:
            self.process.send_signal(sig)

    def wait(self, timeout: float | None = None) -> Result:
        """Block until the process has ended: its Result."""
        if self._result is not None:
            return self._result
        if self._monitor is None:
            raise StateError(f"this exec in sandbox {self.sandbox_id} was not started")
        if not self._monitor.join(timeout):
            raise TimeoutError(f"exec in sandbox {self.sandbox_id} still running after {timeout}s")
        self._result = self._make_result()
        self.close()
        return self._result

    def _make_result(self) -> Result:
        mon = self._monitor
        assert mon is not None
        status = mon.exit_status
        code = os.waitstatus_to_exitcode(status) if status is not None else -signal.SIGKILL
        sig = -code if code < 0 else None
        started = mon.command_started_at or self._started_at
        ended = mon.ended_at or time.time()
        return Result(
            id=self.sandbox_id, exit_code=128 + sig if sig else code, signal=sig,
            started_at=started, ended_at=ended, duration=max(ended - started, 0.0),
            stdout=self._memory.data("stdout"), stderr=self._memory.data("stderr"),
            output_truncated=mon.limiter.truncated, output_killed=mon.output_killed,
            stdout_bytes=mon.limiter.total["stdout"], stderr_bytes=mon.limiter.total["stderr"],
            limits={"output": self._output_limit})

    def run(self) -> Result:
        """Start, wait, close: the Result."""
        try:
            self.start()
            return self.wait()
        finally:
            self.close()

    def close(self) -> None:
        """Kill what still runs, reap it, close every fd (idempotent)."""
        if self._monitor is not None and not self._monitor.done.is_set():
            self._monitor.kill()
            self._monitor.join()
        if self.input is not None:
            self.input.close()
        if self.process is not None:
            if self.process.pidfd >= 0:
                self.process.send_signal(signal.SIGKILL)
                self.process.reap()
            self.process.close()

    def __enter__(self) -> Exec:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[1])


def running_init(sdir: state.SandboxDir, record: state.Record) -> tuple[int, int | None, tuple]:
    """The running sandbox's init for an exec: (pid, start time, namespace ids).

    StateError when the sandbox is being removed or does not run.
    """
    if sdir.removed_by_another():
        raise StateError(f"sandbox {sdir.id} is being removed")
    init = find_init(record.cgroups) if record.cgroups else None
    if init is None or not record.entry:
        raise StateError(f"sandbox {sdir.id} is not running",
                         hint=f"start it with `sandbox start {record.name or sdir.id}`")
    pid, start = init
    return pid, start, init_namespaces(pid, start, record.entry["unshare_flags"])


def exec_into(ref: str, command: tuple[str, ...] | list[str], *,
              env: Mapping[str, str] | None = None, workdir: str | None = None,
              user: str | None = None, tty: bool = False,
              tty_size: tuple[int, int] = DEFAULT_TTY_SIZE, interactive: bool = False,
              on_output: Callable[[LogRecord], None] | None = None,
              stdin_fd: int | None = None) -> Exec:
    """An Exec (not started) of ``command`` in the running sandbox ``ref`` (id or name)."""
    sdir = state.resolve(ref)
    record = sdir.read_record()
    init = running_init(sdir, record)
    plan = exec_plan(sdir.id, record.entry, init, command, env=env, workdir=workdir,
                     user=user_ids(user, record.image_id or record.image) if user else None,
                     tty_size=tty_size if tty else None)
    return Exec(plan, on_output=on_output, interactive=interactive or tty, stdin_fd=stdin_fd,
                output_limit=record.entry.get("output_limit", 16 << 20))


def user_ids(user: str, image_ref: str) -> tuple[str, tuple[int, int, tuple[int, ...], str]]:
    """``user`` as given, and its ids in the sandbox's image (its /etc/passwd and /etc/group)."""
    from .planner import resolve_ids
    from .spec import SandboxSpec

    spec = SandboxSpec(image=image_ref, user=user)
    return user, resolve_ids(spec, images.get(image_ref))
