"""worker.task.Leases: one thread renews the running job's lease and passes on a cancel.

Real Redis, no root and no worker process: the job is claimed with jobs.store
as a worker would, then held.
"""

from __future__ import annotations

import threading
import time

import pytest

from jobs import connect, parse_job, store
from jobs.events import JobLog
from jobs.execute import new_job_id
from jobs.logstream import RedisLogSink
from jobs.result import JobResult
from worker.task import Leases

from .jobs_support import redis_url  # noqa: F401

INTERVAL = 0.05


@pytest.fixture
def conn(redis_url):
    return connect(redis_url)


@pytest.fixture
def leases(monkeypatch):
    monkeypatch.setattr("worker.task.RENEW_INTERVAL", INTERVAL)
    leases = Leases()
    yield leases
    leases.close()


@pytest.fixture
def running_job(conn):
    """Make jobs claimed by worker "w1"; end them with the test (no reaper sees them)."""
    made = []

    def make() -> str:
        (spec,) = parse_job({"name": "lease", "image": "busybox",
                             "steps": [{"name": "s", "run": "true"}]})
        job_id = new_job_id()
        store.create(conn, job_id, spec, "q", None)
        assert store.claim(conn, job_id, "w1") is not None
        made.append(job_id)
        return job_id

    yield make
    for job_id in made:
        store.end_unrun(conn, job_id, "cancelled", "the test is over", ("running",))


def wait_until(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(INTERVAL / 2)
    return False


def test_a_held_job_keeps_its_lease_and_loses_it_after(conn, leases, running_job):
    job_id = running_job()
    lease = store.key(job_id, "lease")
    with leases.hold(conn, job_id, "w1") as held:
        conn.expire(lease, 1)  # as if it were about to run out
        assert wait_until(lambda: conn.ttl(lease) > 1), "the lease was not renewed"
        assert not held.cancel.is_set() and not held.lost.is_set()
    conn.delete(lease)
    time.sleep(INTERVAL * 4)
    assert not conn.exists(lease), "renewed after the job was let go"


def test_a_cancel_request_reaches_the_watched_step(conn, leases, running_job):
    job_id = running_job()
    killed = threading.Event()
    with leases.hold(conn, job_id, "w1") as held, held.cancel.watch(killed.set):
        assert store.request_cancel(conn, job_id) == "running"
        assert killed.wait(10) and held.cancel.is_set()
        assert not held.lost.is_set()


def lease_threads() -> int:
    return sum(t.name == "leases" for t in threading.enumerate())


def test_two_jobs_held_at_once_are_renewed_by_one_thread(conn, leases, running_job):
    first, second = running_job(), running_job()
    before = lease_threads()
    with leases.hold(conn, first, "w1"), leases.hold(conn, second, "w1"):
        for job_id in (first, second):
            conn.expire(store.key(job_id, "lease"), 1)
        assert wait_until(lambda: all(conn.ttl(store.key(j, "lease")) > 1 for j in (first, second)))
        assert lease_threads() == before + 1


def test_the_lease_thread_leaves_signals_to_the_main_thread(conn, leases, running_job):
    """RQ's SIGTERM handler runs in the main thread; the kernel must not hand SIGTERM to ours."""
    import signal

    with leases.hold(conn, running_job(), "w1"):
        thread = next(t for t in threading.enumerate() if t.name == "leases")
        with open(f"/proc/self/task/{thread.native_id}/status") as f:
            blocked = int(next(line for line in f if line.startswith("SigBlk:")).split()[1], 16)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        assert blocked & (1 << (sig - 1)), sig.name
    assert not blocked & (1 << (signal.SIGSEGV - 1))


def test_a_job_ended_by_someone_else_is_lost_and_its_sandbox_stopped(conn, leases, running_job):
    """A reaper ended the job (its lease ran out while the worker was cut off): stop, store nothing."""
    job_id = running_job()
    killed = threading.Event()
    with leases.hold(conn, job_id, "w1") as held, held.cancel.watch(killed.set):
        assert store.end_unrun(conn, job_id, "error", "reaped", ("running",))
        assert killed.wait(10) and held.lost.is_set()
        assert "someone else ended it" in held.why
    assert store.read(conn, job_id)["status"] == "error"
    assert not conn.exists(store.key(job_id, "lease")), "renewed a lease of a job it lost"


def test_a_lease_that_cannot_be_renewed_is_lost_within_its_time(conn, leases, running_job, monkeypatch):
    """No answer from Redis for the lease's time: someone may have ended the job, so it stops."""
    import redis

    from jobs import connection_options

    from .jobs_support import free_port

    monkeypatch.setattr(store, "LEASE_TTL", 1)
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    unreachable = redis.Redis.from_url(dead, **connection_options(dead, socket_timeout=0.5, retries=0))
    job_id = running_job()
    killed = threading.Event()
    with leases.hold(unreachable, job_id, "w1") as held, held.cancel.watch(killed.set):
        assert killed.wait(10) and held.lost.is_set()
        assert "no answer from Redis" in held.why
    assert store.read(conn, job_id)["status"] == "running"  # the reapers' to end, not the worker's


def test_a_renewal_writes_the_log_events_its_job_held(conn, leases, running_job):
    """A silent step's start is not held for long: the lease thread writes it after a renewal."""
    job_id = running_job()
    sink = RedisLogSink(conn, job_id, hold=True)
    log_key = store.key(job_id, "log")
    with leases.hold(conn, job_id, "w1") as held:
        held.tick = sink.flush_stale
        JobLog(sink).emit("step-start", step="s", run="sleep 60", index=0, count=1)
        assert wait_until(lambda: conn.xlen(log_key) == 1), "the held event was never written"
    assert conn.xrange(log_key)[0][1][b"kind"] == b"step-start"


def test_a_job_its_worker_ends_during_a_renewal_is_not_lost(conn, leases, running_job, caplog):
    """The renewal that finds the job ended after the worker's own finish is no loss."""
    job_id = running_job()
    with leases.hold(conn, job_id, "w1") as held:
        held.ending = True
        assert store.finish(conn, JobResult(id=job_id, name="lease", status="passed",
                                            started_at=0.0, ended_at=1.0))
        time.sleep(INTERVAL * 6)  # several renewals find it ended
        assert not held.lost.is_set() and not held.cancel.is_set()
    assert "someone else ended it" not in caplog.text
