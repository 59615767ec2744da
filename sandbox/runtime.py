"""The Sandbox: create, start, wait, destroy; ``Sandbox.run`` and ``run(spec) -> Result``.

create() and start() record each thing they make on an undo stack as soon
as it exists; destroy() unwinds that stack in reverse, also after errors, so
it undoes exactly what was done. The record on disk (one write, before the
cgroup is made and anything runs) names the cgroup and network reservations,
so `sandbox gc` can find what a crash left behind; a crash before the record
is written leaves only a state dir named by the sandbox id, which gc also
finds.

``Sandbox.run`` is the one way from start to teardown; what callers add
(the CLI's signals, a job's cancel, the pytest plugin's next sandbox) comes
in through its hooks. ``dry_run(spec)`` is the plan a run would perform.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from . import images, state
from .cgroups import Cgroup, CgroupHierarchy, CgroupStats, host_cgroups
from .entry import entry_of, exec_plan
from .errors import SandboxError, SetupError, SpecError, StateError
from .hostlimits import check as check_host_limits
from .liveinput import LiveInput, take_input
from .logs import CallbackSink, FileSink, LogRecord, MemorySink, OutputLimiter, Sink
from .monitor import Monitor
from .plan import Plan, UserNamespace
from .planner import DEFAULT_TTY_SIZE, NetworkSteps, build_plan, check_tty_size, command_of, resolve_ids
from .process.container import ContainerProcess
from .result import Result
from .spec import SandboxSpec
from .stdio import ContainerStdio, start_process

if TYPE_CHECKING:
    from .execute import Exec
    from .network import Attachment
    from .spawned import Spawned

OutputCallback = Callable[[LogRecord], None]
#: A stop hook: given the function that stops the sandbox, a context manager
#: that is entered before the sandbox is made and left after its end.
StopHook = Callable[[Callable[[], None]], AbstractContextManager[object]]


class Sandbox:
    """One isolated container. Use as a context manager, or call the verbs.

    ``on_output`` is called with each LogRecord as it is read, from the
    sandbox's monitor thread. An exception raised by it kills the sandbox
    and is raised again by wait().

    ``target``: a callable of this process to run inside the sandbox instead
    of ``spec.command`` (which is then only a label); its return value is the
    exit status. The caller must be single-threaded (this process is forked).

    With ``spec.tty`` the command runs on a pty made inside the sandbox,
    ``tty_size`` (rows, cols) at first; with ``spec.tty`` or
    ``spec.interactive`` it takes live input (``write_stdin``), logged to
    the log file with ``log_stdin``. ``sandbox_id`` and ``kept``: a sandbox
    that starts again under the same id (``sandbox.supervisor``): its state
    dir, log and name outlive each run, until it is removed.
    """

    def __init__(self, spec: SandboxSpec, *, on_output: OutputCallback | None = None,
                 sinks: Iterable[Sink] = (), log_file: bool = True,
                 stdin_fd: int | None = None, target: Callable[[], int | None] | None = None,
                 tty_size: tuple[int, int] = DEFAULT_TTY_SIZE, log_stdin: bool = False,
                 sandbox_id: str | None = None, kept: bool = False) -> None:
        if target is not None and spec.tty:
            raise SpecError("tty", True, "a command: a Python target runs without a terminal")
        self.spec = spec
        self._target = target
        self._stdin_fd = stdin_fd
        self._tty_size = check_tty_size(tty_size)
        self._log_stdin = log_stdin
        self._kept = kept
        self.id = sandbox_id or state.new_id()
        self.dir = state.SandboxDir(self.id)
        self.state = "new"
        self.cgroup: Cgroup | None = None
        self.network: Attachment | None = None
        self.process: ContainerProcess | None = None
        self._memory = MemorySink()
        self._sinks: list[Sink] = [self._memory, *sinks]
        if on_output is not None:
            self._sinks.append(CallbackSink(on_output))
        self._log_file = log_file
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._monitor: Monitor | None = None
        self._result: Result | None = None
        self._stats: CgroupStats | None = None
        self._record: state.Record | None = None
        self._created_at = 0.0
        self._spawned_at = 0.0
        self._file_sink: FileSink | None = None
        self._cgroup_made = False
        #: Where live input goes (``spec.tty`` or ``spec.interactive``), once started.
        self.input: LiveInput | None = None

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> "Sandbox":
        try:
            self.create()
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    def _push(self, what: str, undo: Callable[[], None]) -> None:
        self._undo.append((what, undo))

    def create(self) -> None:
        """Make the state dir, record, network and plan; nothing runs yet.

        The cgroup is named here (the record and the plan name it) and made
        by start(): a spare can then mount while it is being made. A
        delegating sandbox's is made here: its mounts bind part of it.
        """
        if self.state != "new":
            raise StateError(f"sandbox {self.id} was already created")
        self._created_at = time.time()
        check_host_limits(self.spec.limits)
        with images.writing():  # the image cannot be swept until the record names it
            image = images.get(self.spec.image)
            command_of(self.spec, image)  # no command and no CMD: refused before anything exists
            ids = resolve_ids(self.spec, image)
            hierarchy = host_cgroups()
            self.state = "creating"
            self._make_dir()
            self._record = state.new_record(self.id, self.spec, image_id=image.id)
            self.cgroup = hierarchy.plan(self.id, self.spec.limits, self.spec.delegate_cgroup)
            self._push("cgroup parents", self.cgroup.release_parents)  # if never made
            self._record.cgroups = list(self.cgroup.paths)
            self.network = self._attach_network()
            userns = self._lease_uid_range()
            self.plan = _plan(self.spec, image, self.id, str(self.dir.path), self.cgroup,
                              hierarchy, self.network, ids, userns, self._tty_size)
            self._record.entry = entry_of(self.plan, self.spec.limits.output)
            self.dir.write_record(self._record)
            if self.cgroup.delegated:  # bound in by the mounts, which a spare makes before start()
                self._make_cgroup()
        if self._log_file:
            self._file_sink = FileSink(self.dir.log_path)
            self._sinks.append(self._file_sink)
            self._push("log file", self._file_sink.close)
        self.state = "created"

    def _make_dir(self) -> None:
        """The state dir and the name; a kept sandbox's outlive this run (made at its first)."""
        if self._kept and self.dir.path.is_dir():
            if self.spec.name:
                state.claim_name(self.spec.name, self.id)
            return
        self.dir.create()
        if not self._kept:
            self._push("state dir", self.dir.remove)
        if self.spec.name:
            state.claim_name(self.spec.name, self.id)
            if not self._kept:
                self._push("name", lambda: state.release_name(self.spec.name, self.id))

    def _attach_network(self) -> Attachment | None:
        """Seam for network modes beyond ``none``/``host`` (see sandbox.network).

        ``network.attach`` reserves what the sandbox needs (an address, names),
        records it in the record's ``network`` dict (so gc can undo it) and
        returns an Attachment: the plan's steps for it (``NetworkSteps``) and
        ``detach()``.
        """
        if self.spec.network.mode in ("none", "host"):
            return None
        from . import network

        attachment = network.attach(self.spec, self.id, self._record)
        self._push("network", attachment.detach)
        return attachment

    def _lease_uid_range(self) -> UserNamespace | None:
        """With ``userns="auto"``: a range of host ids of its own (``security.subids``)."""
        if self.spec.userns != "auto":
            return None
        from .security import subids

        index, userns = subids.allocate(self.id)
        self._push("uid range", lambda: subids.release(index, self.id))
        assert self._record is not None
        self._record.userns = index
        return userns

    def _make_cgroup(self) -> None:
        """Make the cgroup the plan names, limits written (the launcher calls it; create()
        already did for a delegating sandbox), its delegated subtree given to the root of
        the sandbox's user namespace."""
        assert self.cgroup is not None and self.plan is not None
        if self._cgroup_made:
            return
        userns = self.plan.exec.userns
        self.cgroup.make(self.spec.limits, None if userns is None else (userns.uid_base, userns.gid_base))
        self._cgroup_made = True
        self._push("cgroup", self._remove_cgroup)

    def _remove_cgroup(self) -> None:
        assert self.cgroup is not None
        self.cgroup.remove()

    def start(self, *, background: bool = True,
              on_ended: Callable[[Sandbox], None] | None = None) -> None:
        """Start the command; raises SetupError if the container could not be made.

        With ``background=False`` no monitor thread is started: wait() then
        runs the monitor loop in the calling thread (what run() does: one
        thread fewer, and a single-threaded caller stays single-threaded).
        ``on_ended(sandbox)`` (background only): called in the monitor's thread
        once the command has ended, where wait() returns at once and destroy()
        may be called; it must not raise. Not called when start raises.
        """
        if self.state != "created":
            raise StateError(f"sandbox {self.id} cannot start from state {self.state}")
        spec = self.spec
        stdio = ContainerStdio(tty=spec.tty, stdin_data=spec.stdin is not None,
                               interactive=spec.interactive, stdin_fd=self._stdin_fd)
        self._spawned_at = time.perf_counter()
        self.process = start_process(self.plan, stdio, self._target, self._make_cgroup)
        self._push("process", self._end_process)
        self.state = "running"
        terminal = self._take_input(stdio)
        limits = spec.limits
        self._monitor = Monitor(
            self.process, stdio.status_r, stdio.stdout_r, stdio.stderr_r, self._sinks,
            OutputLimiter(limits.output), kill=self._kill_all,
            sample=self.cgroup.sample if self.cgroup else lambda: None, timeout=limits.timeout,
            stdin=(stdio.stdin_w, bytes(spec.stdin)) if spec.stdin is not None else None,
            on_exit=self._read_stats, terminal=terminal, idle_timeout=limits.idle_timeout,
        )
        if background:
            self._monitor.start(on_done=None if on_ended is None else self._ended_callback(on_ended))
            self._monitor.wait_started()
            self._raise_start_error()

    def _ended_callback(self, on_ended: Callable[[Sandbox], None]) -> Callable[[], None]:
        """``on_ended`` for the monitor, skipped for a start that failed (start raises)."""
        def done() -> None:
            assert self._monitor is not None
            if self._monitor.start_error is None:
                on_ended(self)
        return done

    def _take_input(self, stdio: ContainerStdio) -> int:
        """Live input's fd from ``stdio`` (``liveinput.take_input``); the master's copy
        the monitor reads, or -1."""
        self.input, terminal = take_input(stdio, tty=self.spec.tty, interactive=self.spec.interactive,
                                          what=f"sandbox {self.id}", on_input=self._on_input)
        if self.input is not None:
            self._push("input", self.input.close)
        return terminal

    def _on_input(self, data: bytes) -> None:
        if self._monitor is not None:
            self._monitor.note_input()
        if self._log_stdin and self._file_sink is not None:
            self._file_sink.write(LogRecord("stdin", time.time(), data))

    def write_stdin(self, data: bytes, timeout: float | None = None) -> None:
        """Send input to the command (its terminal, or its stdin pipe); waits for room."""
        self._live_input().write(data, timeout)

    def close_stdin(self) -> None:
        """End the command's input (a pipe is closed; a terminal stays: send Ctrl-D)."""
        self._live_input().end()

    def resize(self, rows: int, cols: int) -> None:
        """Set the size of the command's terminal (it gets SIGWINCH)."""
        self._live_input().resize(rows, cols)

    def _live_input(self) -> LiveInput:
        if self.input is None:
            raise StateError(f"sandbox {self.id} takes no input: make it with tty or "
                             "interactive, and start it")
        return self.input

    def _raise_start_error(self) -> None:
        assert self._monitor is not None
        if self._monitor.start_error is not None:
            self._monitor.join()
            self.state = "failed"
            raise SetupError.from_report(self._monitor.start_error)

    def _read_stats(self) -> None:
        """The cgroup's usage, read as soon as the command has exited.

        Its init reports the exit before it exits itself, and the kernel
        then takes a millisecond or two to dismantle the namespaces: the
        parent reads the counters meanwhile. Nothing in the cgroup runs any
        more but the exiting init. Read again at the end if this failed.
        """
        if self.cgroup is not None:
            try:
                self._stats = self.cgroup.stats()
            except SandboxError:
                pass

    def _kill_all(self) -> None:
        """Freeze and kill the whole cgroup, then the init (whole pid namespace)."""
        if self.cgroup is not None:
            try:
                self.cgroup.kill()
            except SandboxError:
                pass
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)

    def _end_process(self) -> None:
        assert self.process is not None
        if self._monitor is not None and not self._monitor.done.is_set():
            self._monitor.kill()
            if self._monitor.running_in_background:
                self._monitor.join()
            else:
                self._monitor.run_here()  # started without a thread and never waited for
        self.process.send_signal(signal.SIGKILL)
        self.process.reap()
        self.process.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the command (through its init); SIGKILL ends everything."""
        if self.process is None or self._monitor is None:
            raise StateError(f"sandbox {self.id} is not running")
        if sig == signal.SIGKILL:
            self._monitor.kill()
        else:
            self.process.send_signal(sig)

    def wait(self, timeout: float | None = None) -> Result:
        """Block until the command has ended and the container is gone."""
        if self._result is not None:
            return self._result
        if self._monitor is None:
            raise StateError(f"sandbox {self.id} was not started")
        if not self._monitor.running_in_background:
            self._monitor.run_here()
            self._raise_start_error()
        if not self._monitor.join(timeout):
            raise TimeoutError(f"sandbox {self.id} still running after {timeout}s")
        self._result = self._make_result()
        self.state = "exited"
        if self._monitor.sink_error is not None:
            error = self._monitor.sink_error
            raise SandboxError(f"output handler failed: {type(error).__name__}: {error}; "
                               "the sandbox was killed") from self._monitor.sink_error
        return self._result

    def _make_result(self) -> Result:
        mon = self._monitor
        assert mon is not None
        stats = self._stats
        if stats is None and self.cgroup is not None:
            stats = self.cgroup.stats()
        killed_by_limit = mon.timed_out or mon.idle_timed_out
        if mon.exit_status is not None and not (killed_by_limit and os.WIFSIGNALED(mon.exit_status)):
            code = os.waitstatus_to_exitcode(mon.exit_status)
        else:
            code = -signal.SIGKILL
        sig = -code if code < 0 else None
        started = mon.command_started_at or self._created_at
        ended = mon.ended_at or time.time()
        limits = self.spec.limits
        return Result(
            id=self.id, exit_code=128 + sig if sig else code, signal=sig,
            started_at=started, ended_at=ended, duration=max(ended - started, 0.0),
            stdout=self._memory.data("stdout"), stderr=self._memory.data("stderr"),
            timed_out=mon.timed_out, idle_timed_out=mon.idle_timed_out,
            oom_killed=bool(stats and stats.oom_kills),
            output_truncated=mon.limiter.truncated, output_killed=mon.output_killed,
            removed=self._removed_by_another(code),
            stdout_bytes=mon.limiter.total["stdout"], stderr_bytes=mon.limiter.total["stderr"],
            peak_memory=stats.peak_memory if stats else None,
            cpu_time=stats.cpu_total if stats else None,
            cpu_user=stats.cpu_user if stats else None,
            cpu_system=stats.cpu_system if stats else None,
            pids_peak=stats.pids_peak if stats else None,
            pids_limited=bool(stats and stats.pids_limited),
            setup_time=started - self._created_at if mon.command_started_at else None,
            limits={"memory": limits.memory, "timeout": limits.timeout, "output": limits.output,
                    "pids": limits.pids, "cpus": limits.cpus, "disk": limits.disk,
                    "idle_timeout": limits.idle_timeout},
        )

    def _removed_by_another(self, code: int) -> bool:
        """True when `sandbox rm -f` ended it: its marker is there, or the state dir is gone."""
        if code != -signal.SIGKILL and code != 128 + signal.SIGKILL:
            return False
        return self.dir.removed_by_another() or not self.dir.path.exists()

    def destroy(self) -> None:
        """Undo everything create() and start() did, in reverse; idempotent."""
        errors = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except BaseException as exc:
                errors.append((what, exc))
        if self.state not in ("exited", "failed"):
            self.state = "destroyed"
        if errors:
            what, first = errors[0]
            raise SandboxError(f"teardown of sandbox {self.id} failed at {what}: {first}") from first

    def run(self, *, on_started: Callable[[Sandbox], None] | None = None,
            on_exited: Callable[[Sandbox], None] | None = None,
            stop: StopHook | None = None) -> Result:
        """Start (unless started), wait for the end, tear down, whatever happens: the Result.

        The sandbox is watched from the calling thread (no monitor thread).
        Hooks, for what callers add to the one lifecycle:

        - ``on_started(sandbox)``: the command runs;
        - ``on_exited(sandbox)``: it has ended, before the teardown;
        - ``stop(stop_now)``: a context manager, entered before the sandbox
          is made and left after its end, that calls ``stop_now()`` when the
          caller wants the sandbox ended (a signal, a job's cancel): it is
          killed at once, or as soon as it has started.
        """
        stopper = _Stopper(self)
        with stop(stopper) if stop is not None else contextlib.nullcontext():
            try:  # the teardown too runs under the stop hook: a signal then cannot cut it short
                if self.state == "new":
                    self.create()
                if self.state == "created":
                    self.start(background=False)
                stopper.started()
                if on_started is not None:
                    on_started(self)
                result = self.wait()
                if on_exited is not None:
                    on_exited(self)
                return result
            finally:
                self.destroy()

    # -- processes started in it -------------------------------------------------

    def exec(self, command: tuple[str, ...] | list[str], *, env: dict[str, str] | None = None,
             workdir: str | None = None, user: str | None = None, tty: bool = False,
             tty_size: tuple[int, int] = DEFAULT_TTY_SIZE, interactive: bool = False,
             on_output: OutputCallback | None = None) -> Exec:
        """A new process in this running sandbox (``execute.Exec``; ``start`` or ``run``
        it): its namespaces, cgroup, limits, user and capabilities, with ``env``
        added and ``workdir``, ``user`` and a terminal as asked; it dies with the sandbox."""
        from .execute import Exec, running_init, user_ids

        if self._record is None or self.state != "running":
            raise StateError(f"sandbox {self.id} is not running")
        init = running_init(self.dir, self._record)
        plan = exec_plan(self.id, self._record.entry, init, command, env=env, workdir=workdir,
                         user=user_ids(user, self._record.image_id or self.spec.image) if user else None,
                         tty_size=check_tty_size(tty_size) if tty else None)
        return Exec(plan, on_output=on_output, interactive=interactive or tty,
                    output_limit=self.spec.limits.output)

    def spawn(self, command: tuple[str, ...] | list[str], *, env: dict[str, str] | None = None,
              workdir: str | None = None, user: str | None = None,
              tty_size: tuple[int, int] = DEFAULT_TTY_SIZE) -> Spawned:
        """Start ``command`` in this running sandbox on a terminal of its own, driven with
        ``send``/``expect`` (``spawned.Spawned``); close it (or use ``with``) when done."""
        from .spawned import Spawned

        spawned = Spawned()
        process = self.exec(command, env=env, workdir=workdir, user=user, tty=True,
                            tty_size=tty_size, on_output=spawned.feed)
        spawned.attach(process, lambda: process.done, process.close)
        process.start()
        return spawned

    # -- conveniences ----------------------------------------------------------

    def ended(self) -> bool:
        """True once the command has ended and its output has all been read."""
        return self._monitor is not None and self._monitor.done.is_set()

    @property
    def trace(self) -> list[tuple[str, float]]:
        """With SANDBOX_TRACE=1: each setup step and its milliseconds since spawn."""
        steps = (self._monitor.trace if self._monitor else None) or []
        return [(step, (t - self._spawned_at) * 1000) for step, t in steps]

    @property
    def stdout(self) -> bytes:
        return self._memory.data("stdout")

    @property
    def stderr(self) -> bytes:
        return self._memory.data("stderr")


def run(spec: SandboxSpec, *, on_output: OutputCallback | None = None,
        sinks: Iterable[Sink] = (), log_file: bool = True) -> Result:
    """Create a sandbox, run its command to the end, tear it down; the Result."""
    return Sandbox(spec, on_output=on_output, sinks=sinks, log_file=log_file).run()


def spawn(spec: SandboxSpec, *, tty_size: tuple[int, int] = DEFAULT_TTY_SIZE,
          log_file: bool = False) -> Spawned:
    """A new sandbox whose command runs on a terminal, driven with ``send``/``expect``
    (``spawned.Spawned``); closing it (or leaving its ``with``) tears the sandbox down."""
    from .spawned import Spawned

    spawned = Spawned()
    sandbox = Sandbox(spec.with_changes(tty=True, interactive=True), on_output=spawned.feed,
                      tty_size=tty_size, log_file=log_file)
    sandbox.__enter__()
    spawned.attach(sandbox, sandbox.ended, sandbox.destroy)
    return spawned


def dry_run(spec: SandboxSpec, tty_size: tuple[int, int] = DEFAULT_TTY_SIZE) -> Plan:
    """The plan a run of ``spec`` would perform, with the id ``<id>``; nothing is made.

    The same steps a run performs (cgroup and network included), named the
    same way; only what a run reserves (its id, a network address) reads as
    a placeholder.
    """
    image = images.get(spec.image)
    ids = resolve_ids(spec, image)
    hierarchy = host_cgroups()
    sandbox_id = "<id>"
    network = None
    if spec.network.mode not in ("none", "host"):
        from . import network as network_mod

        network = network_mod.preview(spec, sandbox_id)
    userns = None
    if spec.userns == "auto":
        from .security import subids

        userns = subids.preview()
    return _plan(spec, image, sandbox_id, str(state.sandboxes_dir() / sandbox_id),
                 hierarchy.name(sandbox_id, spec.limits, spec.delegate_cgroup), hierarchy, network,
                 ids, userns, tty_size)


def _plan(spec: SandboxSpec, image: images.Image, sandbox_id: str, state_path: str,
          cgroup: Cgroup, hierarchy: CgroupHierarchy, network: NetworkSteps | None,
          ids: tuple[int, int, tuple[int, ...], str], userns: UserNamespace | None,
          tty_size: tuple[int, int] = DEFAULT_TTY_SIZE) -> Plan:
    """The plan of one sandbox, for a run and for a dry run alike."""
    return build_plan(spec, image, sandbox_id, state_path, cgroup,
                      device_cgroup=hierarchy.controls_devices, network=network, ids=ids,
                      trace=os.environ.get("SANDBOX_TRACE") == "1", userns=userns,
                      tty_size=tty_size if spec.tty else None)


class _Stopper:
    """What ``Sandbox.run`` hands a stop hook: ends the sandbox now, or once it has started."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.asked = False

    def __call__(self) -> None:
        self.asked = True
        try:
            self.sandbox.kill()
        except (SandboxError, OSError):
            pass  # not started yet (killed as soon as it is), or already torn down

    def started(self) -> None:
        if self.asked:
            self.sandbox.kill()
