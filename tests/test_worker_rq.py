"""worker.main's RQ worker class: its heartbeat and state cost one write where RQ's cost several.

Real Redis (a private server, so its command counts are this test's alone), no
root and no worker process: the worker is made as ``sandbox worker`` makes it
and its methods are called as RQ's loop calls them between two jobs.
"""

from __future__ import annotations

import pytest

from worker import main

from .jobs_support import RedisServer


@pytest.fixture(scope="module")
def server():
    redis_server = RedisServer().start()
    yield redis_server
    redis_server.stop()


@pytest.fixture
def worker(server):
    made = main._make_worker(server.url, ["heartbeats"], None)
    made.connection.config_resetstat()
    yield made
    made.connection.delete(made.key)


def calls(worker, command: str) -> int:
    """How many times Redis has run ``command`` since the test's worker was made."""
    return worker.connection.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


def test_heartbeats_between_jobs_are_written_once_per_interval(worker):
    for _ in range(3):  # RQ's loop: after a job, before the dequeue, after it
        worker.heartbeat()
    assert calls(worker, "hset") == 1 and calls(worker, "expire") == 2
    assert 0 < worker.connection.ttl(worker.key) <= worker.worker_ttl + 60
    assert worker.connection.hget(worker.key, "last_heartbeat")


def test_a_longer_heartbeat_is_written_at_once(worker):
    worker.heartbeat()
    worker.heartbeat(worker.worker_ttl + 600)
    assert calls(worker, "hset") == 2
    assert worker.connection.ttl(worker.key) > worker.worker_ttl + 60


def test_a_heartbeat_is_written_again_after_the_interval(worker, monkeypatch):
    worker.heartbeat()
    monkeypatch.setattr(main, "HEARTBEAT_INTERVAL", 0.0)
    worker.heartbeat()
    assert calls(worker, "hset") == 2


def test_a_heartbeat_in_rqs_own_pipeline_goes_into_it(worker):
    worker.heartbeat()
    with worker.connection.pipeline() as pipe:
        worker.heartbeat(worker.worker_ttl + 60, pipeline=pipe)
        assert calls(worker, "hset") == 1  # not sent on its own
        pipe.execute()
    assert calls(worker, "hset") == 2


def test_the_state_is_written_when_it_changes(worker):
    worker.set_state("idle")
    worker.set_state("idle")
    assert calls(worker, "hset") == 1
    worker.set_state("busy")
    assert worker.connection.hget(worker.key, "state") == b"busy"
    assert worker.get_state() == "busy"
    worker.set_state("idle")
    assert calls(worker, "hset") == 3
