"""A job's services: long-lived sandboxes on the job's network, up before the first step.

Each service is a sandbox the executor holds for the job's duration: a thread
of its own creates it, starts it (with its monitor thread: ``start`` returns
only once the command really runs), waits for its end and destroys it in a
``finally``; the teardown kills it. They
start in dependency order, each ready before the next starts; steps reach
them by name (the network's hosts file). Their output goes to the job's log
as ``out`` events carrying the service's name, which the console folds
(`sandbox jobs logs ID --service NAME` shows it); their state changes are
``service`` events. They are torn down after the last step, in reverse
order, whatever happened: a step failing, the job's cancel, an exception.

Readiness: ``ready`` is a shell command run inside the service until it
succeeds. The service's command is wrapped (``WRAPPER``): the shell starts
it in the background, runs the check (every 10 ms, then 50 ms), and on success touches a
file in a directory of the job's own bound into the service, which the
executor watches; the wrapper then waits for the service and exits with its
status. ``ready_port``: the executor connects to the service's address. A
service that is not ready within ``ready_timeout``, or ends first, fails
the job as `error` with its last lines of output.

Statuses (``ServiceResult.status``): ``ready`` (ready, and ran until the
teardown), ``exited`` (ended on its own while the steps ran: reported, the
job goes on), ``not_ready`` (its check never succeeded in time), ``failed``
(could not start, or ended before it was ready), ``skipped`` (not started:
one before it failed, or the job was cancelled).
"""

from __future__ import annotations

import collections
import socket
import threading
import time
from pathlib import Path

from sandbox import Limits, Mount, NetworkSpec, Result, Sandbox, SandboxError, SandboxSpec

from .cancellation import Cancel
from .errors import JobError
from .events import JobLog
from .model import JobSpec, ServiceSpec
from .result import CANCELLED, ERROR, TIMED_OUT, ServiceResult
from .secrets import Secrets

#: Where the readiness marker directory is bound inside a service with ``ready``.
READY_DIR = "/.sandbox-service"
TAIL_LINES = 20
POLL = 0.005
#: The service's command in the background, its check every 10 ms for its first
#: half second, then every 50 ms; the service's own exit status in the end. A check
#: writes check.new, renamed to check.out once it has failed: check.out always holds
#: what the last finished check said, never one the timeout found half run.
WRAPPER = f"""ready=$1; shift
"$@" &
service=$!
trap 'kill -TERM "$service" 2>/dev/null' TERM INT
tries=0
while kill -0 "$service" 2>/dev/null; do
  if sh -c "$ready" >{READY_DIR}/check.new 2>&1; then : >{READY_DIR}/ready; break; fi
  mv -f {READY_DIR}/check.new {READY_DIR}/check.out 2>/dev/null
  tries=$((tries + 1))
  if [ "$tries" -lt 50 ]; then sleep 0.01; else sleep 0.05; fi
done
wait "$service"
"""


class ServiceFailed(JobError):
    """A service did not come up: the job ends with ``status`` (error, cancelled when the
    job was cancelled meanwhile, timed_out when the job's own timeout ran out) and this
    message."""

    def __init__(self, message: str, *, status: str = ERROR) -> None:
        super().__init__(message)
        self.status = status


