"""The function RQ calls for each job: a thin adapter around jobs.execute_job().

It claims the job (queued -> running, unless it was cancelled meanwhile),
keeps the job's lease alive and watches for cancellation from a small
thread, runs execute_job with a log that goes to the job's Redis stream,
and stores the result. Whatever happens in execute_job (RQ's own timeout,
a shutdown signal, a bug), the job ends with a verdict and an `eof`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

from jobs import store
from jobs.events import JobLog
from jobs.execute import execute_job
from jobs.logstream import RedisLogSink
from jobs.result import ERROR, RUNNING

log = logging.getLogger("sandbox.worker")
RENEW_INTERVAL = 0.25


def run(job_id: str) -> str:
    """RQ entry point (enqueued by name, with JSON args): run one job; its status."""
    from rq import get_current_job

    rq_job = get_current_job()
    conn, worker = rq_job.connection, rq_job.worker_name or "worker"
    claimed = store.claim(conn, job_id, worker)
    if claimed is None:
        return "skipped: cancelled before it started"
    spec, packed = claimed
    job_log = JobLog(RedisLogSink(conn, job_id))
    with Lease(conn, job_id, worker) as lease:
        try:
            result = execute_job(spec, job_id=job_id, log=job_log, cancel=lease.cancel,
                                 packed_workspace=packed, worker=worker,
                                 store_artifacts=functools.partial(store.save_artifacts, conn))
        except BaseException as exc:
            store.end_unrun(conn, job_id, ERROR, f"the worker failed running it: {exc!r}",
                            (RUNNING,))
            raise
    if not store.finish(conn, result, seq=job_log.seq + 1):
        log.warning("job %s was ended by someone else before it finished", job_id)
    return result.status


class Lease:
    """A thread that renews the job's lease and sets ``cancel`` when asked to cancel."""

    def __init__(self, conn, job_id: str, worker: str) -> None:
        self.conn, self.job_id, self.worker = conn, job_id, worker
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> "Lease":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(RENEW_INTERVAL):
            try:
                if store.renew(self.conn, self.job_id, self.worker):
                    self.cancel.set()
            except Exception as exc:  # noqa: BLE001 - keep the job running through a Redis blip
                log.warning("job %s: cannot renew lease: %s", self.job_id, exc)
                time.sleep(RENEW_INTERVAL)
