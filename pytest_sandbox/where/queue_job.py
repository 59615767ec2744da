"""Marked tests as a batch job for the queue, and each line the job writes as one test's outcome.

The job: the session's rootdir as its workspace (``/workspace`` on the
worker), one step that runs the batch's pytest (``pytest_sandbox.batch``)
on the batch's node ids, with the session's arguments. The sandbox spec of
a batch is its tests' (options, marker, ``pytest_sandbox_spec`` hooks: only
tests of the same spec share a batch); what only makes sense on this host
(mounts, networks, hostname, user) is refused. The batch's sandbox can make
sandboxes nested in it (``JobSpec.nested``): a cgroup subtree, where each test
gets a cgroup of its own with the test's limits (memory, swap, pids, cpus),
and a view of its root, over which each test gets a root filesystem of its
own (``pytest_sandbox.batch``); the batch's sandbox has the tests' limits
plus room for its own pytest (``BATCH_MEMORY``, ``BATCH_PIDS``), and the
disk and output limits, which its tests share. A test's ``timeout`` ends
that test alone, and the job's is the sum of its tests' with time to start
(``BATCH_START``). Under Docker's default profile the batch's sandbox gets the
``nested`` profile and each test stacks the default (``pytest_sandbox.batch``).

Back: each line the batch writes on its stdout is one test's events (its
reports, warnings, ...) and how its process ended, with its uncaptured
output: a test process that died before it reported (segfault,
``os.abort()``, its time limit, the memory limit) becomes a failure of that
test saying so. Tests the job never got to (it timed out, was cancelled,
ended in error, its worker died) fail saying why.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
from pathlib import PurePosixPath

from jobs import JobResult, JobSpec, ResultsSpec, Step
from sandbox import Result, SandboxSpec, SpecError

from .. import crash
from ..batch import FRAME, encode_limits, encode_node_ids
from ..events import parse_events
from ..inner import session_argv
from ..settings import base_fields, build_spec
from . import Outcome

WORKSPACE = "/workspace"
#: The reports' directory, relative to the workspace (made fresh by the step).
REPORT_DIR = ".pytest-sandbox-reports"
#: A test's time limit when neither option nor marker sets one (a job file's default).
DEFAULT_TIMEOUT = 600.0
#: What a batch's job is given beyond its tests' time limits: its pytest's start and
#: collection, on a worker that may be busy (seconds).
BATCH_START = 120.0
#: Limits a job carries (its timeout is the job's own).
JOB_LIMITS = ("memory", "cpus", "pids", "output", "disk")
STEP = "test"
#: The node ids of one batch, encoded, stay well under the kernel's 128 KiB per argument.
MAX_BATCH_BYTES = 96 << 10
#: What a batch's sandbox is given beyond its tests' memory and pids limits, for its own
#: pytest (each test's cgroup, inside it, has the test's): so a test meets its own limit
#: first, and the batch's pytest is not the one out of memory.
BATCH_MEMORY = 256 << 20
BATCH_PIDS = 64


def test_spec(config, item) -> SandboxSpec:
    """The sandbox spec ``item`` runs under on a worker; SpecError for one a worker cannot honour."""
    spec = build_spec(config, item, base_fields(config, item, ["pytest", item.nodeid]))
    _refuse_host_only(spec)
    return spec


def batch_key(spec: SandboxSpec) -> tuple:
    """Tests whose specs give the same key can share a batch (and its sandbox)."""
    return (spec.image, spec.limits, tuple(sorted(spec.env.items())), spec.seccomp, spec.userns)


def batch_job(config, spec: SandboxSpec, nodeids: list[str]) -> JobSpec:
    """The job that runs the tests ``nodeids`` (of one spec) on a worker."""
    argv = [*session_argv(config, python="python3", rootdir=WORKSPACE,
                          plugin="pytest_sandbox.batch"),
            f"--sandbox-batch={encode_node_ids(nodeids)}"]
    if spec.limits.timeout:
        argv.append(f"--sandbox-batch-timeout={spec.limits.timeout}")
    argv.append(f"--sandbox-batch-limits={encode_limits(spec.limits)}")
    seccomp = spec.seccomp
    if seccomp == "default":  # the batch makes each test's namespaces; each test stacks the default
        seccomp = "nested"
        argv.append("--sandbox-batch-seccomp=default")
    run = (f"rm -rf {REPORT_DIR} && mkdir {REPORT_DIR} && cd {shlex.quote(_invocation_dir(config))}"
           f" && exec {shlex.join(argv)}")
    limits = {k: getattr(spec.limits, k) for k in JOB_LIMITS}
    if limits["output"] is not None:
        limits["output"] *= len(nodeids)  # each test's, and the lines that carry its reports
    if limits["memory"] is not None:
        limits["memory"] += BATCH_MEMORY
    if limits["pids"] is not None:
        limits["pids"] += BATCH_PIDS
    name = nodeids[0] if len(nodeids) == 1 else f"{nodeids[0]} and {len(nodeids) - 1} more"
    return JobSpec(
        name=name, steps=(Step(STEP, run),), image=spec.image,
        workspace=str(config.rootpath),
        timeout=(spec.limits.timeout or DEFAULT_TIMEOUT) * len(nodeids) + BATCH_START,
        limits=limits, env={**_pytest_env(), **spec.env, "PYTHONDONTWRITEBYTECODE": "1"},
        results=ResultsSpec(), seccomp=seccomp, userns=worker_userns(spec), nested=True)


def worker_userns(spec: SandboxSpec) -> str | None:
    """The batch's user namespace as the job asks it of its worker: "auto" when the test asks
    for one of its own; else None, the worker's default (its SANDBOX_USERNS), which a session
    cannot lower: a worker that gives every sandbox a user namespace gives batches one too."""
    return "auto" if spec.userns == "auto" else None


def fits(nodeids: list[str]) -> bool:
    """Whether one batch can carry these node ids (on its command line)."""
    return len(encode_node_ids(nodeids)) <= MAX_BATCH_BYTES


def _invocation_dir(config) -> str:
    """Where pytest was started, on the worker (the outer's paths are relative to it)."""
    try:
        return str(PurePosixPath(WORKSPACE, config.invocation_params.dir.relative_to(config.rootpath)))
    except ValueError:
        return WORKSPACE  # outside the rootdir, which is all that travels


def _pytest_env() -> dict[str, str]:
    """The environment variables of this session's arguments (PYTEST_ADDOPTS): the batch's
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
    if spec.seccomp not in ("default", "unconfined"):
        raise SpecError("seccomp", spec.seccomp, "default or unconfined with --sandbox-redis "
                        "(a profile file is a path of this host)")
    for name in ("hostname", "user"):
        if getattr(spec, name) != getattr(default, name):
            raise SpecError(name, getattr(spec, name), f"{getattr(default, name)!r} (the "
                            "default) with --sandbox-redis (a job's steps cannot change it)")


def frames(data: bytes) -> tuple[list[dict], bytes]:
    """The lines in what a batch wrote so far, and what is left of a line not ended yet."""
    *lines, rest = data.split(b"\n")
    found = []
    for line in lines:
        start = line.find(FRAME.encode())
        if start >= 0:
            try:
                found.append(json.loads(line[start + len(FRAME):]))
            except ValueError:
                continue
    return found, rest


def frame_outcome(item, job_id: str, frame: dict, spec: SandboxSpec) -> Outcome:
    """The test's outcome from its line: its events, completed if its process died first."""
    config = item.config
    if frame.get("missing"):
        return Outcome(crash.complete(item, [], None, reason=f"sandbox: remote job {job_id} did "
                                      f"not collect {item.nodeid} on its worker"), path="remote")
    result = _result(job_id, frame, spec)
    config.hook.pytest_sandbox_result(item=item, result=result)
    moved = (WORKSPACE, str(config.rootpath))
    events = parse_events(config, frame["events"].encode(), moved=moved) if frame["events"] else []
    return Outcome(crash.complete(item, events, result), result, "remote")


def _result(job_id: str, frame: dict, spec: SandboxSpec) -> Result:
    """How the test's process ended, as the engine's Result says it."""
    status = frame.get("status")
    signal = os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None
    if status is None:
        code = 255
    elif signal is not None:
        code = 128 + signal
    else:
        code = os.WEXITSTATUS(status)
    stdout, stderr = (base64.b64decode(frame.get(name, "")) for name in ("stdout", "stderr"))
    limits = spec.limits
    user, system = frame.get("cpu_user"), frame.get("cpu_system")
    return Result(id=job_id, exit_code=code, signal=signal, started_at=frame["started"],
                  ended_at=frame["ended"], duration=frame["ended"] - frame["started"],
                  stdout=stdout, stderr=stderr, timed_out=bool(frame.get("timed_out")),
                  stdout_bytes=len(stdout), stderr_bytes=len(stderr),
                  oom_killed=bool(frame.get("oom_killed")), peak_memory=frame.get("peak_memory"),
                  pids_peak=frame.get("pids_peak"), pids_limited=bool(frame.get("pids_limited")),
                  cpu_user=user, cpu_system=system,
                  cpu_time=user + system if user is not None and system is not None else None,
                  limits={"memory": limits.memory, "timeout": limits.timeout,
                          "output": limits.output, "pids": limits.pids, "cpus": limits.cpus,
                          "disk": limits.disk})


def why_unrun(job: JobResult | None, job_id: str, error: str | None, stderr: bytes = b"") -> str:
    """Why a batch's test never ran: the job ended first (or was lost); with the end of
    the batch's stderr (pytest's own output there: a collection error, say)."""
    tail = stderr[-crash.OUTPUT_HEAD:].decode("utf-8", "replace").strip()
    return _why_unrun(job, job_id, error) + (f"\n\nthe batch's stderr ends with:\n{tail}"
                                             if tail else "")


def _why_unrun(job: JobResult | None, job_id: str, error: str | None) -> str:
    if job is None:
        return f"sandbox: lost remote job {job_id}: {error}"
    where = f"remote job {job.id}" + (f" on worker {job.worker}" if job.worker else "")
    detail = f": {job.error}" if job.error else ""
    if job.status == "timed_out":
        return f"sandbox: {where} timed out before it ran this test{detail}"
    if job.status == "cancelled":
        return f"sandbox: {where} was cancelled{detail}"
    if job.status not in ("passed", "failed"):
        return f"sandbox: {where} ended in {job.status}{detail}"
    return f"sandbox: {where} ended before it ran this test{_stderr(job)}"


def _stderr(job: JobResult) -> str:
    step = next((s for s in job.steps if s.name == STEP and s.result), None)
    code = step.result.get("exit_code") if step is not None and step.result else None
    return f" (its pytest exited with status {code}; its output is in the job's log)" \
        if code not in (None, 0) else ""
