"""--sandbox-redis: marked tests go through the job queue to workers, reports come back.

Real Redis, real `sandbox worker` processes, real sandboxes on the workers;
the pytest session under test runs in a subprocess (pytester), as a user's
would. Each test uses its own queue, so only its own workers take its jobs.
"""

from __future__ import annotations

import json
import threading

import pytest

from jobs import connect, store, wait

from .jobs_support import ROOT, queue, redis_url, workers  # noqa: F401 - fixtures

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

#: The workers import this checkout (PYTHONPATH), and the host image shows it;
#: the inner pytest on a worker must import the same pytest_sandbox, even when
#: the editable install points at another checkout. These tests of the batch's
#: workings run unconfined (as the lines without a filter have always run);
#: test_under_the_default_profile_each_test_of_a_batch_has_namespaces_of_its_own
#: shows what the default profile gives (the nested profile, the default stacked).
CONFTEST = f"""
def pytest_sandbox_spec(item, fields):
    fields["env"]["PYTHONPATH"] = {ROOT!r}
    fields["seccomp"] = "unconfined"
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


def test_a_test_over_its_time_limit_fails_alone_saying_so(pytester, redis_url, queue, workers):
    workers.start()
    result = dispatch(pytester, redis_url, queue, """
        import pytest

        @pytest.mark.sandbox(timeout="2s")  # the test's own: its batch's start is not counted
        def test_loops():
            while True:
                pass

        @pytest.mark.sandbox
        def test_next_one_runs():
            pass
    """)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["sandbox killed: wall time limit 2s exceeded"])


def test_a_test_over_the_memory_limit_fails_alone(pytester, redis_url, queue, workers):
    workers.start()
    _registered(connect(redis_url), queue, 1)
    result = dispatch(pytester, redis_url, queue, """
        import pytest

        @pytest.mark.sandbox(memory="128m")
        def test_hogs():
            chunks = []
            while True:
                chunks.append(bytearray(16 << 20))

        @pytest.mark.sandbox(memory="128m")
        def test_next_one_runs():  # in the same batch, after it
            pass
    """)
    result.assert_outcomes(passed=1, failed=1)
    # its own cgroup in the batch's counted the kill: said as a sandbox of its own says it
    result.stdout.fnmatch_lines(["*test_hogs*", "sandbox killed: memory limit 128 MiB exceeded*"])


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
    (batch,) = queued_jobs(conn, queue)  # both tests, in one batch for the one worker
    assert wait(conn, batch["id"], timeout=60).status == "cancelled"


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


def _registered(conn, queue: str, count: int) -> None:
    """Wait until ``count`` workers listen on ``queue``: the session cuts one batch per worker."""
    from rq import Queue, Worker

    for _ in range(600):
        if Worker.count(queue=Queue(queue, connection=conn)) >= count:
            return
        threading.Event().wait(0.1)
    raise AssertionError(f"{count} workers never listened on {queue}")


def test_a_batch_runs_each_test_in_namespaces_of_its_own(pytester, redis_url, queue, workers):
    workers.start()
    _registered(connect(redis_url), queue, 1)
    result = dispatch(pytester, redis_url, queue, """
        import os, pytest

        @pytest.mark.sandbox
        def test_leaves_a_file_in_tmp():
            open("/tmp/left", "w").close()
            assert os.getppid() == 1  # its copy of the batch's pytest is pid 1 of its own

        @pytest.mark.sandbox
        def test_sees_a_fresh_tmp():
            assert not os.path.exists("/tmp/left")
            assert os.getppid() == 1
    """)
    result.assert_outcomes(passed=2)
    (batch,) = queued_jobs(connect(redis_url), queue)  # one worker: one batch, collected once
    assert batch["name"].endswith("::test_leaves_a_file_in_tmp and 1 more")


def test_under_the_default_profile_each_test_of_a_batch_has_namespaces_of_its_own(
        pytester, redis_url, queue, workers):
    """The batch's sandbox runs under the nested profile; each test's copy settles in its
    own namespaces and a root filesystem of its own (what a test writes, in /etc, /root
    or the workspace, the next one does not see), then stacks Docker's default on top:
    the test's code cannot make a user namespace, mount, or hold more capabilities than
    a sandbox's command."""
    workers.start()
    _registered(connect(redis_url), queue, 1)
    pytester.makeconftest(f"""
        def pytest_sandbox_spec(item, fields):
            fields["env"]["PYTHONPATH"] = {ROOT!r}
    """)
    pytester.makepyfile("""
        import ctypes, errno, os, pytest

        def status():
            with open("/proc/self/status") as f:
                return dict(line.rstrip("\\n").split(":\\t", 1) for line in f)

        LEFT = ("/tmp/left", "/etc/left", "/root/left", "/workspace/left")

        @pytest.mark.sandbox
        def test_leaves_files_behind():
            for path in LEFT:
                open(path, "w").close()
            assert os.getppid() == 1  # its copy of the batch's pytest is pid 1 of its own

        @pytest.mark.sandbox
        def test_sees_a_root_of_its_own_and_is_confined():
            assert os.environ["SANDBOX_NESTED_ROOT"] == "own"
            assert not any(os.path.exists(path) for path in LEFT) and os.getppid() == 1
            found = status()
            # the sandbox's filter (nested) and the default stacked on it
            assert found["Seccomp"] == "2" and found["Seccomp_filters"] == "2", found
            assert found["CapEff"] == found["CapBnd"] and not int(found["CapEff"], 16) & (1 << 21)
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.unshare(0x10000000) == -1 and ctypes.get_errno() == errno.EPERM
            assert libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == -1
            assert ctypes.get_errno() == errno.EPERM
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", "--sandbox-redis",
                                           redis_url, "--sandbox-queue", queue, timeout=300)
    result.assert_outcomes(passed=2)
    conn = connect(redis_url)
    (batch,) = queued_jobs(conn, queue)
    assert json.loads(store.read(conn, batch["id"])["spec"])["seccomp"] == "nested"


def test_a_free_worker_steals_the_second_half_of_a_slow_batch(pytester, redis_url, queue,
                                                              workers):
    conn = connect(redis_url)
    workers.start()
    workers.start()
    _registered(conn, queue, 2)
    result = dispatch(pytester, redis_url, queue, """
        import time, pytest

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(6))
        def test_fast(i):
            pass

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(6))
        def test_slow(i):
            time.sleep(1.5)
    """)
    result.assert_outcomes(passed=12)
    names = sorted(job["name"].split("::")[-1] for job in queued_jobs(conn, queue))
    # one batch per worker; the one with the fast tests ends first, and its worker takes
    # the slow batch's last tests that had not started
    assert len(names) == 3, names
    assert names[:2] == ["test_fast[0] and 5 more", "test_slow[0] and 5 more"]
    assert names[2].startswith("test_slow[") and names[2] != "test_slow[0] and 5 more", names


def test_a_batch_asks_for_a_user_namespace_only_when_its_tests_do(pytester, redis_url, queue,
                                                                 workers):
    """Without userns in the marker, the batch takes its worker's default (SANDBOX_USERNS): a
    session whose own default is the host's does not override a worker set to auto."""
    workers.start()
    _registered(connect(redis_url), queue, 1)
    result = dispatch(pytester, redis_url, queue, """
        import pytest

        @pytest.mark.sandbox
        def test_plain():
            pass

        @pytest.mark.sandbox(userns="auto")
        def test_own_namespace():
            pass
    """)
    result.assert_outcomes(passed=2)
    conn = connect(redis_url)
    asked = {job["name"].rpartition("::")[2]: json.loads(store.read(conn, job["id"])["spec"])["userns"]
             for job in queued_jobs(conn, queue)}
    assert asked == {"test_plain": None, "test_own_namespace": "auto"}


