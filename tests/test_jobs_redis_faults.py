"""A job's log across Redis faults: writes retried after a lost reply, a Redis restart,
a worker that lost its job. Real redis-server (its append-only file on where it restarts);
no root and no worker: these write and follow as a worker and a follower do.
"""

from __future__ import annotations

import threading
import time

import pytest

from jobs import connect, parse_job, store
from jobs.events import JobLog
from jobs.execute import new_job_id
from jobs.logstream import RedisLogSink, follow
from jobs.result import JobResult

from .jobs_support import RedisServer, redis_url  # noqa: F401


@pytest.fixture
def conn(redis_url):
    return connect(redis_url)


def running_job(conn) -> str:
    (spec,) = parse_job({"name": "faults", "image": "busybox", "steps": [{"name": "s", "run": "true"}]})
    job_id = new_job_id()
    store.create(conn, job_id, spec, "q", None)
    assert store.claim(conn, job_id, "w1") is not None
    return job_id


def finish(conn, job_id: str, seq: int) -> None:
    result = JobResult(id=job_id, name="faults", status="passed", started_at=0.0, ended_at=1.0)
    assert store.finish(conn, result, seq=seq)


def test_a_write_retried_after_its_reply_was_lost_is_stored_once(conn):
    job_id = running_job(conn)
    sink = RedisLogSink(conn, job_id)
    log = JobLog(sink)
    first = log.emit("note", data=b"one")
    sink.write(first)  # what a retry sends when the first reply never came
    log.emit("note", data=b"two")
    finish(conn, job_id, log.seq + 1)
    entries = conn.xrange(store.key(job_id, "log"))
    assert [e[0] for e in entries[:2]] == [b"0-1", b"0-2"]
    assert [e.data for e in follow(conn, job_id, follow=False)] == [b"one", b"two", b""]
    assert not sink.fenced


def test_a_worker_that_lost_its_job_writes_nothing_after_the_eof(conn):
    job_id = running_job(conn)
    sink = RedisLogSink(conn, job_id)
    log = JobLog(sink)
    log.emit("note", data=b"before")
    assert store.reap(conn) == []  # its lease holds
    conn.delete(store.key(job_id, "lease"))  # as if its worker was cut off for the lease's time
    assert store.reap(conn) == [job_id]
    assert store.renew(conn, job_id, "w1")[0] is None  # the worker learns it at its next renewal
    log.emit("note", data=b"after")  # what it still sends once its link is back
    assert sink.fenced
    events = list(follow(conn, job_id, follow=False))
    assert [(e.kind, e.data) for e in events] == [("note", b"before"), ("eof", b"")]
    assert events[-1].fields["status"] == "error" and "stopped mid-job" in events[-1].fields["error"]


def kinds_stored(conn, job_id: str) -> list[str]:
    return [fields[b"kind"].decode() for _, fields in conn.xrange(store.key(job_id, "log"))]


class CountingClient:
    """A redis client that counts its round trips: each command, and each pipeline once."""

    def __init__(self, conn) -> None:
        self.conn, self.round_trips = conn, 0

    def pipeline(self, *args, **kwargs):
        pipe = self.conn.pipeline(*args, **kwargs)
        execute = pipe.execute

        def counted(*a, **kw):
            self.round_trips += 1
            return execute(*a, **kw)
        pipe.execute = counted
        return pipe

    def __getattr__(self, name):
        command = getattr(self.conn, name)

        def counted(*args, **kwargs):
            self.round_trips += 1
            return command(*args, **kwargs)
        return counted


def test_held_events_go_with_the_next_output_and_with_the_finish(conn):
    """A step's start waits for its first output, its end for the finish: three events and
    the eof in two round trips, in order, each once (the finish retried after a lost reply)."""
    job_id = running_job(conn)
    client = CountingClient(conn)
    sink = RedisLogSink(client, job_id, hold=True)
    log = JobLog(sink)
    log.emit("step-start", step="s", run="echo hi", index=0, count=1)
    assert kinds_stored(conn, job_id) == [] and client.round_trips == 0
    log.output("stdout", b"hi\n", step="s")
    assert kinds_stored(conn, job_id) == ["step-start", "out"] and client.round_trips == 1
    log.emit("step-end", step="s", status="passed", exit_code=0)
    assert kinds_stored(conn, job_id) == ["step-start", "out"]
    held = sink.take_held()
    result = JobResult(id=job_id, name="faults", status="passed", started_at=0.0, ended_at=1.0)
    assert store.finish(client, result, seq=log.seq + 1, log_entries=held)
    assert client.round_trips == 2
    assert not store.finish(conn, result, seq=log.seq + 1, log_entries=held)  # a retry: refused
    events = list(follow(conn, job_id, follow=False))
    assert [(e.seq, e.kind) for e in events] == [(1, "step-start"), (2, "out"), (3, "step-end"),
                                                 (4, "eof")]
    assert not sink.fenced


def test_a_held_event_is_written_once_it_waited_and_dropped_once_fenced(conn):
    job_id = running_job(conn)
    sink = RedisLogSink(conn, job_id, hold=True)
    log = JobLog(sink)
    log.emit("note", data=b"waiting")
    sink.flush_stale(older_than=60)  # too young to go alone
    assert kinds_stored(conn, job_id) == []
    time.sleep(0.01)
    sink.flush_stale(older_than=0.005)
    assert kinds_stored(conn, job_id) == ["note"]
    assert store.end_unrun(conn, job_id, "error", "reaped", ("running",))  # an eof by someone else
    log.output("stdout", b"too late\n", step="s")
    assert sink.fenced and sink.take_held() == []
    assert kinds_stored(conn, job_id) == ["note", "eof"]


def test_followers_and_a_writer_go_on_across_a_redis_restart():
    """Redis (AOF on) is down longer than a client's own retries: each line is still seen once."""
    server = RedisServer(aof=True).start()
    try:
        conn = connect(server.url)
        job_id = running_job(conn)
        lines = 120
        half = threading.Event()
        follows = [Follower(server.url, job_id) for _ in range(3)]

        def write() -> None:  # steadily, through the outage: its writes wait for Redis
            writer = connect(server.url)
            log = JobLog(RedisLogSink(writer, job_id, give_up=lambda: False))
            for i in range(1, lines + 1):
                log.emit("out", step="s", stream="stdout", data=f"line {i}\n".encode())
                if i == lines // 2:
                    half.set()
                time.sleep(0.02)
            finish(writer, job_id, log.seq + 1)

        writer = threading.Thread(target=write)
        writer.start()
        assert half.wait(60)
        server.restart(down_for=7.0)  # past the clients' own retries (about 5s)
        writer.join(120)
        for f in follows:
            f.thread.join(120)
            assert f.error is None
            assert [e.seq for e in f.events] == list(range(1, lines + 2))
            assert [e.data for e in f.events[:-1]] == [f"line {i}\n".encode() for i in range(1, lines + 1)]
            assert f.events[-1].kind == "eof"
    finally:
        server.stop()


class Follower:
    """A thread following a job's log with a client of its own; its events, or its error."""

    def __init__(self, url: str, job_id: str) -> None:
        self.events: list = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(url, job_id))
        self.thread.start()

    def _run(self, url: str, job_id: str) -> None:
        try:
            self.events.extend(follow(connect(url), job_id, timeout=120))
        except BaseException as exc:
            self.error = exc
