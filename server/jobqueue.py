"""The daemon's jobs: through Redis and the workers, or (without Redis) run in its process.

``QueuedJobs`` submits to the queue and reads the job store (``jobs``): the
jobs live in Redis and outlive the daemon. ``LocalJobs`` runs each job in a
thread of the daemon, as `sandbox submit` without Redis does in its own
process, and keeps it in memory: same fields, same events, same results.

Both answer the same calls with the store's shapes: ``fields`` (the job's
hash as text), ``result`` (a JobResult or None), ``events`` (LogEvents from
a sequence number on, live to the eof), ``artifacts`` (path -> bytes).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import anyio

from jobs import (
    FINAL,
    Cancel,
    JobLog,
    JobResult,
    JobSpec,
    LogEvent,
    NoSuchJob,
    execute_job,
    follow_log,
    job_artifacts,
    job_fields,
    job_result,
    junit_totals,
    list_jobs,
)
from jobs import cancel as cancel_job
from jobs import connect as connect_redis
from jobs import submit as submit_job

from .logbuffer import LogBuffer

#: Threads that follow a Redis log at once (each blocks in XREAD for up to a second).
FOLLOWERS = anyio.CapacityLimiter(512)


def new_id() -> str:
    import secrets

    return secrets.token_hex(6)


class QueuedJobs:
    """Jobs in Redis, run by `sandbox worker` processes."""

    queued = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = connect_redis(url)

    def submit(self, spec: JobSpec, *, owner: str, queue: str, packed: bytes | None,
               secrets: Mapping[str, str] | None = None) -> str:
        """Queued as `sandbox submit --redis` queues it: ``secrets`` in their own Redis hash
        until a worker claims the job (``jobs.secrets``), never in the job's record."""
        return submit_job(self.conn, spec, queue=queue, packed=packed, owner=owner, secrets=secrets)

    def fields(self, job_id: str) -> dict[str, str]:
        return job_fields(self.conn, job_id)

    def rows(self, limit: int) -> list[dict[str, str]]:
        return list_jobs(self.conn, limit)

    def result(self, job_id: str) -> JobResult | None:
        return job_result(self.conn, job_id)

    def cancel(self, job_id: str) -> str:
        return cancel_job(self.conn, job_id)

    def artifacts(self, job_id: str) -> dict[str, bytes]:
        return job_artifacts(self.conn, job_id)

    async def events(self, job_id: str, after: int = 0, *, follow: bool = True) -> AsyncIterator[LogEvent]:
        """The events with a sequence number over ``after``, read by a thread of FOLLOWERS."""
        iterator = follow_log(self.conn, job_id, follow=follow)
        while True:
            event = await anyio.to_thread.run_sync(next, iterator, None, limiter=FOLLOWERS)
            if event is None:
                return
            if event.seq > after or event.kind == "eof":
                yield event

    def close(self) -> None:
        self.conn.close()


@dataclass
class LocalJob:
    """A job run in the daemon's process: its record, its live log, its artifacts."""

    id: str
    spec: JobSpec
    owner: str
    submitted_at: float
    status: str = "queued"
    started_at: float | None = None
    result: JobResult | None = None
    cancel: Cancel = field(default_factory=Cancel)
    log: LogBuffer[LogEvent] = field(default_factory=LogBuffer)
    artifacts: dict[str, bytes] = field(default_factory=dict)

    def fields(self) -> dict[str, str]:
        """The job as the store's hash reads (text values)."""
        out = {"id": self.id, "name": self.spec.name, "queue": "", "status": self.status,
               "submitted_at": str(self.submitted_at), "owner": self.owner,
               "spec": json.dumps(self.spec.to_dict()), "worker": "daemon"}
        if self.started_at is not None:
            out["started_at"] = str(self.started_at)
        if self.result is not None:
            out.update(ended_at=str(self.result.ended_at), error=self.result.error or "",
                       result=json.dumps(self.result.to_dict()))
        return out


