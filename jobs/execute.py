"""execute_job(): run a job's steps in sandboxes and judge the result.

This is the one function that runs jobs. The RQ worker, the embedded
`sandbox submit` and the tests all call it; it knows nothing of Redis or RQ.
What it needs from its caller arrives as plain arguments: a JobLog to write
events to, a Cancel that asks it to stop, the packed workspace when the job
came through the queue, and a function that stores artifacts.

Every step runs in its own sandbox with the job's limits, sharing one
workspace directory bind-mounted at /workspace. The sandbox is watched from
this thread (no monitor thread per step). Each sandbox is ended in every
path: normal exit, its timeout, cancellation (the Cancel kills it at once),
or an exception raised in this thread (RQ's own timeout, a signal): it is
destroyed in a ``finally``.

Around the steps, in this order, each undone in reverse whatever happens:
the cache is restored (``jobs.cache``), the job's own network is made when
a step or service needs one (``jobs.jobnet``), the services are started and
awaited (``jobs.services``); after the steps the services are torn down,
the network removed, and, when the job passed, a cache that missed saved.
Secrets reach only the steps and services that list them, and the result
and the log show them masked (``jobs.secrets``).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sandbox import Limits, LogRecord, Mount, NetworkSpec, Result, Sandbox, SandboxError, SandboxSpec, host_caps

from . import artifacts as artifacts_mod
from .build import BuildFailed, build_job_image
from .cache import JobCache
from .cancellation import Cancel
from .ci_keys import needs_network, step_network
from .collection import StoreArtifacts, budget_for, collect
from .errors import JobError
from .events import JobLog
from .jobnet import JobNetwork
from .junit import JUnitReport
from .model import JobSpec, Step
from .result import CANCELLED, ERROR, FAILED, PASSED, TIMED_OUT, JobResult, StepResult
from .secrets import Secrets
from .services import ServiceFailed, Services
from .workspace import JobDir


def new_job_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class StepSetup:
    """What every step of a job gets besides the job's spec: its network, its cache's
    mounts, the secrets (each step takes those it lists)."""

    network: str | None = None
    mounts: tuple[Mount, ...] = ()
    secrets: Secrets = dataclasses.field(default_factory=Secrets)
    image: str | None = None  # the image the job built first (its `build` key), by id


def execute_job(spec: JobSpec, *, job_id: str | None = None, log: JobLog | None = None,
                cancel: Cancel | None = None, packed_workspace: bytes | None = None,
                store_artifacts: StoreArtifacts = artifacts_mod.save_local,
                worker: str | None = None, secrets: Mapping[str, str] | None = None) -> JobResult:
    """Run every step of ``spec``; the JobResult. Raises only on bugs and signals.

    ``secrets``: the values given at submit time; from here on ``log``
    masks them, as does the result.
    """
    job_id = job_id or new_job_id()
    log = log or JobLog()
    log.secrets = masks = Secrets(secrets)
    cancel = cancel or Cancel()
    started = time.time()
    base: dict[str, Any] = dict(id=job_id, name=spec.name, started_at=started, worker=worker,
                                matrix=dict(spec.matrix))
    with JobDir(job_id) as jdir:
        try:
            _fill_workspace(jdir, spec, packed_workspace)
            masks.for_names(spec.secret_names)
            image = _build(spec, jdir, log, queued=packed_workspace is not None)
            cache = _restore_cache(spec, jdir, log)
        except BuildFailed as exc:
            return _masked(JobResult(**base, status=FAILED if exc.failed else ERROR,
                                     ended_at=time.time(), error=str(exc)), masks)
        except JobError as exc:
            return _masked(JobResult(**base, status=ERROR, ended_at=time.time(), error=str(exc)), masks)
        for note in host_caps(Limits(**spec.limits)):
            log.emit("note", data=f"limits: {note}".encode())
        fields = _run_with_services(spec, job_id, jdir, log, cancel, started, masks, cache,
                                    _masking_store(store_artifacts, masks), image)
        result = JobResult(**base, ended_at=time.time(), **fields)
        if cache is not None and result.status == PASSED:
            cache.save()
    return _masked(result, masks)


def _build(spec: JobSpec, jdir: JobDir, log: JobLog, *, queued: bool) -> str | None:
    """The id of the image the job builds first, or None when it builds none."""
    if spec.build is None:
        return None
    limits = Limits(**{**spec.limits, "timeout": spec.timeout})
    return build_job_image(spec.build, source_workspace=spec.workspace,
                           workspace=str(jdir.workspace), limits=limits, log=log, queued=queued)


def _restore_cache(spec: JobSpec, jdir: JobDir, log: JobLog) -> JobCache | None:
    if spec.cache is None:
        return None
    cache = JobCache(spec.cache, jdir.path, log)
    cache.restore(str(jdir.workspace), spec.env)
    return cache


def _run_with_services(spec: JobSpec, job_id: str, jdir: JobDir, log: JobLog, cancel: Cancel,
                       started: float, masks: Secrets, cache: JobCache | None,
                       store: StoreArtifacts, image: str | None = None) -> dict[str, Any]:
    """The job's network and services around its steps; the JobResult's fields that follow."""
    failed: ServiceFailed | None = None
    try:
        with JobNetwork(job_id, needs_network(spec), log) as net, \
                Services(spec, job_id, net.name, jdir.path / "services", log, masks, cancel,
                         _deadline(spec, started)) as services:
            try:
                services.start()
            except ServiceFailed as exc:
                failed = exc
            else:
                setup = StepSetup(net.name, cache.mounts() if cache else (), masks, image)
                steps = _run_steps(spec, job_id, jdir, log, cancel, started, setup)
    except JobError as exc:  # the network could not be made
        return dict(status=ERROR, error=str(exc))
    if failed is not None:
        skipped = "cancelled" if failed.status == CANCELLED else "skipped"
        return dict(status=failed.status, error=str(failed), services=tuple(services.results),
                    steps=tuple(StepResult(s.name, skipped) for s in spec.steps))
    done = collect(spec, job_id, str(jdir.workspace), log, store, budget_for(spec, started, cancel))
    status, error = verdict(spec, steps, done.junit, cancel.is_set(), done.stopped)
    return dict(status=status, error=error, steps=tuple(steps), junit=done.junit,
                artifacts=tuple(done.artifacts), services=tuple(services.results))


def _deadline(spec: JobSpec, started: float) -> float | None:
    """When the job's timeout runs out, on the monotonic clock (``started``: time.time())."""
    if not spec.timeout:
        return None
    return time.monotonic() + spec.timeout - (time.time() - started)