class Service:
    """One running service: its sandbox, the thread that runs it, what it said last."""

    def __init__(self, spec: ServiceSpec, sandbox_spec: SandboxSpec, marker: Path | None,
                 log: JobLog) -> None:
        self.spec = spec
        self.marker = marker
        self.log = log
        self.sandbox = Sandbox(sandbox_spec, on_output=self._output, log_file=False)
        self.thread = threading.Thread(target=self._run, name=f"service-{spec.name}", daemon=True)
        self.started = threading.Event()
        self.ended = threading.Event()
        self.tail: collections.deque[bytes] = collections.deque(maxlen=TAIL_LINES)
        self.result: Result | None = None
        self.error: str | None = None
        self.ready_in: float | None = None
        self.failure: tuple[str, str] | None = None  # (status, why) when it did not come up
        self.stopping = False
        self.died = False  # it ended on its own, not by the teardown
        self._lock = threading.Lock()

    def _output(self, record) -> None:
        self.log.output(record.stream, record.data, service=self.spec.name)
        lines = record.data.split(b"\n")
        if self.tail and not self.tail[-1].endswith(b"\n"):
            self.tail[-1] += lines.pop(0)
        self.tail.extend(line + b"\n" for line in lines[:-1])
        if lines[-1]:
            self.tail.append(lines[-1])

    def _run(self) -> None:
        sandbox = self.sandbox
        try:
            try:
                sandbox.create()
                sandbox.start()  # its monitor's thread: returns once the command runs, or raises
                with self._lock:
                    self.started.set()
                    if self.stopping:
                        sandbox.kill()
                self.result = sandbox.wait()
            finally:
                sandbox.destroy()
        except SandboxError as exc:
            self.error = str(exc)
        except BaseException as exc:  # reported as the service's failure, never lost
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.log.end_output(service=self.spec.name)
            self.died = not self.stopping
            self.ended.set()
            if self.ready_in is not None and self.died:
                self.log.emit("service", service=self.spec.name, state="exited",
                              message=f"({self._how_it_ended()}) while the job ran")

    def stop(self) -> None:
        """End it (SIGKILL to the whole sandbox) and wait until it is torn down."""
        with self._lock:
            self.stopping = True
            if self.started.is_set() and not self.ended.is_set():
                try:
                    self.sandbox.kill()
                except (SandboxError, OSError):
                    pass  # it has just ended
        if self.thread.is_alive():
            self.thread.join()

    def is_ready(self) -> bool:
        if self.spec.ready is not None:
            return self.marker is not None and (self.marker / "ready").exists()
        if self.spec.ready_port is not None:
            return _accepts(self.sandbox.network.address if self.sandbox.network else None,
                            self.spec.ready_port)
        return True

    def last_lines(self) -> str:
        """Its last lines of output, and what its readiness check said last."""
        text = b"".join(self.tail).decode("utf-8", "replace").rstrip("\n")
        shown = "\n".join(f"    {line}" for line in text.splitlines()) or "    (no output)"
        check = self.marker / "check.out" if self.marker is not None else None
        if check is not None and check.exists():
            said = check.read_bytes()[-2000:].decode("utf-8", "replace").strip() or "(nothing)"
            shown += f"\n  its last check ({self.spec.ready}) said: {said}"
        return shown

    def _how_it_ended(self) -> str:
        if self.error is not None:
            return self.error
        if self.result is None:
            return "ended"
        return f"exit {self.result.exit_code}"

    def outcome(self) -> ServiceResult:
        """Its ServiceResult, once it has ended."""
        code = self.result.exit_code if self.result is not None else None
        if self.ready_in is None:
            status, why = self.failure or ("failed", self.error or "stopped before it was ready")
            return ServiceResult(self.spec.name, status, exit_code=code, message=why)
        if self.died:
            return ServiceResult(self.spec.name, "exited", self.ready_in, code,
                                 f"ended on its own ({self._how_it_ended()}) while the job ran")
        return ServiceResult(self.spec.name, "ready", self.ready_in)


def _accepts(address: str | None, port: int) -> bool:
    if not address:
        return False
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


