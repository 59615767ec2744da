"""Marked tests of a multi-threaded pytest run in its single-threaded twin (where.twin, twin).

A pytest-xdist worker (execnet's thread), pytest-timeout's thread method and
pytest-rerunfailures beside pytest-xdist (its status server's thread) make
pytest multi-threaded, and the engine never forks threads: the session
starts its twin, which collects the same tests and forks them into their
sandboxes. Each test runs a real pytest (with real pytest-xdist workers) in
a subprocess; a conftest notes which process made each sandbox
(``pytest_sandbox_ready`` is called where the sandbox is made) and with
what command (["pytest", nodeid]: a fork).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from jobs import connect
from jobs.store import list_jobs

from .helpers import UNRELATED_PLUGINS_OFF, cached, live_name, sandbox_cli, wait_for
from .jobs_support import ROOT, queue, redis_url, workers  # noqa: F401 - fixtures

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

HERMETIC = ("-p", "no:cacheprovider", "-p", "no:schemathesis", *UNRELATED_PLUGINS_OFF)
CONFTEST = """
    import os

    def pytest_sandbox_ready(item, sandbox):
        with open(os.path.join(str(item.config.rootpath), "made"), "a") as f:
            f.write(f"{item.name} {sandbox.spec.command[0]} {os.getpid()} {os.getppid()} "
                    f"{os.environ.get('PYTEST_XDIST_WORKER', '-')}\\n")
"""


def made(pytester) -> dict[str, tuple[str, int, int, str]]:
    """Test name: (the sandbox's command[0], the pid and parent of the process that made it,
    the xdist worker it belongs to)."""
    path = pytester.path / "made"
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        name, command, pid, ppid, worker = line.split()
        found[name] = (command, int(pid), int(ppid), worker)
    return found


def run(pytester, source: str, *args: str, timeout: float = 300):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess(*HERMETIC, "-rA", *args, timeout=timeout)


SUITE = """
    import os, sys, pytest

    @pytest.fixture(scope="session")
    def made_once_per_sandbox():
        # a session fixture first used by a sandboxed test is made in its sandbox, for it alone
        with open("/tmp/made-here", "x"):
            pass
        return os.getpid()

    @pytest.mark.sandbox
    @pytest.mark.parametrize("i", range(6))
    def test_isolated(i, made_once_per_sandbox, worker_id):
        assert os.getpid() < 10 and made_once_per_sandbox < 10
        assert worker_id == os.environ["PYTEST_XDIST_WORKER"]
        print(f"ran {i} on {worker_id}")

    @pytest.mark.sandbox
    def test_rewritten():
        assert [1, 2, 3] == [1, 2, 4]

    @pytest.mark.sandbox
    def test_aborts():
        sys.stdout.flush()
        os.abort()

    @pytest.mark.sandbox
    def test_segfaults():
        import ctypes
        ctypes.string_at(0)

    @pytest.mark.sandbox(memory="64m")
    def test_hogs():
        chunks = []
        while True:
            chunks.append(bytearray(16 << 20))

    @pytest.mark.sandbox(timeout="3s")
    def test_loops():
        while True:
            pass

    def test_plain():
        assert os.getpid() > 10
