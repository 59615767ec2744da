"""Jobs through Redis + RQ: real Redis, real worker processes, real sandboxes."""

from __future__ import annotations

import os
import signal

import pytest

from jobs import connect, load_job_file, run_job, store, submit, tell, wait
from jobs.logstream import follow

from .jobs_support import (  # noqa: F401
    RedisServer,
    Workers,
    free_port,
    job_file,
    queue,
    redis_url,
    sandbox_cmd,
    workers,
)

pytestmark = pytest.mark.root

SLEEPER = """
    name = "sleeper"
    image = "busybox"
    [[steps]]
    name = "sleep"
    run = "echo started; sleep 60"
"""


@pytest.fixture
def conn(redis_url):
    return connect(redis_url)


def submit_file(conn, tmp_path, text, queue, files=None):
    specs = load_job_file(job_file(tmp_path, text, files))
    return [submit(conn, spec, queue=queue) for spec in specs]


def wait_for_output(conn, job_id, data: bytes):
    for event in follow(conn, job_id, timeout=60):
        if event.data == data:
            return
    raise AssertionError(f"job {job_id} ended without printing {data!r}")


def test_a_passing_job_through_the_queue(redis_url, queue, workers, tmp_path):
    worker = workers.start()
    (spec,) = load_job_file(job_file(tmp_path, """
        name = "hello"
        image = "busybox"
        workspace = "ws"
        [[steps]]
        name = "greet"
        run = "cat greeting.txt; echo to stderr >&2"
    """, {"greeting.txt": "hello from the queue\n"}))
    events = []
    result = run_job(spec, redis=redis_url, queue=queue, on_event=events.append, timeout=60)
    assert result.status == "passed" and result.worker
    assert result.steps[0].result["exit_code"] == 0 and result.steps[0].peak_memory
    out = [(e.stream, e.data) for e in events if e.kind == "out"]
    assert out == [("stdout", b"hello from the queue\n"), ("stderr", b"to stderr\n")]
    assert events[-1].kind == "eof" and events[-1].fields["status"] == "passed"
    worker.send_signal(signal.SIGTERM)
    log = worker.communicate(timeout=30)[0]
    assert f"takes jobs from {queue}" in log
    assert f"job {result.id} 'hello': passed in" in log  # one line per job, with its verdict


