"""--sandbox-redis: marked tests go through the job queue to workers, reports come back.

Real Redis, real `sandbox worker` processes, real sandboxes on the workers;
the pytest session under test runs in a subprocess (pytester), as a user's
would. Each test uses its own queue, so only its own workers take its jobs.
"""

from __future__ import annotations

import threading

import pytest

from jobs import connect, store, wait

from .jobs_support import ROOT, queue, redis_url, workers  # noqa: F401 - fixtures

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

#: The workers import this checkout (PYTHONPATH), and the host image shows it;
#: the inner pytest on a worker must import the same pytest_sandbox, even when
#: the editable install points at another checkout.
CONFTEST = f"""
def pytest_sandbox_spec(item, fields):
    fields["env"]["PYTHONPATH"] = {ROOT!r}
"""

SUITE = """
import os, pytest

@pytest.mark.sandbox
def test_passes_in_its_own_pid_namespace():
    assert os.getpid() < 10

@pytest.mark.sandbox
def test_fails():
    assert [1, 2, 3] == [1, 2, 4]

@pytest.mark.sandbox
def test_crashes():
    os.abort()

def test_plain_runs_here():
    pass
"""


def dispatch(pytester, redis_url, queue, source, *args):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", "--sandbox-redis",
                                         redis_url, "--sandbox-queue", queue, *args, timeout=300)


def test_pass_fail_and_crash_come_back_from_workers(pytester, redis_url, queue, workers):
    workers.start()
    workers.start()
    result = dispatch(pytester, redis_url, queue, SUITE)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*def test_fails():*",
        "E       assert [1, 2, 3] == [1, 2, 4]",
        "*At index 2 diff: 3 != 4*",
        "*_ test_crashes _*",
        "sandbox: the test process was killed by SIGABRT*",
        "*Fatal Python error: Aborted*",
    ])


def test_a_timed_out_job_fails_that_test_saying_so(pytester, redis_url, queue, workers):
    workers.start()
    result = dispatch(pytester, redis_url, queue, """
        import pytest

        # the job's wall time covers the inner pytest's start and collection too: on a
        # loaded machine 2s ran out before the test's call began (an error at setup)
        @pytest.mark.sandbox(timeout="10s")
        def test_loops():
            while True:
                pass

        @pytest.mark.sandbox
        def test_next_one_runs():
            pass
    """)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["sandbox: remote job * on worker * timed out: *wall time limit*"])


def test_a_job_in_error_fails_that_test_saying_so(pytester, redis_url, queue, workers):
    workers.start()
    result = dispatch(pytester, redis_url, queue, """
        import pytest

        @pytest.mark.sandbox(image="no-such-image")
        def test_somewhere():
            pass
    """)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["sandbox: remote job * ended in error: *no-such-image*not found*"])


def test_host_only_options_are_refused_per_test(pytester, redis_url, queue):
    result = dispatch(pytester, redis_url, queue, """
        import pytest

        @pytest.mark.sandbox(network="bridge")
        def test_wants_a_network():
            pass
    """)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["sandbox spec: invalid network 'bridge': expected none with "
                                 "--sandbox-redis*"])



def queued_jobs(conn, queue: str) -> list[dict]:
    return [job for job in store.list_jobs(conn, 1000) if job.get("queue") == queue]


def test_jobs_left_when_the_session_stops_early_are_cancelled(pytester, redis_url, queue,
                                                              workers):
    workers.start()
    result = dispatch(pytester, redis_url, queue, """
        import time, pytest

        @pytest.mark.sandbox
        def test_fails_first():
            assert False

        @pytest.mark.sandbox
        def test_not_reached():
            time.sleep(300)
    """, "-x")
    result.assert_outcomes(failed=1)
    conn = connect(redis_url)
    (left,) = [job for job in queued_jobs(conn, queue) if job["name"].endswith("::test_not_reached")]
    assert wait(conn, left["id"], timeout=60).status == "cancelled"


def test_tests_wait_for_a_worker_that_starts_late(pytester, redis_url, queue, workers):
    conn = connect(redis_url)
    session_over = threading.Event()

    def start_worker_once_queued() -> None:
        while not queued_jobs(conn, queue):
            if session_over.wait(0.05):
                return
        workers.start()

    starter = threading.Thread(target=start_worker_once_queued, daemon=True)
    starter.start()
    try:
        result = dispatch(pytester, redis_url, queue, """
            import pytest

            @pytest.mark.sandbox
            def test_passes():
                pass
        """)
    finally:
        session_over.set()
        starter.join()
    result.assert_outcomes(passed=1)
    result.stderr.fnmatch_lines([f"pytest-sandbox: no worker listens on queue '{queue}'*"])