"""


def test_under_xdist_the_workers_twins_fork_the_marked_tests(pytester):
    result = run(pytester, SUITE, "-n", "2")
    result.assert_outcomes(passed=7, failed=5)
    result.stdout.fnmatch_lines_random([
        "E       assert [1, 2, 3] == [1, 2, 4]", "*At index 2 diff: 3 != 4*",
        "sandbox: the test process was killed by SIGABRT*", "*Fatal Python error: Aborted*",
        "sandbox: the test process was killed by SIGSEGV*",
        "*killed: memory limit 64 MiB exceeded*", "*killed: wall time limit 3s exceeded*",
        "ran * on gw*",
    ])
    seen = made(pytester)
    assert len(seen) == 11, seen
    assert {command for command, *_ in seen.values()} == {"pytest"}  # forks, not python -m pytest
    twins = {(pid, worker) for _, pid, _, worker in seen.values()}
    # one twin per worker that ran marked tests, itself a child of its worker
    assert len({pid for pid, _ in twins}) == len({worker for _, worker in twins}) <= 2
    assert all(ppid != pid for _, pid, ppid, _ in seen.values())


def test_a_twin_sees_the_workers_environment_and_directory_as_they_are_now(pytester):
    # -n 1: the tests run in order on one worker; the unsandboxed one changes what the
    # worker's environment and directory are when the marked one runs
    (pytester.path / "sub").mkdir()
    result = run(pytester, """
        import os, pytest

        def test_changes_the_worker():
            os.environ["SET_BY_AN_EARLIER_TEST"] = "yes"
            os.chdir("sub")

        @pytest.mark.sandbox
        def test_sees_it():
            assert os.environ["SET_BY_AN_EARLIER_TEST"] == "yes"
            assert os.path.basename(os.getcwd()) == "sub"
    """, "-n", "1")
    result.assert_outcomes(passed=2)


def test_loadgroup_node_ids_come_back_as_the_worker_names_them(pytester):
    result = run(pytester, """
        import pytest

        @pytest.mark.sandbox
        @pytest.mark.xdist_group("g")
        @pytest.mark.parametrize("i", range(3))
        def test_grouped(i):
            assert i != 2
    """, "-n", "2", "--dist", "loadgroup")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines_random(["PASSED *test_grouped[[]0[]]@g", "FAILED *test_grouped[[]2[]]@g*"])


def test_a_twin_that_cannot_start_leaves_the_tests_to_the_slow_path(pytester):
    pytester.makeconftest(CONFTEST + """
    import sys
    if "pytest_sandbox.twin" in sys.argv:
        raise RuntimeError("this conftest refuses to be collected by a twin")
    """)
    pytester.makepyfile("""
        import os, pytest

        @pytest.mark.sandbox
        def test_isolated():
            assert os.getpid() < 10
    """)
    result = pytester.runpytest_subprocess(*HERMETIC, "-n", "1", timeout=300)
    result.assert_outcomes(passed=1)
    assert {command for command, *_ in made(pytester).values()} == {sys.executable}
    result.stderr.fnmatch_lines(["pytest-sandbox: marked tests run as subprocesses in their "
                                 "sandboxes (slow): *twin could not start: it exited with status *",
                                 "*this conftest refuses to be collected by a twin*"])


def test_a_twin_that_dies_fails_its_test_and_the_next_test_gets_another(pytester):
    # the twin calls pytest_sandbox_ready: this one kills it while its test's sandbox runs
    pytester.makeconftest(CONFTEST + """
    import signal
    def pytest_sandbox_ready(item, sandbox):
        if item.name == "test_second":
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.sandbox
        def test_first():
            pass

        @pytest.mark.sandbox
        def test_second():
            pass

        @pytest.mark.sandbox
        def test_third():
            pass
    """)
    result = pytester.runpytest_subprocess(*HERMETIC, "-rA", "-n", "1", timeout=300)
    # a killed twin is a killed pytest: its sandbox's record and cgroup wait for gc
    assert sandbox_cli("gc").returncode == 0
    result.assert_outcomes(passed=2, errors=1)  # it died before test_second's setup reported
    result.stdout.fnmatch_lines(["*sandbox: this session's twin ended while it ran "
                                 "*test_second: it was killed by signal 9*"])


def test_a_thread_started_by_pytest_timeout_leaves_marked_tests_to_the_twin(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("""
        import os, pytest

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(3))
        def test_isolated(i):
            assert os.getpid() < 10
    """)
    result = pytester.runpytest_subprocess(*HERMETIC, "--timeout", "120", "--timeout-method",
                                           "thread", "-p", "no:xdist", timeout=300)
    result.assert_outcomes(passed=3)
    seen = made(pytester)
    assert {command for command, *_ in seen.values()} == {"pytest"}
    assert len({pid for _, pid, *_ in seen.values()}) == 1  # one twin for the session


def test_rerunfailures_beside_xdist_no_longer_keeps_tests_from_forking(pytester, monkeypatch):
    """Its status server's thread is in every session with pytest-xdist: here the session
    (no -n) is multi-threaded, its twin is not, and reruns still rerun."""
    site = cached("site", "pytest_rerunfailures.py")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(site), ROOT]))
    result = run(pytester, """
        import os, pytest

        ATTEMPTS = []

        @pytest.mark.sandbox
        @pytest.mark.flaky(reruns=2)
        def test_flaky():
            ATTEMPTS.append(1)  # its reruns run in its sandbox
            assert len(ATTEMPTS) == 2

        @pytest.mark.sandbox
        def test_isolated():
            assert os.getpid() < 10
    """)
    assert result.parseoutcomes() == {"passed": 2, "rerun": 1}
    seen = made(pytester)
    assert {command for command, *_ in seen.values()} == {"pytest"}, seen
    assert all(worker == "-" for *_, worker in seen.values())


def test_sandbox_redis_under_xdist_still_sends_tests_to_remote_workers(pytester, redis_url,
                                                                       queue, workers):
    workers.start()
    pytester.makeconftest(CONFTEST + f"""
    def pytest_sandbox_spec(item, fields):
        fields["env"]["PYTHONPATH"] = {ROOT!r}
        fields["seccomp"] = "unconfined"  # a batch's nested namespaces: see test_plugin_dispatch
    """)
    pytester.makepyfile("""
        import os, pytest

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(12))
        def test_remote(i):
            assert os.getpid() < 10
    """)
    result = pytester.runpytest_subprocess(*HERMETIC, "-n", "2", "--sandbox-redis", redis_url,
                                           "--sandbox-queue", queue, timeout=300)
    result.assert_outcomes(passed=12)
    assert not made(pytester)  # pytest_sandbox_ready is not called for remote tests
    # each xdist worker sends what it holds when a test's turn comes, not one test per batch
    batches = [job for job in list_jobs(connect(redis_url), 1000) if job.get("queue") == queue]
    assert 2 <= len(batches) < 12, [job.get("name") for job in batches]


KILLED = """
    import time, pytest

    @pytest.mark.sandbox(mounts=["{flag}:/flag:rw"])
    @pytest.mark.parametrize("i", range(3))
    def test_run(i):
        if i == 1:
            open("/flag/running", "w").close()
            time.sleep(300)
