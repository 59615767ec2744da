"""The function RQ calls for each job: a thin adapter around jobs.execute_job().

It claims the job (queued -> running, unless it was cancelled meanwhile),
has the process's lease thread keep the job's lease alive and pass on a
cancel request, runs execute_job with a log that goes to the job's Redis
stream, and stores the result. Whatever happens in execute_job (RQ's own
timeout, a shutdown signal, a bug), the job ends with a verdict and an `eof`.

A worker that cannot renew a job's lease for the lease's time (its link to
Redis is down, or Redis is) must assume someone has ended the job meanwhile:
the lease thread stops the job's sandbox, and the job ends `error` (by this
worker when it can still write, or by a reaper). Shorter outages are waited
through: the log and the result are written once Redis answers again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jobs import store
from jobs.cancellation import Cancel
from jobs.events import JobLog
from jobs.execute import execute_job
from jobs.logstream import RETRY_DELAY, RedisLogSink, connection_lost
from jobs.result import ERROR, RUNNING, JobResult
from jobs.workspace import deliver, has_workspace
from sandbox import leave_to_main_thread

log = logging.getLogger("sandbox.worker")
RENEW_INTERVAL = 0.25
T = TypeVar("T")
#: a lease renewal's connect and reply must come within this, so a dead link is seen in time
LEASE_SOCKET_TIMEOUT = 1.0


class Connections:
    """This worker process's own Redis clients for its jobs, apart from RQ's.

    RQ stretches its client's socket timeout to its 405-second blocking
    dequeue; a job's writes and its lease need to fail fast instead, so
    that a dead link is noticed within the lease's time.
    """

    def __init__(self) -> None:
        self.jobs: Any = None
        self.leases: Any = None

    def configure(self, url: str) -> None:
        """Clients for ``url`` (called by the worker before it takes jobs)."""
        import redis

        from jobs.client import connection_options

        self.jobs = redis.Redis.from_url(url, **connection_options(url, retries=0))
        self.leases = redis.Redis.from_url(url, **connection_options(
            url, socket_timeout=LEASE_SOCKET_TIMEOUT, connect_timeout=LEASE_SOCKET_TIMEOUT, retries=0))


CONNECTIONS = Connections()


def run(job_id: str) -> str:
    """RQ entry point (enqueued by name, with JSON args): run one job; its status."""
    from rq import get_current_job

    rq_job = get_current_job()
    if rq_job is None:
        raise RuntimeError("worker.task.run is the entry point of an RQ job: called outside one")
    conn = CONNECTIONS.jobs or rq_job.connection
    worker = rq_job.worker_name or "worker"
    claimed = _retrying(lambda: store.claim(conn, job_id, worker))
    if claimed is None:
        return _not_claimed(conn, job_id, worker)
    spec, packed, secrets = claimed
    if packed is None and spec.workspace:  # submit() packs every workspace: this one is forged
        spec = dataclasses.replace(spec, workspace=None)  # never copy a host directory of the worker
    with LEASES.hold(CONNECTIONS.leases or conn, job_id, worker) as lease:
        sink = RedisLogSink(conn, job_id, give_up=lease.lost.is_set, hold=True)
        lease.tick = sink.flush_stale
        job_log = JobLog(sink)
        try:
            result = execute_job(spec, job_id=job_id, log=job_log, cancel=lease.cancel,
                                 packed_workspace=packed, worker=worker, secrets=secrets,
                                 store_artifacts=functools.partial(_save_artifacts, conn, lease))
        except BaseException as exc:
            with contextlib.suppress(Exception):  # what the job said before it failed: one try
                sink.flush_stale(older_than=0)
            try:
                store.end_unrun(conn, job_id, ERROR, job_log.secrets.mask(
                    f"the worker failed running it: {type(exc).__name__}: {exc}"), (RUNNING,))
            except connection_lost():
                pass  # the reapers end it once its lease runs out
            raise
        if lease.lost.is_set() or sink.fenced:
            return _lost(conn, job_id, worker, lease)
        return _finish(conn, result, job_log.seq + 1, lease, sink.take_held())


def _not_claimed(conn: Any, job_id: str, worker: str) -> str:
    """Cancelled before it started, or (after a Redis failover) claimed by us with the reply lost."""
    status, owner = (v.decode() if v else None for v in conn.hmget(store.key(job_id), "status", "worker"))
    if status == RUNNING and owner == worker:  # its workspace went with the lost reply
        store.end_unrun(conn, job_id, ERROR, f"worker {worker} lost the reply taking it "
                        "(Redis failed over); not retried", (RUNNING,))
        return ERROR
    return "skipped: cancelled before it started"


def _save_artifacts(conn: Any, lease: Lease, job_id: str, items: list) -> None:
    """Store the artifacts through a short outage; drop them once the job is lost."""
    try:
        _retrying(lambda: store.save_artifacts(conn, job_id, items), give_up=lease.lost)
    except connection_lost():
        pass


def _retrying(call: Callable[[], T], *, give_up: threading.Event | None = None) -> T:
    """``call()``, tried again while Redis does not answer (until ``give_up`` is set: then
    the last error is raised)."""
    delay = RETRY_DELAY
    while True:
        try:
            return call()
        except connection_lost() as exc:
            if give_up is not None and give_up.is_set():
                raise
            if delay == RETRY_DELAY:
                log.warning("Redis does not answer (%s); trying again", exc)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def _finish(conn: Any, result: JobResult, seq: int, lease: Lease,
            held: list[tuple[str, dict[str, bytes | str]]]) -> str:
    """Store the result and the log's held events, waiting through a Redis outage while the
    lease holds."""
    lease.ending = True  # from here on, a renewal that finds the job ended found our finish
    try:
        done = _retrying(lambda: store.finish(conn, result, seq=seq, log_entries=held),
                         give_up=lease.lost)
    except connection_lost():
        return _lost(conn, result.id, lease.worker, lease)
    if not done:
        log.warning("job %s was ended by someone else before it finished", result.id)
    else:
        log.info("job %s %r: %s in %.2fs", result.id, result.name, result.status, result.duration)
    return result.status


def _lost(conn: Any, job_id: str, worker: str, lease: Lease) -> str:
    """The job stopped being ours mid-run: end it `error` if nobody has yet, store nothing else."""
    why = lease.why or "its log was ended by someone else"
    try:
        store.end_unrun(conn, job_id, ERROR, f"worker {worker} stopped it: {why}; not retried",
                        (RUNNING,))
    except connection_lost():
        pass  # the reapers end it: its lease is gone
    log.warning("job %s: %s; its sandbox was stopped and it ends as error", job_id, why)
    return ERROR


@dataclass
class Lease:
    """A running job's lease as the worker holds it."""

    conn: Any
    job_id: str
    worker: str
    cancel: Cancel = field(default_factory=Cancel)
    #: set once the job is no longer this worker's (it stops its sandbox; nothing is stored)
    lost: threading.Event = field(default_factory=threading.Event)
    why: str = ""
    #: monotonic time the last renewal that went through was sent (Redis expires it later)
    renewed: float = field(default_factory=time.monotonic)
    #: called with ``conn`` after each renewal that went through (the job's log writes the
    #: events it holds)
    tick: Callable[[Any], None] | None = None
    #: set once the worker stores the job's end: the job ending is then no loss
    ending: bool = False