class Services:
    """A job's services, started in order by ``start`` and all ended by ``stop``.

    A context manager: leaving it stops every service that was started.
    """

    def __init__(self, job: JobSpec, job_id: str, network: str | None, workdir: Path,
                 log: JobLog, secrets: Secrets, cancel: Cancel, deadline: float | None = None) -> None:
        """``deadline``: when the job's own timeout runs out (time.monotonic), if it has one."""
        self.job, self.job_id, self.network = job, job_id, network
        self.workdir, self.log, self.secrets, self.cancel = workdir, log, secrets, cancel
        self.deadline = deadline
        self.running: list[Service] = []
        self.results: list[ServiceResult] = []

    def __enter__(self) -> "Services":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start every service, each ready before the next; ServiceFailed if one is not."""
        for spec in self.job.services:
            if self.cancel.is_set():
                raise ServiceFailed("cancelled while the services started", status=CANCELLED)
            service = self._make(spec)
            self.running.append(service)
            service.thread.start()
            self._wait_ready(service)

    def _make(self, spec: ServiceSpec) -> Service:
        marker = None
        if spec.ready is not None:
            self.workdir.mkdir(mode=0o700, exist_ok=True)
            marker = self.workdir / spec.name
            marker.mkdir()
            marker.chmod(0o777)  # the service's user writes it; the job's directory is 0700
        try:
            sandbox_spec = self._sandbox_spec(spec, marker)
        except (SandboxError, JobError) as exc:
            raise ServiceFailed(f"service {spec.name!r} could not start: {exc}") from exc
        return Service(spec, sandbox_spec, marker, self.log)

    def _sandbox_spec(self, spec: ServiceSpec, marker: Path | None) -> SandboxSpec:
        assert self.network is not None
        image = spec.image or self.job.image
        command = spec.command
        if marker is not None:
            command = ("sh", "-c", WRAPPER, "sandbox-service", str(spec.ready), *_argv(spec, image))
        env = {"CI": "true", "SANDBOX_JOB_ID": self.job_id, "SANDBOX_SERVICE": spec.name,
               **self.job.params, **spec.env, **self.secrets.for_names(spec.secrets)}
        mounts = (Mount(str(marker), READY_DIR, read_only=False),) if marker is not None else ()
        return SandboxSpec(image=image, command=command, env=env, hostname=spec.name,
                           network=NetworkSpec(self.network, alias=spec.name, egress=spec.egress,
                                               allow_host_ports=self.job.allow_host_ports),
                           limits=Limits(**spec.limits), mounts=mounts,
                           seccomp=self.job.seccomp, userns=self.job.userns)

    def _wait_ready(self, service: Service) -> None:
        spec = service.spec
        t0 = time.monotonic()
        deadline = t0 + spec.ready_timeout
        while True:
            if service.ended.wait(POLL):
                self._fail(service, "failed", f"ended before it was ready "
                           f"({service._how_it_ended()})")
            if service.started.is_set() and service.is_ready():
                service.ready_in = time.monotonic() - t0
                self.log.emit("service", service=spec.name, state="ready",
                              message=f"in {service.ready_in:.2f}s")
                return
            if self.cancel.is_set():
                service.failure = ("skipped", "cancelled while it started")
                raise ServiceFailed(f"cancelled while service {spec.name!r} started", status=CANCELLED)
            if self.deadline is not None and time.monotonic() > self.deadline:
                service.failure = ("not_ready", "the job's timeout ran out while it started")
                raise ServiceFailed(f"the job's timeout ran out while service {spec.name!r} "
                                    "started", status=TIMED_OUT)
            if time.monotonic() > deadline:
                check = f"ready: {spec.ready}" if spec.ready else f"ready_port: {spec.ready_port}"
                self._fail(service, "not_ready", f"was not ready after {spec.ready_timeout:g}s "
                           f"({check})")

    def _fail(self, service: Service, status: str, why: str) -> None:
        service.failure = (status, why)
        self.log.emit("service", service=service.spec.name, state=status, message=why)
        raise ServiceFailed(f"service {service.spec.name!r} {why}; its last lines:\n"
                            f"{service.last_lines()}")

    def stop(self) -> list[ServiceResult]:
        """End every started service, last first; their results (skipped ones included)."""
        while self.running:
            service = self.running.pop()
            service.stop()
            self.results.insert(0, service.outcome())
        started = {r.name for r in self.results}
        self.results += [ServiceResult(s.name, "skipped") for s in self.job.services
                         if s.name not in started]
        return self.results


def _argv(spec: ServiceSpec, image: str) -> tuple[str, ...]:
    """What the service runs: its command, else its image's CMD (an ENTRYPOINT cannot be wrapped)."""
    from sandbox import get_image

    config = get_image(image).config
    if config.entrypoint:
        raise JobError(f"its image {image} has an ENTRYPOINT, which a `ready` check cannot wrap: "
                       "use ready_port instead")
    argv = spec.command or config.cmd
    if not argv:
        raise JobError(f"no command, and its image {image} has no CMD")
    return tuple(argv)

