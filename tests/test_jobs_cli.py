"""The queue's CLI for scripts: `submit` prints ids only, `jobs list` filters and prints JSON.

Real Redis; no worker (the jobs stay queued); the same through a daemon.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from jobs import connect, store

from .daemon_support import Daemon, local_cli
from .jobs_support import env, job_file, queue, redis_url, sandbox_cmd  # noqa: F401

MATRIX = """
    name = "{name}"
    image = "busybox"
    [matrix]
    N = ["1", "2"]
    [[steps]]
    name = "s"
    run = "true"
"""


@pytest.fixture
def conn(redis_url):
    return connect(redis_url)


@pytest.fixture
def cancel_afterwards(conn):
    """Ids to cancel when the test ends (nobody works their queue)."""
    ids: list[str] = []
    yield ids
    for job_id in ids:
        store.request_cancel(conn, job_id)


def test_submit_into_a_pipe_prints_only_the_ids(redis_url, queue, tmp_path, cancel_afterwards):
    path = job_file(tmp_path, MATRIX.format(name="piped"))
    proc = sandbox_cmd("submit", "--redis", redis_url, "--queue", queue, path)
    assert proc.returncode == 0 and proc.stderr == ""
    ids = proc.stdout.splitlines()
    cancel_afterwards.extend(ids)
    assert len(ids) == 2 and all(len(i) == 12 and int(i, 16) >= 0 for i in ids)


def test_submit_on_a_terminal_names_the_jobs_unless_quiet(redis_url, queue, tmp_path, cancel_afterwards):
    path = job_file(tmp_path, MATRIX.format(name="on a tty"))
    for extra, named in (((), True), (("--quiet",), False)):
        lines = on_a_terminal("submit", "--redis", redis_url, "--queue", queue, *extra, path)
        cancel_afterwards.extend(line.split()[0] for line in lines)
        assert len(lines) == 2
        assert all(("  on a tty (N=" in line) == named for line in lines), lines


def on_a_terminal(*args: str) -> list[str]:
    """Run `sandbox ARGS` with its stdout on a pseudo-terminal; the lines it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", *args], env=env(),
                            stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the last writer closed it
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert proc.wait(60) == 0, proc.stderr.read()
    proc.stderr.close()
    return out.decode().replace("\r\n", "\n").splitlines()


def test_jobs_list_filters_by_status_and_name_as_json(redis_url, conn, queue, tmp_path,
                                                      cancel_afterwards):
    tag = os.urandom(4).hex()
    ids = {}
    for name in (f"alpha-{tag}", f"beta-{tag}"):
        out = sandbox_cmd("submit", "--redis", redis_url, "--queue", queue,
                          job_file(tmp_path, MATRIX.format(name=name)))
        ids[name] = out.stdout.split()
        cancel_afterwards.extend(ids[name])
    store.request_cancel(conn, ids[f"beta-{tag}"][0])

    def listed(*flags: str) -> list[dict]:
        proc = sandbox_cmd("jobs", "list", "--redis", redis_url, "--json", *flags)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    rows = listed("--name", tag)
    assert sorted(r["id"] for r in rows) == sorted(ids[f"alpha-{tag}"] + ids[f"beta-{tag}"])
    assert set(rows[0]) == {"id", "name", "queue", "status", "worker", "owner", "submitted_at",
                            "started_at", "ended_at", "error"}
    assert isinstance(rows[0]["submitted_at"], float) and rows[0]["worker"] is None
    assert [r["submitted_at"] for r in rows] == sorted((r["submitted_at"] for r in rows), reverse=True)
    assert {r["id"] for r in listed("--name", f"beta-{tag}", "--status", "cancelled")} == \
        {ids[f"beta-{tag}"][0]}
    assert {r["id"] for r in listed("--name", tag, "--status", "queued", "-n", "2")} <= \
        set(ids[f"alpha-{tag}"] + ids[f"beta-{tag}"][1:])
    assert len(listed("--name", tag, "-n", "2")) == 2
    table = sandbox_cmd("jobs", "list", "--redis", redis_url, "--status", "cancelled", "--name", tag)
    assert table.stdout.splitlines()[0].split() == ["ID", "STATUS", "QUEUE", "WORKER", "SUBMITTED", "NAME"]
    assert [line.split()[:2] for line in table.stdout.splitlines()[1:]] == \
        [[ids[f"beta-{tag}"][0], "cancelled"]]


def test_a_bad_status_filter_is_one_line(redis_url):
    proc = sandbox_cmd("jobs", "list", "--redis", redis_url, "--status", "done")
    assert proc.returncode == 125 and proc.stderr.count("\n") == 1
    assert "invalid choice: 'done'" in proc.stderr and "cancelled" in proc.stderr


def test_the_same_through_the_daemon(tmp_path, needs_root, redis_url, queue, cancel_afterwards):
    d = Daemon(tmp_path, redis=redis_url).start()
    try:
        tag = os.urandom(4).hex()
        sub = d.cli("submit", "--queue", queue, job_file(tmp_path, MATRIX.format(name=f"d-{tag}")))
        ids = sub.stdout.decode().split()
        cancel_afterwards.extend(ids)
        assert sub.returncode == 0 and len(ids) == 2 and all(len(i) == 12 for i in ids)
        for flags in (("--json",), ("--json", "--status", "queued"), ("--status", "queued"),
                      ("--json", "--status", "passed"), ("--status", "nope")):
            here = local_cli("jobs", "list", "--redis", redis_url, "--name", tag, *flags)
            there = d.cli("jobs", "list", "--name", tag, *flags)
            assert (there.returncode, there.stdout, there.stderr) == \
                (here.returncode, here.stdout, here.stderr), flags
    finally:
        assert d.stop() == 0
