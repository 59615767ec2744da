"""Dispatch marked tests to the job queue's workers (``--sandbox-redis URL``).

As pytest-xdist distributes tests to workers, but each test isolated in a
sandbox on a worker: one job per marked test (``queue_job``), submitted
with the ``jobs`` package's client. When the session knows its tests
(``expect``, after collection) every marked test is submitted at once, so
the workers run them side by side while this process collects the results
in the session's order; a test that was not expected (in a pytest-xdist
worker, say) is submitted when its turn comes. Jobs still queued or
running when the session ends early (``-x``, Ctrl-C) are cancelled.

Redis unreachable at the start, or a rootdir too big to travel, is one
usage error; a job lost later (Redis gone, results expired) fails that
test only, saying so.
"""

from __future__ import annotations

import sys

import pytest
import redis

import jobs
from jobs.client import DEFAULT_QUEUE
from sandbox import SpecError, redact_url

from .. import crash
from . import Outcome
from .queue_job import REPORT_FILE, job_spec, outcome


class QueueRunner:
    """Submits one job per marked test and turns each job's result into the test's reports."""

    needs_host_sandboxes = False  # the workers make the sandboxes

    def __init__(self, config, url: str, *, queue: str | None = None) -> None:
        self.config = config
        self.url = redact_url(url)  # for messages: never the password
        self.queue = queue or DEFAULT_QUEUE
        try:
            self.conn = jobs.connect(url)
        except jobs.QueueAuthFailed as exc:
            raise pytest.UsageError(f"--sandbox-redis: {exc}") from exc
        except jobs.QueueUnavailable as exc:
            raise pytest.UsageError(
                f"--sandbox-redis: {exc.message.rstrip('.')}; start Redis there (and `sandbox worker "
                f"--redis {self.url}`), or run without --sandbox-redis to sandbox marked tests "
                "on this host") from exc
        self.jobs: dict = {}  # item -> the id of its job, until its result is in
        self.problems: dict = {}  # item -> why its job could not be submitted
        self._packed: bytes | None = None

    def expect(self, items: list) -> None:
        """Submit a job for each of ``items`` now: workers run them while we wait for the first."""
        for item in items:
            self._submit(item)

    def run(self, item, nextitem) -> Outcome:
        if item not in self.jobs and item not in self.problems:
            self._submit(item)
        if item in self.problems:
            return _failed(item, self.problems.pop(item))
        job_id = self.jobs[item]  # stays until collected: on Ctrl-C, close() cancels it
        output = {"stdout": b"", "stderr": b""}
        try:
            result = jobs.wait(self.conn, job_id, on_event=lambda e: _keep_output(output, e))
            report = jobs.artifact(self.conn, job_id, REPORT_FILE)
        except (jobs.JobError, redis.RedisError) as exc:
            del self.jobs[item]
            return _failed(item, f"sandbox: lost remote job {job_id} at {self.url}: {exc}")
        del self.jobs[item]
        return outcome(item, result, report, output)

    def close(self) -> None:
        """Cancel the jobs of tests that will not be collected after all."""
        for job_id in self.jobs.values():
            try:
                jobs.cancel(self.conn, job_id)
            except (jobs.JobError, redis.RedisError):
                pass  # the queue is gone; the job's TTL ends it
        self.jobs.clear()

    def _submit(self, item) -> None:
        """Put ``item``'s job on the queue, or note why it cannot go."""
        try:
            spec = job_spec(self.config, item)
        except SpecError as exc:
            self.problems[item] = f"sandbox spec: {exc}"
            return
        try:
            self.jobs[item] = jobs.submit(self.conn, spec, queue=self.queue,
                                                 packed=self._workspace(spec.workspace or str(self.config.rootpath)))
        except (jobs.JobError, redis.RedisError) as exc:
            self.problems[item] = f"sandbox: cannot submit to the queue at {self.url}: {exc}"

    def _workspace(self, rootdir: str) -> bytes:
        """The rootdir, packed once for all jobs; a usage error when it cannot travel."""
        if self._packed is None:
            try:
                self._packed = jobs.pack_workspace(rootdir)
            except jobs.WorkspaceError as exc:
                raise pytest.UsageError(f"--sandbox-redis: the rootdir is each job's "
                                        f"workspace: {exc}") from exc
            _warn_without_workers(self.conn, self.url, self.queue)
        return self._packed


def _failed(item, reason: str) -> Outcome:
    return Outcome(crash.complete(item, [], None, reason=reason), path="remote")


def _keep_output(output: dict[str, bytes], event) -> None:
    """The step's stdout/stderr from the job's log: shown if the test process dies."""
    if event.kind == "out" and event.stream in output:
        output[event.stream] += event.data


def _warn_without_workers(conn, url: str, queue: str) -> None:
    """Say so at once when no worker listens on the queue: the tests would wait for one."""
    from rq import Queue, Worker

    if Worker.count(queue=Queue(queue, connection=conn)):
        return
    sys.stderr.write(f"pytest-sandbox: no worker listens on queue {queue!r} at {url}; sandboxed "
                     f"tests wait until one starts: sandbox worker --redis {url} --queue {queue}\n")
