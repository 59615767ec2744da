"""Integration tests of counter.py against the job's Redis service (host "redis")."""

import os

import pytest
import redis

import counter


@pytest.fixture
def client():
    conn = redis.Redis(host=os.environ.get("REDIS_HOST", "localhost"), port=6379)
    conn.flushdb()
    yield conn
    conn.flushdb()


def test_hits_are_counted(client):
    assert [counter.hit(client, "home") for _ in range(3)] == [1, 2, 3]


def test_top_pages_come_most_visited_first(client):
    for page, visits in (("home", 3), ("about", 1), ("docs", 5)):
        for _ in range(visits):
            counter.hit(client, page)
    assert counter.top(client, 2) == [("docs", 5), ("home", 3)]


def test_the_service_is_the_job_s_own(client):
    assert client.ping() and client.dbsize() == 0