class Leases:
    """One thread per worker process renews the leases of the jobs it runs.

    Every RENEW_INTERVAL it renews each held job's lease and, when someone
    asked to cancel that job, sets the job's Cancel (which kills its sandbox);
    lines told to the job go to its workspace's inbox file. A lease not renewed
    for store.LEASE_TTL, or whose job someone else ended, is lost: the job's
    Cancel is set too, and ``lost``. One long-lived thread instead of one per
    job: a trivial job costs less.
    """

    def __init__(self) -> None:
        self._held: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def hold(self, conn: Any, job_id: str, worker: str) -> Iterator[Lease]:
        """Keep the job's lease while in this block (claimed just before: renewed now)."""
        lease = Lease(conn, job_id, worker)
        with self._lock:
            self._held[job_id] = lease
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="leases", daemon=True)
                self._thread.start()
        try:
            yield lease
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
                held = [lease for lease in self._held.values() if not lease.lost.is_set()]
            for lease in held:  # outside the lock: a dead link must not hold up hold()'s exit
                if self._renew(lease) and lease.tick is not None:
                    try:
                        lease.tick(lease.conn)
                    except Exception as exc:
                        log.warning("job %s: cannot write its log: %s", lease.job_id, exc)

    @staticmethod
    def _renew(lease: Lease) -> bool:
        """Renew the lease (or lose it); True if Redis answered and the job is still ours."""
        sent = time.monotonic()
        if sent - lease.renewed >= store.LEASE_TTL:
            _lose(lease, f"its lease ran out: no answer from Redis for {store.LEASE_TTL}s")
            return False
        try:
            answer, lines = store.renew(lease.conn, lease.job_id, lease.worker,
                                        inbox=has_workspace(lease.job_id))
            if lines:
                deliver(lease.job_id, lines)
        except Exception as exc:
            log.warning("job %s: cannot renew lease: %s", lease.job_id, exc)
            return False
        if answer is None:
            if not lease.ending:  # else its finish went through after the snapshot of held leases
                _lose(lease, "someone else ended it after its lease ran out")
            return False
        lease.renewed = sent
        if answer and not lease.cancel.is_set():
            lease.cancel.set()
        return True


def _lose(lease: Lease, why: str) -> None:
    lease.why = why
    lease.lost.set()
    log.warning("job %s: %s; stopping its sandbox", lease.job_id, why)
    lease.cancel.set()


LEASES = Leases()
