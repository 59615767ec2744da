"""A job's services: real sandboxes on the job's own network, up before the steps, gone after."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from jobs import Cancel, connect, load_job_file, run_job, run_local, store, submit, wait
from jobs.logstream import follow
from sandbox.network import registry

from .jobs_support import (  # noqa: F401
    job_file,
    queue,
    redis_url,
    sandbox_cmd,
    workers,
)

pytestmark = pytest.mark.root

REDIS = "redis-server --save '' --appendonly no --protected-mode no"


def job_networks() -> list[str]:
    return [n.name for n in registry.list_networks() if n.name.startswith("job-")]


def run_file(tmp_path, text, files=None, **kw):
    (spec,) = load_job_file(job_file(tmp_path, text, files))
    events = []
    return run_job(spec, on_event=events.append, **kw), events


def test_steps_reach_a_ready_service_by_name_and_it_is_gone_after(tmp_path):
    result, events = run_file(tmp_path, f"""
        name = "with redis"
        image = "host"
        [services.redis]
        command = "{REDIS}"
        ready = "redis-cli ping"
        [[steps]]
        name = "write"
        run = "redis-cli -h redis set greeting hello"
        [[steps]]
        name = "read"
        run = "redis-cli -h redis get greeting"
    """)
    assert result.status == "passed", result
    out = b"".join(e.data for e in events if e.kind == "out" and e.step == "read")
    assert out == b"hello\n"
    (svc,) = result.services
    assert svc.name == "redis" and svc.status == "ready" and svc.ready_in > 0
    ready = [e for e in events if e.kind == "service"]
    assert [(e.fields["service"], e.fields["state"]) for e in ready] == [("redis", "ready")]
    assert events.index(ready[0]) < min(i for i, e in enumerate(events) if e.kind == "step-start")
    served = b"".join(e.data for e in events if e.kind == "out" and e.fields.get("service") == "redis")
    assert b"Ready to accept connections" in served  # its output, under its name
    assert job_networks() == []


def test_dependencies_start_first_and_ready_port_waits_for_the_port(tmp_path):
    result, events = run_file(tmp_path, f"""
        name = "two services"
        image = "host"
        [services.cache]
        command = "redis-cli -h store set from-cache yes && touch /tmp/done && exec sleep 600"
        ready = "test -f /tmp/done"
        depends_on = ["store"]
        [services.store]
        command = "sleep 0.3; exec {REDIS}"
        ready_port = 6379
        [[steps]]
        name = "check"
        run = "redis-cli -h store get from-cache"
    """)
    assert result.status == "passed", result
    assert [e.fields["service"] for e in events if e.kind == "service"] == ["store", "cache"]
    assert b"yes\n" in b"".join(e.data for e in events if e.kind == "out" and e.step == "check")


def test_a_service_that_never_gets_ready_fails_the_job_with_its_last_lines(tmp_path):
    result, _ = run_file(tmp_path, """
        name = "never ready"
        image = "busybox"
        [services.slow]
        command = "echo starting up; echo still going; exec sleep 600"
        ready = "echo not yet; false"
        ready_timeout = "1s"
        [[steps]]
        name = "test"
        run = "true"
    """)
    assert result.status == "error" and [s.status for s in result.steps] == ["skipped"]
    assert "service 'slow' was not ready after 1s (ready: echo not yet; false)" in result.error
    assert "    starting up\n    still going" in result.error
    assert "its last check (echo not yet; false) said: not yet" in result.error
    assert result.services[0].status == "not_ready"
    assert job_networks() == []


def test_what_the_last_check_said_is_that_of_the_last_one_that_finished(tmp_path):
    """Checks of 0.4 s each: the 1 s timeout comes in the middle of the third, whose
    output is not written yet; the job says what the second one said."""
    result, _ = run_file(tmp_path, """
        name = "slow checks"
        image = "busybox"
        [services.slow]
        command = "exec sleep 600"
        ready = "sleep 0.4; echo not yet; false"
        ready_timeout = "1s"
        [[steps]]
        name = "test"
        run = "true"
    """)
    assert result.status == "error", result.error
    assert "its last check (sleep 0.4; echo not yet; false) said: not yet" in result.error


def test_a_service_that_cannot_start_is_an_error_naming_it(tmp_path):
    result, _ = run_file(tmp_path, """
        name = "no such command"
        image = "busybox"
        [services.ghost]
        command = ["no-such-server"]
        [[steps]]
        name = "test"
        run = "true"
    """)
    assert result.status == "error" and "service 'ghost' ended before it was ready" in result.error
    assert result.services[0].status == "failed"


def test_a_service_that_dies_during_the_steps_is_reported(tmp_path):
    result, events = run_file(tmp_path, """
        name = "dies"
        image = "busybox"
        [services.flaky]
        command = "sleep 0.2; echo going away; exit 3"
        [[steps]]
        name = "outlive it"
        run = "sleep 1.5; echo done"
    """)
    assert result.status == "passed"
    (svc,) = result.services
    assert svc.status == "exited" and svc.exit_code == 3 and "while the job ran" in svc.message
    states = [(e.fields["service"], e.fields["state"]) for e in events if e.kind == "service"]
    assert states == [("flaky", "ready"), ("flaky", "exited")]


def test_the_job_s_timeout_and_cancel_bound_the_wait_for_a_service(tmp_path):
    never_ready = """
        name = "slow service"
        image = "busybox"
        {timeout}
        [services.slow]
        command = "exec sleep 600"
        ready = "false"
        [[steps]]
        name = "test"
        run = "true"
    """
    result, _ = run_file(tmp_path, never_ready.format(timeout='timeout = "1s"'))
    assert result.status == "timed_out", result
    assert "the job's timeout ran out while service 'slow' started" in result.error
    (spec,) = load_job_file(job_file(tmp_path, never_ready.format(timeout="")))
    cancel = Cancel()
    threading.Timer(0.5, cancel.set).start()
    result = run_local(spec, cancel=cancel)
    assert result.status == "cancelled" and [s.status for s in result.steps] == ["cancelled"]
    assert result.services[0].status == "skipped" and job_networks() == []


def test_a_cancel_tears_the_services_down(tmp_path):
    (spec,) = load_job_file(job_file(tmp_path, f"""
        name = "cancelled"
        image = "host"
        [services.redis]
        command = "{REDIS}"
        ready = "redis-cli ping"
        [[steps]]
        name = "wait"
        run = "echo started; sleep 60"
    """))
    cancel = Cancel()

    def on_event(event):
        if event.data == b"started\n":
            threading.Thread(target=cancel.set).start()

    result = run_local(spec, on_event=on_event, cancel=cancel)
    assert result.status == "cancelled" and result.services[0].status == "ready"
    assert job_networks() == []


def test_matrix_jobs_get_their_own_services(redis_url, queue, workers, tmp_path):
    workers.start("--concurrency", "2")
    conn = connect(redis_url)
    specs = load_job_file(job_file(tmp_path, f"""
        name = "matrix"
        image = "host"
        [matrix]
        N = ["1", "2"]
        [services.redis]
        command = "{REDIS}"
        ready = "redis-cli ping"
        [[steps]]
        name = "count"
        run = "redis-cli -h redis incr visits; sleep 1; redis-cli -h redis get visits"
    """))
    ids = [submit(conn, spec, queue=queue) for spec in specs]
    for job_id in ids:
        result = wait(conn, job_id, timeout=120)
        assert result.status == "passed", result
        out = b"".join(e.data for e in follow(conn, job_id, follow=False) if e.kind == "out"
                       and e.step == "count")
        assert out == b"1\n1\n"  # each job counted alone on its own Redis


def test_a_service_s_log_is_read_alone_through_the_queue(redis_url, queue, workers, tmp_path):
    workers.start()
    conn = connect(redis_url)
    (spec,) = load_job_file(job_file(tmp_path, """
        name = "talkative"
        image = "busybox"
        [services.chatty]
        command = "echo hello from the service; exec sleep 600"
        [[steps]]
        name = "step"
        run = "sleep 0.3; echo hello from the step"
    """))
    job_id = submit(conn, spec, queue=queue)
    assert wait(conn, job_id, timeout=60).status == "passed"
    folded = sandbox_cmd("jobs", "--redis", redis_url, "logs", job_id)
    assert "--- service chatty: ready" in folded.stdout and "hello from the step" in folded.stdout
    assert "hello from the service" not in folded.stdout
    alone = sandbox_cmd("jobs", "--redis", redis_url, "logs", job_id, "--service", "chatty")
    assert alone.returncode == 0 and alone.stdout == "hello from the service\n"


@pytest.mark.no_leak_check
def test_a_killed_worker_leaves_nothing_gc_does_not_remove(redis_url, queue, workers, tmp_path):
    """SIGKILL the worker while a service runs: gc removes the service's sandbox and the network."""
    from .conftest import leaks_since, snapshot

    before = snapshot()
    conn = connect(redis_url)
    first = workers.start()
    (spec,) = load_job_file(job_file(tmp_path, f"""
        name = "orphaned"
        image = "host"
        [services.redis]
        command = "{REDIS}"
        ready = "redis-cli ping"
        [[steps]]
        name = "wait"
        run = "echo started; sleep 60"
    """))
    job_id = submit(conn, spec, queue=queue)
    for event in follow(conn, job_id, timeout=60):
        if event.data == b"started\n":
            break
    assert len(job_networks()) == 1
    first.send_signal(signal.SIGKILL)
    first.wait()
    gc = sandbox_cmd("gc")
    assert gc.returncode == 0, gc.stderr
    assert "(its owner died)" in gc.stdout and job_networks() == []
    leaks = leaks_since(before)
    assert leaks == {}, leaks
    assert not os.listdir(os.path.join(os.environ["SANDBOX_RUN_DIR"], "jobs"))
    store.reap(conn)
    assert wait(conn, job_id, timeout=30).status == "error"
