"""The next marked test's sandbox, made while the current one runs (where.local).

A prepared sandbox must be as fresh and as correct as one made at the
test's turn: its own namespaces and throwaway filesystem, the session as it
is at its turn, and nothing left behind when it is never used (-x, a
failure that stops the session). Each test runs pytest in a subprocess and
compares against PYTEST_SANDBOX_PREPARE=0 where the answer could differ.
"""

import itertools
import os

import pytest

from .helpers import UNRELATED_PLUGINS_OFF

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

CHAIN = """
    import os, pytest

    @pytest.mark.sandbox
    @pytest.mark.parametrize("i", range(6))
    def test_chain(i):
        # each test: a fresh /tmp and pid namespace, though made while the one before ran
        assert not os.path.exists("/tmp/left-by-the-previous-test")
        open("/tmp/left-by-the-previous-test", "w").close()
        print(f"pidns {os.readlink('/proc/self/ns/pid')}")
"""


def run(pytester, source, *args, prepare=True):
    pytester.makepyfile(source)
    os.environ["PYTEST_SANDBOX_PREPARE"] = "1" if prepare else "0"
    try:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF, "-rA", *args)
    finally:
        del os.environ["PYTEST_SANDBOX_PREPARE"]


def test_prepared_sandboxes_are_fresh_ones(pytester):
    result = run(pytester, CHAIN)
    result.assert_outcomes(passed=6)
    namespaces = [line.split()[-1] for line in result.stdout.lines if line.startswith("pidns ")]
    # a test's sandbox exists while the one before runs: neighbours never share one
    # (the kernel reuses a freed namespace's number later)
    assert len(namespaces) == 6 and all(a != b for a, b in itertools.pairwise(namespaces))
    assert os.readlink("/proc/self/ns/pid") not in namespaces


def test_x_stops_and_the_prepared_sandbox_is_not_left_behind(pytester):
    result = run(pytester, """
        import pytest

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(4))
        def test_stops(i):
            assert i != 1
    """, "-x")
    result.assert_outcomes(passed=1, failed=1)
    # this session's leak check (conftest) fails the test if a sandbox, mount or
    # cgroup of the prepared third test were left


def test_a_prepared_test_starts_early_only_when_nothing_can_stop_the_session(pytester, tmp_path):
    # a prepared test is let go as soon as the one before has ended, unless that one's
    # reports could stop the session (-x, --maxfail, --stepwise): then it never runs
    ran = tmp_path / "ran"
    ran.mkdir()
    os.chmod(ran, 0o777)
    source = f"""
        import pytest

        @pytest.mark.sandbox(mounts=["{ran}:/ran:rw"])
        @pytest.mark.parametrize("i", range(4))
        def test_note(i):
            open(f"/ran/{{i}}", "w").close()
            assert i != 1
    """
    for args, outcomes, expected in ((("-x",), dict(passed=1, failed=1), ["0", "1"]),
                                      (("--maxfail=1",), dict(passed=1, failed=1), ["0", "1"]),
                                      ((), dict(passed=3, failed=1), ["0", "1", "2", "3"])):
        for name in os.listdir(ran):
            os.unlink(ran / name)
        result = run(pytester, source, *args)
        result.assert_outcomes(**outcomes)
        assert sorted(os.listdir(ran)) == expected, args


def test_a_module_fixture_of_the_parent_is_torn_down_at_the_right_time(pytester, tmp_path):
    log = tmp_path / "log"
    source = f"""
        import pytest

        def note(text):
            with open({str(log)!r}, "a") as f:
                f.write(text + "\\n")

        @pytest.fixture(scope="module")
        def resource():
            note("up")
            yield
            note("down")

        def test_unsandboxed_uses_it(resource):
            note("unsandboxed")

        @pytest.mark.sandbox
        @pytest.mark.parametrize("i", range(3))
        def test_sandboxed(i):
            pass

        def test_unsandboxed_again(resource):
            note("unsandboxed again")
    """
    for prepare in (True, False):
        log.write_text("")
        result = run(pytester, source, prepare=prepare)
        result.assert_outcomes(passed=5)
        assert log.read_text().split() == ["up", "unsandboxed", "unsandboxed", "again", "down"]


def test_prepared_tests_see_their_own_marker_and_limits(pytester):
    result = run(pytester, """
        import os, pytest

        @pytest.mark.sandbox(env={"WHICH": "first"})
        def test_first():
            assert os.environ["WHICH"] == "first"

        @pytest.mark.sandbox(env={"WHICH": "second"}, memory="64m")
        def test_second_is_prepared_with_its_own_spec():
            assert os.environ["WHICH"] == "second"
            bytearray(256 << 20)

        @pytest.mark.sandbox(env={"WHICH": "third"})
        def test_third():
            assert os.environ["WHICH"] == "third"
    """)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_second_is_prepared_with_its_own_spec*", "sandbox killed: memory limit 64 MiB*"])
