"""The Sandbox: create, start, wait, destroy; and ``run(spec) -> Result``.

create() and start() record each thing they make on an undo stack as soon
as it exists; destroy() unwinds that stack in reverse, also after errors, so
it undoes exactly what was done. The record on disk (one write, before the
cgroup is made and anything runs) names the cgroup and network reservations,
so `sandbox gc` can find what a crash left behind; a crash before the record
is written leaves only a state dir named by the sandbox id, which gc also
finds.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable, Iterable

from . import images, state
from .cgroups import Cgroup, CgroupStats, host_cgroups
from .errors import SandboxError, SetupError, StateError
from .hostlimits import check as check_host_limits
from .logs import CallbackSink, FileSink, LogRecord, MemorySink, OutputLimiter, Sink
from .monitor import Monitor
from .planner import build_plan, command_of, resolve_ids
from .process.spawner import ContainerProcess, spawn
from .result import Result
from .spec import SandboxSpec

OutputCallback = Callable[[LogRecord], None]


class Sandbox:
    """One isolated container. Use as a context manager, or call the verbs.

    ``on_output`` is called with each LogRecord as it is read, from the
    sandbox's monitor thread. An exception raised by it kills the sandbox
    and is raised again by wait().

    ``target``: a callable of this process to run inside the sandbox instead
    of ``spec.command`` (which is then only a label); its return value is the
    exit status. The caller must be single-threaded (this process is forked).
    """

    def __init__(self, spec: SandboxSpec, *, on_output: OutputCallback | None = None,
                 sinks: Iterable[Sink] = (), log_file: bool = True,
                 stdin_fd: int | None = None, target: Callable[[], int | None] | None = None) -> None:
        self.spec = spec
        self._target = target
        self._stdin_fd = stdin_fd
        self.id = state.new_id()
        self.dir = state.SandboxDir(self.id)
        self.state = "new"
        self.cgroup: Cgroup | None = None
        self.network = None
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
        by start(): a spare can then mount while it is being made.
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
            self.dir.create()
            self._push("state dir", self.dir.remove)
            if self.spec.name:
                state.claim_name(self.spec.name, self.id)
                self._push("name", lambda: state.release_name(self.spec.name, self.id))
            self._record = state.new_record(self.id, self.spec, image_id=image.id)
            self.cgroup = hierarchy.plan(self.id, self.spec.limits)  # made by start()
            self._push("cgroup parents", self.cgroup.release_parents)  # if never made
            self._record.cgroups = list(self.cgroup.paths)
            network_pre_ops, network_ops, network_binds = self._attach_network()
            self.dir.write_record(self._record)
        self.plan = build_plan(self.spec, image, self.id, str(self.dir.path), self.cgroup,
                               device_cgroup=hierarchy.version == 1, network_ops=network_ops,
                               network_pre_ops=network_pre_ops, network_binds=network_binds,
                               ids=ids)
        if self._log_file:
            sink = FileSink(self.dir.log_path)
            self._sinks.append(sink)
            self._push("log file", sink.close)
        self.state = "created"

    def _attach_network(self) -> tuple[tuple, tuple, tuple]:
        """Seam for network modes beyond ``none``/``host`` (see sandbox.network).

        ``network.attach`` reserves what the sandbox needs (an address, names),
        records it in the record's ``network`` dict (so gc can undo it) and
        returns an object with ``pre_ops`` (run before unshare, in the host's
        namespaces), ``ops`` (run inside after pivot_root), ``binds`` (host
        files shown read-only inside) and ``detach()``.
        """
        if self.spec.network.mode in ("none", "host"):
            return (), (), ()
        from . import network

        self.network = network.attach(self.spec, self.id, self._record)
        self._push("network", self.network.detach)
        return tuple(self.network.pre_ops), tuple(self.network.ops), tuple(self.network.binds)

    def _make_cgroup(self) -> None:
        """Make the cgroup the plan names, limits written (spawn calls it: see there)."""
        assert self.cgroup is not None
        self.cgroup.make(self.spec.limits)
        self._push("cgroup", self._remove_cgroup)

    def _remove_cgroup(self) -> None:
        assert self.cgroup is not None
        self.cgroup.remove()

    def start(self, *, background: bool = True) -> None:
        """Start the command; raises SetupError if the container could not be made.

        With ``background=False`` no monitor thread is started: wait() then
        runs the monitor loop in the calling thread (what run() does: one
        thread fewer, and a single-threaded caller stays single-threaded).
        """
        if self.state != "created":
            raise StateError(f"sandbox {self.id} cannot start from state {self.state}")
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if self.spec.stdin is not None:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        elif self._stdin_fd is not None:
            in_r, in_w = os.dup(self._stdin_fd), -1
        else:
            in_r, in_w = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC), -1
        try:
            self._spawned_at = time.perf_counter()
            # spawn closes the child's ends here, also on error
            self.process = spawn(self.plan, (status_w, in_r, out_w, err_w), self._target,
                                 prepare=self._make_cgroup)
        except BaseException:
            for fd in (status_r, out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
            raise
        self._push("process", self._end_process)
        self.state = "running"
        limits = self.spec.limits
        self._monitor = Monitor(
            self.process, status_r, out_r, err_r, self._sinks, OutputLimiter(limits.output),
            kill=self._kill_all, sample=self.cgroup.sample if self.cgroup else lambda: None,
            timeout=limits.timeout,
            stdin=(in_w, bytes(self.spec.stdin)) if self.spec.stdin is not None else None,
            on_exit=self._read_stats,
        )
        if background:
            self._monitor.start()
            self._monitor.wait_started()
            self._raise_start_error()

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
        if mon.exit_status is not None and not (mon.timed_out and os.WIFSIGNALED(mon.exit_status)):
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
            timed_out=mon.timed_out, oom_killed=bool(stats and stats.oom_kills),
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
                    "pids": limits.pids, "cpus": limits.cpus, "disk": limits.disk},
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
            except BaseException as exc:  # noqa: BLE001 - keep undoing, report after
                errors.append((what, exc))
        if self.state not in ("exited", "failed"):
            self.state = "destroyed"
        if errors:
            what, exc = errors[0]
            raise SandboxError(f"teardown of sandbox {self.id} failed at {what}: {exc}") from exc

    # -- conveniences ----------------------------------------------------------

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
    sandbox = Sandbox(spec, on_output=on_output, sinks=sinks, log_file=log_file)
    try:
        sandbox.create()
        sandbox.start(background=False)
        return sandbox.wait()
    finally:
        sandbox.destroy()
