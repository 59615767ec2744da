"""A job's state in Redis: taking it and ending it are one atomic step each.

Real Redis, no worker and no root: these call jobs.store the way a worker does.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from jobs import NoSuchJob, connect, parse_job, store
from jobs.execute import new_job_id
from jobs.result import JobResult

from .jobs_support import redis_url  # noqa: F401


@pytest.fixture
def conn(redis_url):
    return connect(redis_url)


def queued_job(conn, packed: bytes | None = b"packed workspace"):
    (spec,) = parse_job({"name": "store", "image": "busybox", "steps": [{"name": "s", "run": "true"}]})
    job_id = new_job_id()
    store.create(conn, job_id, spec, "q", packed)
    return job_id, spec


def test_a_claim_takes_a_queued_job_and_its_workspace_once(conn):
    job_id, spec = queued_job(conn)
    assert store.claim(conn, job_id, "w1") == (spec, b"packed workspace", {})
    fields = store.read(conn, job_id)
    assert fields["status"] == "running" and fields["worker"] == "w1" and fields["started_at"]
    lease = store.key(job_id, "lease")
    assert conn.get(lease) == b"w1" and 0 < conn.ttl(lease) <= store.LEASE_TTL
    assert conn.sismember(store.RUNNING_SET, job_id)
    assert not conn.exists(store.key(job_id, "workspace"))
    assert store.claim(conn, job_id, "w2") is None  # a second worker gets nothing
    assert conn.get(lease) == b"w1" and store.read(conn, job_id)["worker"] == "w1"
    store.end_unrun(conn, job_id, "cancelled", "the test is over", ("running",))


def test_a_job_cancelled_before_its_claim_is_not_taken(conn):
    job_id, _ = queued_job(conn)
    assert store.request_cancel(conn, job_id) == "queued"
    assert store.claim(conn, job_id, "w1") is None
    assert store.read(conn, job_id)["status"] == "cancelled"
    assert not conn.exists(store.key(job_id, "lease"))
    assert not conn.sismember(store.RUNNING_SET, job_id)


def test_finish_ends_a_running_job_once_with_its_eof(conn):
    job_id, _ = queued_job(conn, packed=None)
    store.claim(conn, job_id, "w1")
    assert store.result_of(conn, job_id) is None  # running: no result yet
    now = time.time()
    result = JobResult(id=job_id, name="store", status="failed", started_at=now, ended_at=now,
                       error="step 's' failed")
    assert store.finish(conn, result, seq=3)
    assert store.result_of(conn, job_id) == result
    (entry,) = conn.xrange(store.key(job_id, "log"))
    eof = entry[1]
    assert eof[b"kind"] == b"eof" and eof[b"seq"] == b"3" and eof[b"status"] == b"failed"
    assert eof[b"error"] == b"step 's' failed"
    assert 0 < conn.ttl(store.key(job_id)) <= store.JOB_TTL
    assert 0 < conn.ttl(store.key(job_id, "log")) <= store.JOB_TTL
    assert not conn.exists(store.key(job_id, "lease"))
    assert not conn.sismember(store.RUNNING_SET, job_id)
    # a reaper (or a second finish) that comes later changes nothing
    assert not store.finish(conn, dataclasses.replace(result, status="error"), seq=4)
    assert store.read(conn, job_id)["status"] == "failed"
    assert len(conn.xrange(store.key(job_id, "log"))) == 1


def test_an_unknown_job_is_no_such_job(conn):
    for call in (store.result_of, store.require, store.read, store.artifacts):
        with pytest.raises(NoSuchJob):
            call(conn, "no-such-job")
