"""The function RQ calls for each job: a thin adapter around jobs.execute_job().

It claims the job (queued -> running, unless it was cancelled meanwhile),
has the process's lease thread keep the job's lease alive and pass on a
cancel request, runs execute_job with a log that goes to the job's Redis
stream, and stores the result. Whatever happens in execute_job (RQ's own
timeout, a shutdown signal, a bug), the job ends with a verdict and an `eof`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobs import store
from jobs.cancellation import Cancel
from jobs.events import JobLog
from jobs.execute import execute_job
from jobs.logstream import RedisLogSink
from jobs.result import ERROR, RUNNING
from sandbox import leave_to_main_thread

log = logging.getLogger("sandbox.worker")
RENEW_INTERVAL = 0.25


def run(job_id: str) -> str:
    """RQ entry point (enqueued by name, with JSON args): run one job; its status."""
    from rq import get_current_job

    rq_job = get_current_job()
    if rq_job is None:
        raise RuntimeError("worker.task.run is the entry point of an RQ job: called outside one")
    conn, worker = rq_job.connection, rq_job.worker_name or "worker"
    claimed = store.claim(conn, job_id, worker)
    if claimed is None:
        return "skipped: cancelled before it started"
    spec, packed, secrets = claimed
    if packed is None and spec.workspace:  # submit() packs every workspace: this one is forged
        spec = dataclasses.replace(spec, workspace=None)  # never copy a host directory of the worker
    job_log = JobLog(RedisLogSink(conn, job_id))
    with LEASES.hold(conn, job_id, worker) as cancel:
        try:
            result = execute_job(spec, job_id=job_id, log=job_log, cancel=cancel,
                                 packed_workspace=packed, worker=worker, secrets=secrets,
                                 store_artifacts=functools.partial(store.save_artifacts, conn))
        except BaseException as exc:
            store.end_unrun(conn, job_id, ERROR, job_log.secrets.mask(
                f"the worker failed running it: {type(exc).__name__}: {exc}"), (RUNNING,))
            raise
    if not store.finish(conn, result, seq=job_log.seq + 1):
        log.warning("job %s was ended by someone else before it finished", job_id)
    else:
        log.info("job %s %r: %s in %.2fs", job_id, spec.name, result.status, result.duration)
    return result.status


class Leases:
    """One thread per worker process renews the leases of the jobs it runs.

    Every RENEW_INTERVAL it renews each held job's lease and, when someone
    asked to cancel that job, sets the job's Cancel (which kills its sandbox).
    One long-lived thread instead of one per job: a trivial job costs less.
    """

    def __init__(self) -> None:
        self._held: dict[str, tuple[Any, str, Cancel]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def hold(self, conn: Any, job_id: str, worker: str) -> Iterator[Cancel]:
        """Keep the job's lease while in this block; the job's Cancel."""
        cancel = Cancel()
        with self._lock:
            self._held[job_id] = (conn, worker, cancel)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="leases", daemon=True)
                self._thread.start()
        try:
            yield cancel
        finally:
            with self._lock:  # no renewal after this: finish() deletes the lease for good
                del self._held[job_id]

    def close(self) -> None:
        """Stop the thread (a worker process never needs to: it is a daemon)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        leave_to_main_thread()  # RQ's SIGTERM/SIGINT handlers: the main thread's, promptly
        while not self._stop.wait(RENEW_INTERVAL):
            with self._lock:
                for job_id, (conn, worker, cancel) in list(self._held.items()):
                    self._renew(conn, job_id, worker, cancel)

    @staticmethod
    def _renew(conn: Any, job_id: str, worker: str, cancel: Cancel) -> None:
        try:
            if store.renew(conn, job_id, worker) and not cancel.is_set():
                cancel.set()
        except Exception as exc:
            log.warning("job %s: cannot renew lease: %s", job_id, exc)


LEASES = Leases()