def _masking_store(store: StoreArtifacts, masks: Secrets) -> StoreArtifacts:
    """``store`` given the artifacts with their names masked."""
    if not masks:
        return store

    def masked(job_id: str, items: list) -> object:
        return store(job_id, [(dataclasses.replace(art, path=masks.mask(art.path)), data)
                              for art, data in items])
    return masked


def _masked(result: JobResult, masks: Secrets) -> JobResult:
    """The result with every secret value in it (messages, JUnit, artifact names) masked."""
    if not masks:
        return result
    return JobResult.from_dict(masks.mask_tree(result.to_dict()))


def _fill_workspace(jdir: JobDir, spec: JobSpec, packed: bytes | None) -> None:
    if packed is not None:
        jdir.unpack(packed)
    elif spec.workspace:
        jdir.copy_from(spec.workspace)


def _run_steps(spec: JobSpec, job_id: str, jdir: JobDir, log: JobLog,
               cancel: Cancel, started: float, setup: StepSetup) -> list[StepResult]:
    results: list[StepResult] = []
    stopped = False
    for index, step in enumerate(spec.steps, 1):
        if stopped or cancel.is_set():
            results.append(StepResult(step.name, "cancelled" if cancel.is_set() else "skipped"))
            continue
        log.emit("step-start", step=step.name, run=step.run, index=index, count=len(spec.steps))
        res = _run_step(spec, step, job_id, jdir, log, cancel, started, setup)
        log.end_output(step=step.name)
        log.emit("step-end", step=step.name, status=res.status, exit_code=res.exit_code,
                 duration=f"{res.duration:.3f}", message=res.message, index=index, count=len(spec.steps))
        results.append(res)
        stopped = res.status != PASSED and not step.continue_on_error
    return results


def _run_step(spec: JobSpec, step: Step, job_id: str, jdir: JobDir, log: JobLog,
              cancel: Cancel, started: float, setup: StepSetup) -> StepResult:
    t0 = time.time()
    timeout = _step_timeout(spec, step, started)
    if timeout is not None and timeout <= 0:
        return StepResult(step.name, TIMED_OUT, message="the job's timeout ran out before this step")

    def on_output(rec: LogRecord) -> None:
        log.output(rec.stream, rec.data, step=step.name)

    try:
        sb_spec = _sandbox_spec(spec, step, job_id, str(jdir.workspace), timeout, setup)
        result, cancelled = _run_sandbox(sb_spec, on_output, cancel)
    except SandboxError as exc:
        return StepResult(step.name, ERROR, duration=time.time() - t0, message=str(exc))
    return _step_result(step, result, cancelled)


