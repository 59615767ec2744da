"""Jobs: the job file, submission to the queue, results, JUnit, live logs.

The public API::

    from jobs import load_job_file, run_job, submit, wait, connect, execute_job
    spec, = load_job_file("examples/unit-tests.toml")
    result = run_job(spec)                          # in this process
    result = run_job(spec, redis="redis://host/0")  # through the queue and a worker
    print(result.status, result.junit.headline())

    conn = connect("redis://host/0")                # step by step, as the pytest plugin does
    job_id = submit(conn, spec)
    result = wait(conn, job_id)
    data = artifact(conn, job_id, "report.xml")     # a stored artifact's bytes (or None)

``connection_options(url)``: the redis-py options every client of the
queue uses (a lost Redis is an error within seconds, a restart is waited
through). For adapters (the daemon): ``load_job_text`` (a job file sent over the
network), ``job_fields``, ``list_jobs``, ``job_result``, ``job_artifacts``
and ``follow_log`` read the store (``junit_totals``: a report's totals as a listing
shows them); ``param_args`` and ``sent_secrets`` read a submitter's ``--param``
and ``--secret`` pairs; ``collect_job_dirs`` removes the directories of dead runners (gc);
``JobLog`` numbers the events of a job run
here; ``Renderer`` and ``summary`` print them as the CLI does; ``EXIT_STATUS``
and ``FINAL`` say what a status means.

The names below are imported on first use (PEP 562), so `sandbox --help`,
which imports jobs.cli, stays fast. Everything else is private to the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the checker sees: the names below, as _EXPORTS loads them at run time
    from .cancellation import Cancel
    from .client import (
        artifact,
        cancel,
        connect,
        connection_options,
        redis_url,
        run_job,
        run_local,
        submit,
        tell,
        wait,
    )
    from .errors import JobError, JobFileError, NoSuchJob, QueueAuthFailed, QueueUnavailable, WorkspaceError
    from .events import JobLog, LogEvent
    from .execute import execute_job
    from .jobfile import load as load_job_file
    from .jobfile import loads as load_job_text
    from .jobfile import parse as parse_job
    from .junit import Case, JUnitReport
    from .junit import totals as junit_totals
    from .logstream import follow as follow_log
    from .model import JobSpec, ResultsSpec, Step
    from .render import Renderer, summary
    from .result import EXIT_STATUS, FINAL, Artifact, JobResult, StepResult
    from .secrets import sent_secrets
    from .store import artifacts as job_artifacts
    from .store import list_jobs
    from .store import read as job_fields
    from .store import result_of as job_result
    from .validator import param_args
    from .workspace import collect as collect_job_dirs
    from .workspace import pack as pack_workspace

__all__ = [
    "EXIT_STATUS",
    "FINAL",
    "Artifact",
    "Cancel",
    "Case",
    "JUnitReport",
    "JobError",
    "JobFileError",
    "JobLog",
    "JobResult",
    "JobSpec",
    "LogEvent",
    "NoSuchJob",
    "QueueAuthFailed",
    "QueueUnavailable",
    "Renderer",
    "ResultsSpec",
    "Step",
    "StepResult",
    "WorkspaceError",
    "artifact",
    "cancel",
    "collect_job_dirs",
    "connect",
    "connection_options",
    "execute_job",
    "follow_log",
    "job_artifacts",
    "job_fields",
    "job_result",
    "junit_totals",
    "list_jobs",
    "load_job_file",
    "load_job_text",
    "pack_workspace",
    "param_args",
    "parse_job",
    "redis_url",
    "run_job",
    "run_local",
    "sent_secrets",
    "submit",
    "summary",
    "tell",
    "wait",
]

#: Where each exported name is loaded from on first use: module, or (module, attribute).
_EXPORTS = {
    "artifact": "client", "cancel": "client", "connect": "client", "redis_url": "client",
    "connection_options": "client", "tell": "client",
    "run_job": "client", "run_local": "client", "submit": "client", "wait": "client",
    "pack_workspace": ("workspace", "pack"), "Cancel": ("cancellation", "Cancel"),
    "JobError": "errors", "JobFileError": "errors", "NoSuchJob": "errors",
    "QueueUnavailable": "errors", "QueueAuthFailed": "errors", "WorkspaceError": "errors",
    "LogEvent": "events", "execute_job": "execute",
    "load_job_file": ("jobfile", "load"), "parse_job": ("jobfile", "parse"),
    "load_job_text": ("jobfile", "loads"),
    "param_args": ("validator", "param_args"), "sent_secrets": ("secrets", "sent_secrets"),
    "job_fields": ("store", "read"), "list_jobs": ("store", "list_jobs"),
    "job_result": ("store", "result_of"), "job_artifacts": ("store", "artifacts"),
    "follow_log": ("logstream", "follow"), "collect_job_dirs": ("workspace", "collect"), "JobLog": "events",
    "Renderer": "render", "summary": "render", "EXIT_STATUS": "result", "FINAL": "result",
    "Case": "junit", "JUnitReport": "junit", "junit_totals": ("junit", "totals"),
    "JobSpec": "model", "ResultsSpec": "model", "Step": "model",
    "Artifact": "result", "JobResult": "result", "StepResult": "result",
}


def __getattr__(name: str) -> object:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'jobs' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    globals()[name] = value
    return value