"""


def _started_until_running(pytester, tmp_path) -> tuple[subprocess.Popen, set[int]]:
    """pytest -n 1 on KILLED, until its sleeping test runs: the process, its descendants."""
    flag = tmp_path / "flag"
    flag.mkdir()
    os.chmod(flag, 0o777)
    pytester.makepyfile(KILLED.format(flag=flag))
    with open(tmp_path / "output", "wb") as output:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", *HERMETIC, "-n", "1"],
                                cwd=pytester.path, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (flag / "running").exists(), timeout=120)
        family = _descendants(proc.pid)
        names = {live_name(pid) for pid in family}
        assert {"sandbox-zygote", "sandbox-init", "sandbox-forker"} <= names, names
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, family


def test_a_killed_controller_takes_its_workers_twins_and_their_sandboxes_along(pytester,
                                                                                 tmp_path):
    proc, family = _started_until_running(pytester, tmp_path)
    proc.kill()
    proc.wait()
    # the worker, waiting for its twin, sees its controller gone: the twin ends the
    # test's sandbox and itself, cleanly (no gc needed), and the worker ends
    wait_for(lambda: not [pid for pid in family if live_name(pid) is not None], timeout=60)
    assert "running" not in sandbox_cli("ps").stdout.decode()


def test_a_killed_worker_takes_its_twin_and_its_sandboxes_along(pytester, tmp_path):
    proc, _family = _started_until_running(pytester, tmp_path)
    try:
        (worker,) = _children(proc.pid)
        twin_family = _descendants(worker)
        os.kill(worker, signal.SIGKILL)
        # the twin gets SIGTERM: it ends the test's sandbox and itself, cleanly
        wait_for(lambda: not [pid for pid in twin_family if live_name(pid) is not None],
                 timeout=60)
        # pytest-xdist reports the crash and runs the rest in a new worker, with a new twin
        assert proc.wait(300) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = (tmp_path / "output").read_text()
    assert "worker 'gw0' crashed while running" in output and "1 failed, 2 passed" in output, output


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        try:
            children = _children(todo.pop())
        except FileNotFoundError:
            continue
        found.update(children)
        todo.extend(children)
    return found


def test_pytest_timeout_signal_method_in_a_worker_stops_the_twins_test(pytester):
    # the worker's alarm interrupts its wait for the twin: the twin ends the test's sandbox
    # (or the test's own alarm, in there, came first), and serves the next test
    result = run(pytester, """
        import time, pytest

        @pytest.mark.sandbox
        def test_slow():
            time.sleep(60)

        @pytest.mark.sandbox
        def test_next():
            pass
    """, "-n", "1", "--timeout", "5", "--timeout-method", "signal")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*_ test_slow _*", "*Timeout*", "PASSED *test_next"])
