"""/v1/jobs: submit, list, show, cancel, re-run, artifacts, JUnit; the log in ``job_logs``.

Submit is multipart, as curl sends it::

    curl -H "Authorization: Bearer $T" -F job=@job.toml -F workspace=@ws.tar.gz .../v1/jobs
    curl ... -F job=@job.toml -F param=VERSION=2 -F "secret=<token.pair" .../v1/jobs

(``token.pair`` holds ``TOKEN=value``: curl reads a field's value from a file
with ``<``, so the secret is never on a command line.)

The job file (TOML, YAML or JSON, told by its file name) is validated by
the job file reader, so a mistake reads as `sandbox submit` says it (400,
the same line, the key as ``field``). The workspace is a tar (gzip or not)
unpacked by the job runner's hardened unpacker, never on the daemon's
request path. A token sees only the jobs it submitted, unless admin.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from jobs import JobResult, JobSpec, NoSuchJob, load_job_text, param_args, sent_secrets

from ..deps import Caller, EngineDep, Reader, Submitter
from ..engine import Engine
from ..errors import ApiError
from ..models import ERRORS, ArtifactInfo, JobCancelled, JobsSubmitted

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERRORS)
MAX_JOB_FILE = 1 << 20
MAX_WORKSPACE = 64 << 20  # what a queued job may carry (jobs.workspace.MAX_PACKED_BYTES)
STATUSES = ("queued", "running", "passed", "failed", "error", "timed_out", "cancelled")


async def _read_capped(upload: UploadFile, cap: int, what: str) -> bytes:
    data = await upload.read(cap + 1)
    if len(data) > cap:
        raise ApiError(413, f"{what} is over {cap >> 20} MiB", field=what)
    return data


@router.post("", status_code=201, response_model=JobsSubmitted)
async def submit(caller: Submitter, engine: EngineDep,
                 job: Annotated[UploadFile, File(description="the job file (.toml, .yaml, .json)")],
                 workspace: Annotated[UploadFile | None, File(description="a tar(.gz) of the workspace")] = None,
                 param: Annotated[list[str], Form(description="NAME=VALUE: a parameter the job "
                                                  "declares under [params] (repeatable)")] = [],  # noqa: B006
                 secret: Annotated[list[str], Form(description="NAME=VALUE: a secret for the steps "
                                                   "that list it (repeatable; never echoed)")] = [],  # noqa: B006
                 queue: str = "default") -> dict[str, Any]:
    """Submit the job(s) a job file describes (one per matrix combination).

    ``param`` and ``secret`` are form fields, as `sandbox submit --param/--secret` gives
    them (a secret's value already read, from a file or the environment, on the
    submitter's side). A secret is never logged, echoed or stored with the job: a queued
    job's go to Redis as `sandbox submit --redis` puts them (their own hash, deleted
    when a worker takes the job); a job the daemon runs itself keeps them only in the
    memory of its thread until it ends. Every log event is masked (*** for a value).
    """
    text = await _read_capped(job, MAX_JOB_FILE, "job")
    packed = await _read_capped(workspace, MAX_WORKSPACE, "workspace") if workspace else None
    secrets = sent_secrets(secret)
    specs = load_job_text(text, job.filename or "job.toml", workspace_uploaded=packed is not None,
                          params=param_args(param), secrets=secrets.keys())
    if not caller.admin:
        _check_security(caller, specs)

    def enqueue() -> list[dict[str, str]]:
        made = [{"id": engine.jobs.submit(spec, owner=caller.name, queue=queue, packed=packed,
                                          secrets={n: secrets[n] for n in spec.secret_names}),
                 "name": spec.name} for spec in specs]
        engine.workspaces.keep([job["id"] for job in made], packed)
        return made

    return {"jobs": await run_in_threadpool(enqueue), "queued": engine.jobs.queued}


@router.post("/{job_id}/rerun", status_code=201, response_model=JobsSubmitted)
async def rerun(job_id: str, caller: Submitter, engine: EngineDep) -> dict[str, Any]:
    """Submit the job again: the same spec, the same workspace, on the same queue (409 when
    this daemon no longer keeps the workspace it was submitted with)."""
    fields = await run_in_threadpool(visible_fields, engine, caller, job_id)

    def enqueue() -> list[dict[str, str]]:
        packed = engine.workspaces.get(job_id)
        spec = JobSpec.from_dict(json.loads(fields["spec"]))
        new_id = engine.jobs.submit(spec, owner=caller.name, queue=fields.get("queue") or "default",
                                    packed=packed)
        engine.workspaces.keep([new_id], packed)
        return [{"id": new_id, "name": spec.name}]

    return {"jobs": await run_in_threadpool(enqueue), "queued": engine.jobs.queued}


def _check_security(caller: Caller, specs: list[JobSpec]) -> None:
    """403 for a [security] only an admin token may ask (as for a sandbox: see
    ``sandboxes.check_rights``): no seccomp filter, ports of the host, the host's user
    namespace where the daemon's default is its own."""
    for spec in specs:
        for asked, field, what in (
                (spec.seccomp == "unconfined", "security.seccomp", "run without a seccomp filter"),
                (spec.seccomp == "nested", "security.seccomp", "make user namespaces (the nested profile)"),
                (bool(spec.allow_host_ports), "security.allow_host_ports", "connect to ports of the host"),
                (spec.userns == "host" and os.environ.get("SANDBOX_USERNS") == "auto", "security.userns",
                 "run in the host's user namespace")):
            if asked:
                raise ApiError(403, f"token {caller.name!r} may not {what}: that needs an admin "
                               "token", field=field)