def test_a_failing_job_reports_junit_failures_by_name(redis_url, queue, workers, tmp_path):
    workers.start()
    path = job_file(tmp_path, """
        name = "pytest"
        image = "host"
        workspace = "ws"
        [[steps]]
        name = "test"
        run = "python3 -m pytest -q -p no:cacheprovider --junitxml=report.xml"
        [results]
        junit = ["report.xml"]
        artifacts = ["report.xml"]
    """, {"test_two.py": """
        def test_fine():
            pass

        def test_broken():
            assert [1, 2] == [1, 3]
    """})
    proc = sandbox_cmd("submit", "--follow", "--redis", redis_url, "--queue", queue, path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "JUnit: 1 failed, 1 passed in" in proc.stdout
    assert "FAILED test_two::test_broken" in proc.stdout
    assert "assert [1, 2] == [1, 3]" in proc.stdout
    job_id = proc.stdout.split()[0]
    out = tmp_path / "artifacts"
    got = sandbox_cmd("jobs", "--redis", redis_url, "artifacts", job_id, "-o", str(out))
    assert got.returncode == 0 and (out / "report.xml").read_bytes().startswith(b"<?xml")


def test_a_job_that_times_out(conn, queue, workers, tmp_path):
    workers.start()
    (job_id,) = submit_file(conn, tmp_path, SLEEPER.replace('image = "busybox"',
                                                            'image = "busybox"\ntimeout = "1s"'), queue)
    result = wait(conn, job_id, timeout=60)
    assert result.status == "timed_out" and result.steps[0].status == "timed_out"


def test_a_running_job_is_cancelled(redis_url, conn, queue, workers, tmp_path):
    workers.start()
    (job_id,) = submit_file(conn, tmp_path, SLEEPER, queue)
    wait_for_output(conn, job_id, b"started\n")
    proc = sandbox_cmd("jobs", "--redis", redis_url, "cancel", job_id)
    assert proc.returncode == 0 and "cancelling" in proc.stdout
    result = wait(conn, job_id, timeout=30)
    assert result.status == "cancelled" and result.steps[0].status == "cancelled"
    assert sandbox_cmd("jobs", "--redis", redis_url, "wait", job_id).returncode == 130


def test_a_queued_job_is_cancelled_before_it_runs(conn, queue, tmp_path):
    (job_id,) = submit_file(conn, tmp_path, SLEEPER, queue)
    assert store.request_cancel(conn, job_id) == "queued"
    events = list(follow(conn, job_id, timeout=10))
    assert [e.kind for e in events] == ["eof"] and events[0].fields["status"] == "cancelled"


@pytest.mark.no_leak_check
def test_a_job_whose_worker_is_killed_ends_as_error(conn, queue, workers, tmp_path):
    """SIGKILL the worker mid-job: the job ends `error` (not retried); the next worker's gc cleans up."""
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from .conftest import leaks_since, snapshot

    before = snapshot()
    first = workers.start()
    (job_id,) = submit_file(conn, tmp_path, SLEEPER, queue)
    wait_for_output(conn, job_id, b"started\n")
    first.send_signal(signal.SIGKILL)
    first.wait()
    workers.start()  # cleans up what the first left, and reaps the job
    result = wait(conn, job_id, timeout=60)
    assert result.status == "error" and "stopped mid-job" in result.error
    assert store.read(conn, job_id)["status"] == "error"
    # the second worker is alive and working: a job through it proves its gc ran first
    (second_job,) = submit_file(conn, tmp_path, SLEEPER.replace("sleep 60", "true"), queue)
    assert wait(conn, second_job, timeout=60).status == "passed"
    workers.stop()
    # network links are host-wide (other suites may make some meanwhile); jobs use network none
    leaks = leaks_since(before)
    leaks.pop("network links", None)
    assert leaks == {}
    assert not os.listdir(os.path.join(os.environ["SANDBOX_RUN_DIR"], "jobs"))


def test_fifty_jobs_through_two_workers_lose_no_log_line(conn, queue, workers, tmp_path):
    lines = 40
    ids = submit_file(conn, tmp_path, f"""
        name = "many"
        image = "busybox"
        [matrix]
        N = {list(range(50))}
        [[steps]]
        name = "count"
        run = "i=1; while [ $i -le {lines} ]; do echo \\"job $N line $i\\"; echo \\"err $N $i\\" >&2; i=$((i+1)); done"
    """, queue)
    assert len(ids) == 50
    worker = workers.start("--concurrency", "2", "--burst")
    for n, job_id in enumerate(ids):
        result = wait(conn, job_id, timeout=120)
        assert result.status == "passed", result
        events = list(follow(conn, job_id, follow=False))
        assert [e.seq for e in events[:-1]] == list(range(1, len(events)))
        stdout = b"".join(e.data for e in events if e.stream == "stdout")
        stderr = b"".join(e.data for e in events if e.stream == "stderr")
        assert stdout.decode().splitlines() == [f"job {n} line {i}" for i in range(1, lines + 1)]
        assert stderr.decode().splitlines() == [f"err {n} {i}" for i in range(1, lines + 1)]
    assert worker.wait(60) == 0
    assert len({wait(conn, j).worker for j in ids}) == 2


def test_a_late_follower_sees_everything(redis_url, conn, queue, workers, tmp_path):
    workers.start()
    (job_id,) = submit_file(conn, tmp_path, """
        name = "chatty"
        image = "busybox"
        [[steps]]
        name = "one"
        run = "echo one"
        [[steps]]
        name = "two"
        run = "echo two"
    """, queue)
    early = [e.kind for e in follow(conn, job_id, timeout=60)]
    late = sandbox_cmd("jobs", "--redis", redis_url, "logs", "-f", job_id)
    assert late.returncode == 0
    assert late.stdout.splitlines()[:3] == ["==> [1/2] one: echo one", "one",
                                            late.stdout.splitlines()[2]]
    assert "two\n<== [2/2] two: passed" in late.stdout
    assert early == [e.kind for e in follow(conn, job_id, timeout=5)]
    assert early[-1] == "eof"


def test_an_unreachable_redis_is_one_clear_error(tmp_path):
    path = job_file(tmp_path, SLEEPER)
    proc = sandbox_cmd("submit", "--redis", f"redis://127.0.0.1:{free_port()}/0", path)
    assert proc.returncode == 125
    assert proc.stderr.startswith("sandbox: error: cannot reach Redis at redis://127.0.0.1:")
    assert proc.stderr.count("\n") == 1


def test_a_worker_retries_until_redis_comes_up(queue, tmp_path):
    server = RedisServer()
    pool = Workers(server.url, queue)
    try:
        proc = pool.start()
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "unreachable" in line:
                break
        assert "retrying in" in seen[-1]
        server.start()
        conn = connect(server.url)
        (job_id,) = submit_file(conn, tmp_path, SLEEPER.replace("sleep 60", "true"), queue)
        assert wait(conn, job_id, timeout=90).status == "passed"
    finally:
        pool.stop()
        server.stop()


def test_a_line_told_to_a_running_job_reaches_its_workspace(conn, queue, workers, tmp_path):
    workers.start()
    (job_id,) = submit_file(conn, tmp_path, """
        name = "listener"
        image = "busybox"
        workspace = "ws"
        timeout = "60s"
        [[steps]]
        name = "listen"
        run = "echo started; until grep -q steal /workspace/.sandbox-inbox 2>/dev/null; do sleep 0.1; done; cat /workspace/.sandbox-inbox"
    """, queue, files={"keep.txt": "x"})
    wait_for_output(conn, job_id, b"started\n")
    tell(conn, job_id, "steal 3")
    result = wait(conn, job_id, timeout=60)
    log = b"".join(e.data for e in follow(conn, job_id, timeout=5) if e.kind == "out")
    assert result.status == "passed" and log.endswith(b"steal 3\n")


def test_a_told_line_is_one_bounded_line(conn, queue, tmp_path):
    (job_id,) = submit_file(conn, tmp_path, SLEEPER, queue)
    for bad in ("two\nlines", "x" * (store.MAX_TOLD + 1)):
        with pytest.raises(ValueError, match="one line of at most"):
            tell(conn, job_id, bad)
    store.request_cancel(conn, job_id)