@pytest.mark.parametrize("userns", ["host", "auto"])
def test_each_test_of_a_batch_has_a_cgroup_of_its_own(pytester, redis_url, queue, workers, userns):
    """The batch's sandbox is delegated a cgroup subtree; each test runs in a cgroup of its own
    there, with its own limits (a fork bomb meets the test's pids limit, not the batch's), and
    its Result counts what the test used alone. Under a user namespace too (the subtree is
    given to the namespace's root)."""
    workers.start()
    _registered(connect(redis_url), queue, 1)
    results = pytester.path / "results.json"
    pytester.makeconftest(CONFTEST + f"""
import json

def pytest_sandbox_result(item, result):
    path = {str(results)!r}
    try:
        with open(path) as f:
            seen = json.load(f)
    except FileNotFoundError:
        seen = {{}}
    seen[item.name] = [result.peak_memory, result.pids_peak, result.pids_limited]
    with open(path, "w") as f:
        json.dump(seen, f)
""")
    pytester.makepyfile(f"""
        import errno, os, time, pytest

        def own_cgroup(index):
            with open("/proc/self/cgroup") as f:
                lines = f.read().splitlines()
            # v1's memory and pids hierarchies, or v2's one
            mine = ([line for line in lines if line.split(":")[1] in ("memory", "pids")]
                    or [line for line in lines if line.startswith("0::")])
            assert mine and all(line.endswith(f"/delegated/test-{{index}}") for line in mine), lines

        @pytest.mark.sandbox(pids=16, userns={userns!r})
        def test_forks_to_its_own_limit():
            own_cgroup(0)
            children = []
            with pytest.raises(BlockingIOError):
                while True:
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(60)
                        os._exit(0)
                    children.append(pid)
            assert 5 < len(children) < 16

        @pytest.mark.sandbox(pids=16, userns={userns!r})
        def test_holds_memory():
            own_cgroup(1)
            data = b"x" * (96 << 20)
            assert len(data) == 96 << 20

        @pytest.mark.sandbox(pids=16, userns={userns!r})
        def test_comes_after_both():
            own_cgroup(2)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", "--sandbox-redis",
                                           redis_url, "--sandbox-queue", queue, timeout=300)
    result.assert_outcomes(passed=3)
    (batch,) = queued_jobs(connect(redis_url), queue)
    assert batch["name"].endswith("::test_forks_to_its_own_limit and 2 more")
    seen = json.loads(results.read_text())
    MiB = 1 << 20
    _, fork_pids, fork_limited = seen["test_forks_to_its_own_limit"]
    assert fork_limited and 5 < fork_pids <= 16, seen
    assert seen["test_holds_memory"][0] >= 96 * MiB, seen
    # the one after counts only its own use: neither the batch's pytest nor the test before
    peak, pids, limited = seen["test_comes_after_both"]
    assert peak < 64 * MiB and pids <= 3 and not limited, seen