def visible_fields(engine: Engine, caller: Caller, job_id: str) -> dict[str, str]:
    """The job's record, if the caller may see it (404 as for an unknown job otherwise)."""
    fields = engine.jobs.fields(job_id)
    if not caller.sees(fields.get("owner")):
        raise NoSuchJob(job_id)
    return fields


@router.get("")
async def list_jobs(caller: Reader, engine: EngineDep,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                    status: Annotated[str | None, Query(description=", ".join(STATUSES))] = None,
                    name: Annotated[str | None, Query(description="a part of the name")] = None,
                    since: Annotated[float | None, Query(description="submitted at or after (epoch s)")] = None,
                    ) -> list[dict[str, str]]:
    """The newest jobs first, as `sandbox jobs list` shows them."""
    if status is not None and status not in STATUSES:
        raise ApiError(400, f"invalid status {status!r}: expected one of {', '.join(STATUSES)}",
                       field="status")
    rows = await run_in_threadpool(engine.jobs.rows, 1000)
    out = [r for r in rows if caller.sees(r.get("owner"))
           and (status is None or r.get("status") == status)
           and (name is None or name in r.get("name", ""))
           and (since is None or float(r.get("submitted_at") or 0) >= since)]
    return out[:limit]


@router.get("/{job_id}")
async def show(job_id: str, caller: Reader, engine: EngineDep) -> dict[str, Any]:
    """The job's record: status, times, worker, its spec and (once ended) its result."""
    fields: dict[str, Any] = await run_in_threadpool(visible_fields, engine, caller, job_id)
    for key in ("spec", "result"):
        if fields.get(key):
            fields[key] = json.loads(fields[key])
    return fields


@router.post("/{job_id}/cancel", response_model=JobCancelled)
async def cancel(job_id: str, caller: Submitter, engine: EngineDep) -> dict[str, str]:
    """Queued: cancelled at once; running: its sandbox is stopped within a second."""
    await run_in_threadpool(visible_fields, engine, caller, job_id)
    return {"id": job_id, "before": await run_in_threadpool(engine.jobs.cancel, job_id)}


async def _result(engine: Engine, caller: Caller, job_id: str) -> JobResult | None:
    await run_in_threadpool(visible_fields, engine, caller, job_id)
    return await run_in_threadpool(engine.jobs.result, job_id)


@router.get("/{job_id}/artifacts", response_model=list[ArtifactInfo])
async def artifacts(job_id: str, caller: Reader, engine: EngineDep) -> list[dict[str, Any]]:
    """The artifacts the job's result lists (``stored``: false when over the size cap)."""
    result = await _result(engine, caller, job_id)
    return [vars(a) for a in result.artifacts] if result else []


@router.get("/{job_id}/artifacts/{path:path}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
async def artifact(job_id: str, path: str, caller: Reader, engine: EngineDep) -> Response:
    """One stored artifact's bytes."""
    await run_in_threadpool(visible_fields, engine, caller, job_id)
    stored = await run_in_threadpool(engine.jobs.artifacts, job_id)
    if path not in stored:
        raise ApiError(404, f"job {job_id} stored no artifact {path!r}", field="path")
    return Response(stored[path], media_type="application/octet-stream")


@router.get("/{job_id}/junit")
async def junit(job_id: str, caller: Reader, engine: EngineDep) -> dict[str, Any]:
    """The JUnit report as JSON: totals, suites with their cases, the failures with messages."""
    result = await _result(engine, caller, job_id)
    if result is None or result.junit is None:
        raise ApiError(404, f"job {job_id} has no JUnit report (yet)")
    return junit_json(result)


def junit_json(result: JobResult) -> dict[str, Any]:
    report = result.junit
    assert report is not None
    suites: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in report.cases:
        suites[case.classname].append(vars(case) | {"nodeid": case.nodeid})
    return {"job": result.id, "status": result.status, "headline": report.headline(),
            "tests": report.tests, "passed": report.passed, "failures": report.failures,
            "errors": report.errors, "skipped": report.skipped, "time": report.time,
            "files": list(report.files), "problems": list(report.problems),
            "suites": [{"name": name, "tests": len(cases),
                        **{k: sum(c["outcome"] == o for c in cases)
                           for k, o in (("failures", "failed"), ("errors", "error"),
                                        ("skipped", "skipped"))},
                        "cases": cases} for name, cases in suites.items()],
            "failed": [{"nodeid": c.nodeid, "outcome": c.outcome, "message": c.message,
                        "text": c.text} for c in report.bad_cases]}