class LocalJobs:
    """Jobs run by the daemon itself, ``concurrency`` at a time, kept in memory."""

    queued = False

    def __init__(self, concurrency: int = 2, keep: int = 1000) -> None:
        self._jobs: dict[str, LocalJob] = {}
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._keep = keep
        self._threads: list[threading.Thread] = []

    def submit(self, spec: JobSpec, *, owner: str, queue: str, packed: bytes | None,
               secrets: Mapping[str, str] | None = None) -> str:
        """Run in a thread of the daemon; ``secrets`` live only in that thread's memory (and
        the environment of the steps that list them) and go with it when the job ends."""
        job = LocalJob(new_id(), spec, owner, time.time())
        with self._lock:
            self._jobs[job.id] = job
            self._trim()
        thread = threading.Thread(target=self._run, args=(job, packed, dict(secrets or {})),
                                  name=f"job-{job.id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job.id

    def _run(self, job: LocalJob, packed: bytes | None, secrets: dict[str, str]) -> None:
        with self._slots:
            with self._lock:  # a cancel of the queued job and this start: one wins
                if job.status != "queued":  # cancelled while queued
                    secrets.clear()
                    return
                job.status, job.started_at = "running", time.time()
            log = JobLog(_BufferSink(job.log))
            try:
                result = execute_job(job.spec, job_id=job.id, log=log, cancel=job.cancel,
                                     packed_workspace=packed, worker="daemon", secrets=secrets,
                                     store_artifacts=_keep_in(job.artifacts))
            except BaseException as exc:
                result = JobResult(id=job.id, name=job.spec.name, status="error",
                                   started_at=job.started_at, ended_at=time.time(),
                                   error=log.secrets.mask(f"the daemon failed running it: "
                                                          f"{type(exc).__name__}: {exc}"))
            finally:
                secrets.clear()  # the job has ended: its secrets go
            self._finish(job, result, log.seq + 1)

    @staticmethod
    def _finish(job: LocalJob, result: JobResult, seq: int) -> None:
        job.result, job.status = result, result.status
        headline = result.junit.headline() if result.junit else ""
        job.log.append(LogEvent("eof", seq, time.time(), fields={
            "status": result.status, "headline": headline, "error": result.error or ""}))
        job.log.close()

    def _trim(self) -> None:
        done = [j for j in self._jobs.values() if j.status in FINAL]
        for old in sorted(done, key=lambda j: j.submitted_at)[:max(0, len(done) - self._keep)]:
            del self._jobs[old.id]

    def _get(self, job_id: str) -> LocalJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise NoSuchJob(job_id)
        return job

    def fields(self, job_id: str) -> dict[str, str]:
        return self._get(job_id).fields()

    def rows(self, limit: int) -> list[dict[str, str]]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.submitted_at, reverse=True)[:limit]
        rows = [j.fields() for j in jobs]
        for job, row in zip(jobs, rows):
            row.pop("spec", None)
            row.pop("result", None)
            row["junit"] = junit_totals(job.result.junit.to_dict() if job.result and job.result.junit
                                        else None)
        return rows

    def result(self, job_id: str) -> JobResult | None:
        return self._get(job_id).result

    def cancel(self, job_id: str) -> str:
        job = self._get(job_id)
        with self._lock:
            before = job.status
            if before == "queued":
                now = time.time()
                self._finish(job, JobResult(id=job.id, name=job.spec.name, status="cancelled",
                                            started_at=now, ended_at=now,
                                            error="cancelled before it ran"), 1)
        if before == "running":
            job.cancel.set()
        return before

    def artifacts(self, job_id: str) -> dict[str, bytes]:
        return dict(self._get(job_id).artifacts)

    async def events(self, job_id: str, after: int = 0, *, follow: bool = True) -> AsyncIterator[LogEvent]:
        job = self._get(job_id)
        async for _index, event in job.log.follow(max(after, 0), follow=follow):
            if event.seq > after or event.kind == "eof":
                yield event

    def close(self) -> None:
        """Cancel what runs and wait for it (the daemon's SIGTERM)."""
        for job in list(self._jobs.values()):
            if job.status not in FINAL:
                self.cancel(job.id)
        for thread in self._threads:
            thread.join(60)


class _BufferSink:
    def __init__(self, buffer: LogBuffer[LogEvent]) -> None:
        self.buffer = buffer

    def write(self, event: LogEvent) -> None:
        self.buffer.append(event)


def _keep_in(store: dict[str, bytes]) -> Callable[[str, list], None]:
    def save(_job_id: str, items: list) -> None:
        store.update({art.path: data for art, data in items if data is not None})

    return save

