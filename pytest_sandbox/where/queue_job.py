"""A marked test as a job for the queue, and a finished job as that test's reports.

The job: the session's rootdir as its workspace (``/workspace`` on the
worker), one step that runs the inner pytest for the test's nodeid
(``pytest_sandbox.inner``) with its report file in the workspace, and that
file as the job's one artifact. The spec comes from the same sources as a
local sandbox's (options, marker, ``pytest_sandbox_spec`` hooks); what only
makes sense on this host (mounts, networks, hostname, user) is refused.

Back: the report file's lines are the test's events (reports, warnings,
...); a job that did not
end as passed or failed (timed_out, cancelled, error), or a test process
that died before it reported, becomes a failure of that test saying so.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import fields as dataclass_fields
from pathlib import PurePosixPath

from jobs import JobResult, JobSpec, ResultsSpec, Step
from sandbox import Result, SandboxSpec, SpecError

from .. import crash
from ..channel import REPORTS
from ..events import parse_events
from ..inner import ENV, inner_argv
from ..settings import base_fields, build_spec
from . import Outcome

WORKSPACE = "/workspace"
#: The report directory, relative to the workspace (made fresh by the step).
REPORT_DIR = ".pytest-sandbox-reports"
REPORT_FILE = f"{REPORT_DIR}/{REPORTS}"
#: The job's timeout when neither option nor marker sets one (a job file's default).
DEFAULT_TIMEOUT = 600.0
#: Limits a job carries (its timeout is the job's own).
JOB_LIMITS = ("memory", "cpus", "pids", "output", "disk")
STEP = "test"


def job_spec(config, item) -> JobSpec:
    """The job that runs ``item`` on a worker; SpecError for a spec a worker cannot honour."""
    command = inner_argv(item, python="python3", rootdir=WORKSPACE)
    spec = build_spec(config, item, base_fields(config, item, command))
    _refuse_host_only(spec)
    run = (f"rm -rf {REPORT_DIR} && mkdir {REPORT_DIR} && cd {shlex.quote(_invocation_dir(config))}"
           f" && exec {shlex.join(spec.command)}")
    return JobSpec(
        name=item.nodeid, steps=(Step(STEP, run),), image=spec.image,
        workspace=str(config.rootpath), timeout=spec.limits.timeout or DEFAULT_TIMEOUT,
        limits={k: getattr(spec.limits, k) for k in JOB_LIMITS},
        env={**_pytest_env(), **spec.env, ENV: f"{WORKSPACE}/{REPORT_DIR}",
             "PYTHONDONTWRITEBYTECODE": "1"},
        results=ResultsSpec(artifacts=(REPORT_FILE,)))


def _invocation_dir(config) -> str:
    """Where pytest was started, on the worker (the outer's paths are relative to it)."""
    try:
        return str(PurePosixPath(WORKSPACE, config.invocation_params.dir.relative_to(config.rootpath)))
    except ValueError:
        return WORKSPACE  # outside the rootdir, which is all that travels


def _pytest_env() -> dict[str, str]:
    """The environment variables of this session's arguments (PYTEST_ADDOPTS): the inner
    pytest is given its arguments, and these, to be the same."""
    return {k: os.environ[k] for k in ("PYTEST_ADDOPTS",) if k in os.environ}


def _refuse_host_only(spec: SandboxSpec) -> None:
    default = SandboxSpec(image=spec.image, command=spec.command)
    if spec.mounts:
        raise SpecError("mounts", [m.source for m in spec.mounts],
                        "none with --sandbox-redis (host paths do not exist on a worker)")
    if spec.network != default.network:
        raise SpecError("network", spec.network.mode, "none with --sandbox-redis "
                        "(a job's steps have no network)")
    for name in ("hostname", "user"):
        if getattr(spec, name) != getattr(default, name):
            raise SpecError(name, getattr(spec, name), f"{getattr(default, name)!r} (the "
                            "default) with --sandbox-redis (a job's steps cannot change it)")


def outcome(item, job: JobResult, report: bytes | None, output: dict[str, bytes]) -> Outcome:
    """The test's reports from its job's result, its report file and its step's output."""
    result = engine_result(job, output)
    if result is not None:
        item.config.hook.pytest_sandbox_result(item=item, result=result)
    moved = (WORKSPACE, str(item.config.rootpath))
    events = parse_events(item.config, report, moved=moved) if report else []
    return Outcome(crash.complete(item, events, result, reason=why(job, report)), result, "remote")


def why(job: JobResult, report: bytes | None) -> str | None:
    """One line when the job itself, not the test, ended things; None to let the Result speak."""
    where = f"remote job {job.id}" + (f" on worker {job.worker}" if job.worker else "")
    detail = f": {job.error}" if job.error else ""
    if job.status == "timed_out":
        return f"sandbox: {where} timed out{detail}"
    if job.status == "cancelled":
        return f"sandbox: {where} was cancelled{detail}"
    if job.status not in ("passed", "failed"):
        return f"sandbox: {where} ended in {job.status}{detail}"
    if report is None and any(a.path == REPORT_FILE and not a.stored for a in job.artifacts):
        return f"sandbox: {where}: the test's report file was over the job queue's artifact size cap"
    return None


def engine_result(job: JobResult, output: dict[str, bytes]) -> Result | None:
    """The sandbox Result of the job's step (from its JSON form), with the output seen in its log."""
    step = next((s for s in job.steps if s.name == STEP and s.result), None)
    if step is None or step.result is None:
        return None
    known = {f.name for f in dataclass_fields(Result)}
    data = {k: v for k, v in step.result.items() if k in known}
    data.update(stdout=output.get("stdout", b""), stderr=output.get("stderr", b""))
    return Result(**data)