def _step_timeout(spec: JobSpec, step: Step, started: float) -> float | None:
    left = spec.timeout - (time.time() - started) if spec.timeout else None
    candidates = [t for t in (left, step.timeout) if t is not None]
    return min(candidates) if candidates else None


def _sandbox_spec(spec: JobSpec, step: Step, job_id: str, workspace: str,
                  timeout: float | None, setup: StepSetup | None = None) -> SandboxSpec:
    setup = setup or StepSetup()
    env = {"CI": "true", "SANDBOX_JOB_ID": job_id, "SANDBOX_STEP": step.name,
           "HOME": "/root", **spec.env, **step.env, **setup.secrets.for_names(step.secrets)}
    network, egress = step_network(spec, step)
    net = (NetworkSpec(setup.network, egress=egress, allow_host_ports=spec.allow_host_ports)
           if network == "bridge" and setup.network else NetworkSpec())
    return SandboxSpec(image=step.image or setup.image or spec.image, command=("sh", "-ec", step.run),
                       env=env,
                       workdir="/workspace", network=net,
                       mounts=(Mount(workspace, "/workspace", read_only=False), *setup.mounts),
                       limits=Limits(**{**spec.limits, "timeout": timeout}),
                       seccomp=spec.seccomp, userns=spec.userns, delegate_cgroup=spec.nested,
                       root_view=spec.nested)


def _run_sandbox(spec: SandboxSpec, on_output: Callable[[LogRecord], None],
                 cancel: Cancel) -> tuple[Result, bool]:
    """Run one sandbox to its end, watched from this thread; (result, cancelled)."""
    fired: list[bool] = []

    def stop(stop_now: Callable[[], None]) -> AbstractContextManager[None]:
        def fire() -> None:
            fired.append(True)
            stop_now()
        return cancel.watch(fire)

    result = Sandbox(spec, on_output=on_output, log_file=False).run(stop=stop)
    return result, bool(fired)


def _step_result(step: Step, result: Result, cancelled: bool) -> StepResult:
    if cancelled:
        status = CANCELLED
    elif result.timed_out:
        status = TIMED_OUT
    else:
        status = PASSED if result.exit_code == 0 else FAILED
    message = "cancelled" if cancelled else result.limit_message()
    return StepResult(step.name, status, exit_code=result.exit_code, duration=result.duration,
                      peak_memory=result.peak_memory, message=message, result=result.to_dict())


def verdict(spec: JobSpec, steps: list[StepResult], junit: JUnitReport | None,
            cancelled: bool, stopped: str | None = None) -> tuple[str, str | None]:
    """The job's status and, when not passed, one line saying why.

    ``stopped``: why collecting the reports and artifacts stopped early, if it did.
    """
    if cancelled:
        return CANCELLED, "cancelled on request"
    blocking = [s for s, st in zip(steps, spec.steps) if s.status not in (PASSED, "skipped")
                and not st.continue_on_error]
    if blocking:
        first = blocking[0]
        why = f"step {first.name!r} {first.status}" + (f": {first.message}" if first.message else "")
        return {TIMED_OUT: TIMED_OUT, ERROR: ERROR}.get(first.status, FAILED), why
    if stopped is not None:
        why = f"collecting the results stopped: {stopped}"
        return (TIMED_OUT if "timeout" in stopped else FAILED), why
    return _junit_verdict(spec, junit)


def _junit_verdict(spec: JobSpec, junit: JUnitReport | None) -> tuple[str, str | None]:
    if junit is None:
        return PASSED, None
    if junit.failures or junit.errors:
        return FAILED, f"JUnit: {junit.headline()}"
    unreadable = [p for p in junit.problems if "unreadable" in p]
    if unreadable:
        return FAILED, f"JUnit: {unreadable[0]}"
    if not spec.results.allow_empty and (junit.problems or not junit.tests):
        why = junit.problems[0] if junit.problems else "the reports hold no test cases"
        return FAILED, f"JUnit: {why} (set allow_empty = true under [results] to accept this)"
    return PASSED, None
