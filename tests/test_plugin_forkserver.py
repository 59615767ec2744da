"""Marked tests forked by a fork server (where.served, sandbox.process.forkserver).

From the second sandboxed test in a row on, a copy of the pytest process
forks the tests' processes. That copy is the session as it was when it was
made, so it may only serve while nothing runs in the pytest process itself.
Each test runs pytest in a subprocess; a conftest hook in that session
notes which fork servers the pytest process has when each sandbox is ready
(its children named sandbox-forker that lead their own session).
"""

import os
import subprocess
import sys
import tempfile

import pytest

from pytest_sandbox.channel import channel_root, sweep

from .helpers import UNRELATED_PLUGINS_OFF, live_name, sandbox_cli, wait_for

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

CONFTEST = """
    import os

    def pytest_sandbox_ready(item, sandbox):
        me = os.getpid()
        with open(f"/proc/{me}/task/{me}/children") as f:
            children = f.read().split()
        servers = []
        for pid in children:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    name, rest = f.read().rsplit(")", 1)
            except FileNotFoundError:
                continue
            # a server leads its own session; a test's process it just forked (also our
            # child) has its name and session until it takes its own
            if name.endswith("(sandbox-forker") and rest.split()[3] == pid:
                servers.append(pid)
        print(f"\\nSERVERS {item.name} {','.join(servers) or '-'}")
"""


@pytest.fixture
def run(pytester, monkeypatch):
    """Run pytest on ``source`` in a subprocess, with the fork server on or off."""
    def run(source, *args, server=True):
        pytester.makeconftest(CONFTEST)
        pytester.makepyfile(source)
        monkeypatch.setenv("PYTEST_SANDBOX_FORK_SERVER", "1" if server else "0")
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF, "-s", *args)
    return run


def servers(result) -> dict[str, str]:
    """Test name: the fork servers the pytest process had when its sandbox was ready."""
    return dict(line.split()[1:] for line in result.stdout.lines if line.startswith("SERVERS "))


def test_a_run_of_marked_tests_shares_one_server(run):
    result = run("""
        import os, pytest

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(5))
        def test_run(i):
            assert not os.path.exists("/tmp/mine")  # each still has its own sandbox
            open("/tmp/mine", "w").close()
    """)
    result.assert_outcomes(passed=5)
    seen = servers(result)
    # the first test is forked by pytest; while it runs (after its sandbox is ready), the
    # second one's process is made by a new server, which then serves the rest
    assert seen.pop("test_run[0]") == "-"
    assert len(set(seen.values())) == 1 and "-" not in seen.values()


def test_without_the_server_pytest_forks_every_test(run):
    result = run("""
        import pytest

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(3))
        def test_run(i):
            pass
    """, server=False)
    result.assert_outcomes(passed=3)
    assert set(servers(result).values()) == {"-"}


def test_a_test_run_here_ends_the_server_its_copy_predates(run):
    result = run("""
        import pytest

        STATE = []

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(2))
        def test_before(i):
            assert STATE == []

        def test_here():
            STATE.append("changed in the pytest process")

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(3))
        def test_after(i):
            assert STATE == ["changed in the pytest process"]
    """)
    result.assert_outcomes(passed=6)
    seen = servers(result)
    before = seen["test_before[1]"]
    # the first test after the change is forked by pytest itself (the old server is gone
    # when its sandbox is ready), then a new server serves the others
    assert before != "-" and seen["test_after[0]"] == "-"
    assert seen["test_after[1]"] == seen["test_after[2]"] not in ("-", before)


def test_a_fixture_of_pytest_s_torn_down_between_two_marked_tests_ends_the_server(pytester,
                                                                                   tmp_path):
    log = tmp_path / "log"
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_one=f"""
        import pytest

        @pytest.fixture(scope="module")
        def resource():
            yield
            with open({str(log)!r}, "a") as f:
                f.write("torn down\\n")

        def test_here_sets_it_up(resource):
            pass

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(2))
        def test_sandboxed(i):
            pass
    """, test_two="""
        import pytest

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(2))
        def test_next_module(i):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF, "-s")
    # test_two's first test comes after pytest tore test_one's module down: a server made
    # while that module was set up would give it a session that still has it
    result.assert_outcomes(passed=5)
    seen = servers(result)
    assert seen["test_sandboxed[1]"] != "-"
    assert seen["test_next_module[0]"] not in ("-", seen["test_sandboxed[1]"])
    assert log.read_text() == "torn down\n"


def test_a_killed_pytest_takes_its_fork_server_and_its_tests_along(pytester, tmp_path):
    flag = tmp_path / "flag"
    flag.mkdir()
    os.chmod(flag, 0o777)
    pytester.makepyfile(f"""
        import time, pytest

        @pytest.mark.sandbox(mounts=["{flag}:/flag:rw"])
        @pytest.mark.parametrize("i", range(3))
        def test_run(i):
            if i == 2:  # served: the server exists by now
                open("/flag/running", "w").close()
                time.sleep(120)
    """)
    pytest_proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                    *UNRELATED_PLUGINS_OFF],
                                   cwd=pytester.path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (flag / "running").exists(), timeout=60)
        family = _descendants(pytest_proc.pid)
        names = {live_name(pid) for pid in family}
        assert {"sandbox-forker", "sandbox-zygote", "sandbox-init"} <= names, names
    finally:
        pytest_proc.kill()
        pytest_proc.wait()
    # the server dies with pytest, the zygote when its socket closes, the inits with the
    # zygote, and the tests with their inits' pid namespaces
    wait_for(lambda: not [pid for pid in family if live_name(pid) is not None], timeout=30)
    assert sandbox_cli("gc").returncode == 0  # the records and cgroups pytest could not remove
    # its report directories: removed by the next process that makes one
    pidns = os.stat("/proc/self/ns/pid").st_ino
    left = [name for name in os.listdir(channel_root() or tempfile.gettempdir())
            if name.startswith(f"pytest-sandbox-{pidns}-{pytest_proc.pid}-")]
    assert left and set(left) <= set(sweep(channel_root()))


def _descendants(pid: int) -> set[int]:
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except OSError:
                continue
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found

