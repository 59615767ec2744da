"""@pytest.mark.sandbox: the test itself runs isolated, and its report comes back.

Each test writes a small test file with pytester and runs pytest on it in a
subprocess (which inherits this session's private state root), so what is
checked is what a user sees: outcomes, the assertion rewrite output,
captured output, and a crash that fails one test only, saying why.
"""

import os

import pytest

from .helpers import UNRELATED_PLUGINS_OFF

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root


def run(pytester, source, *args):
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF, "-rA", *args)


def test_pass_fail_error_skip_xfail_are_reported_as_usual(pytester):
    result = run(pytester, """
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        @pytest.mark.sandbox
        def test_passes():
            pass

        @pytest.mark.sandbox
        def test_fails():
            assert [1, 2, 3] == [1, 2, 4]

        @pytest.mark.sandbox
        def test_errors(broken):
            pass

        @pytest.mark.sandbox
        def test_skips():
            pytest.skip("not today")

        @pytest.mark.sandbox
        @pytest.mark.xfail(reason="known")
        def test_xfails():
            assert False
    """)
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_errors*",
        "E       RuntimeError: fixture broke",
        "*def test_fails():*",
        "E       assert [1, 2, 3] == [1, 2, 4]",
        "*At index 2 diff: 3 != 4*",
        "SKIPPED * not today",
    ])


def test_captured_output_comes_back_with_the_report(pytester):
    result = run(pytester, """
        import sys, pytest

        @pytest.mark.sandbox
        def test_prints():
            print("to stdout from inside")
            print("to stderr from inside", file=sys.stderr)
            assert False
    """)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*Captured stdout call*", "to stdout from inside",
        "*Captured stderr call*", "to stderr from inside",
    ])


def test_output_is_shown_live_with_capture_off(pytester):
    result = run(pytester, """
        import pytest

        @pytest.mark.sandbox
        def test_prints():
            print("uncaptured from inside")
    """, "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*uncaptured from inside*"])


@pytest.mark.parametrize("body, says", [
    ("import os; os.abort()", "*killed by SIGABRT*"),
    ("import ctypes; ctypes.string_at(0)", "*killed by SIGSEGV*"),
])
def test_a_crash_fails_that_test_only(pytester, body, says):
    result = run(pytester, f"""
        import pytest

        def test_before():
            pass

        @pytest.mark.sandbox
        def test_crashes():
            {body}

        def test_after():
            pass
    """)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([says, "*Fatal Python error*", "*test_crashes*"])


def test_a_memory_hog_is_killed_at_its_limit(pytester):
    result = run(pytester, """
        import pytest

        @pytest.mark.sandbox(memory="64m")
        def test_hog():
            chunks = []
            while True:
                chunks.append(bytearray(16 << 20))

        @pytest.mark.sandbox
        def test_next_one_runs():
            pass
    """)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*killed: memory limit 64 MiB exceeded*"])


def test_an_infinite_loop_is_killed_at_its_timeout(pytester):
    result = run(pytester, """
        import pytest

        @pytest.mark.sandbox(timeout="1s")
        def test_loops():
            while True:
                pass
    """)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*killed: wall time limit 1s exceeded*"])


def test_isolation_seen_from_inside(pytester):
    probe = "/srv/pytest-sandbox-write-probe"
    result = run(pytester, f"""
        import errno, os, socket, pytest

        @pytest.mark.sandbox
        def test_own_pid_namespace():
            assert os.getpid() != {os.getpid()}
            with open("/proc/1/comm") as f:
                assert f.read().strip() == "sandbox-init"

        @pytest.mark.sandbox
        def test_host_files_are_writable_and_writes_vanish():
            with open("/etc/pytest-sandbox-probe", "w") as f:
                f.write("only in this sandbox")
            with pytest.raises(OSError):
                open(__file__ + ".new", "w")
            with open("{probe}", "w") as f:
                f.write("gone after the test")

        @pytest.mark.sandbox
        def test_no_network():
            assert [name for _, name in socket.if_nameindex()] == ["lo"]
            with pytest.raises(OSError):
                socket.create_connection(("1.1.1.1", 53), timeout=2)
    """)
    result.assert_outcomes(passed=3)
    assert not os.path.exists(probe) and not os.path.exists("/etc/pytest-sandbox-probe")


def test_fixtures_and_tmp_path_work_inside(pytester):
    result = run(pytester, """
        import os, pytest

        @pytest.fixture(scope="module")
        def shared():
            return {"made_in": os.getpid()}

        def test_plain_first(shared):
            assert shared["made_in"] == os.getpid()

        @pytest.mark.sandbox
        def test_inside(shared, tmp_path, monkeypatch):
            monkeypatch.setenv("X", "1")
            (tmp_path / "f").write_text("scratch")
            assert (tmp_path / "f").read_text() == "scratch"
            assert shared["made_in"] != os.getpid()

        def test_plain_after(shared):
            assert shared["made_in"] == os.getpid()
    """)
    result.assert_outcomes(passed=3)


def test_module_fixture_torn_down_once_in_the_parent(pytester):
    pytester.makeconftest("""
        import os, pytest

        @pytest.fixture(scope="module")
        def resource():
            yield
            with open(os.path.join(os.environ["LOG_DIR"], "teardowns"), "a") as f:
                f.write(f"{os.getpid()}\\n")
    """)
    log_dir = pytester.mkdir("log")
    pytester.makepyfile(test_one="""
        import pytest

        def test_plain(resource):
            pass

        @pytest.mark.sandbox
        def test_marked_last_in_module(resource):
            pass
    """, test_two="def test_other(): pass")
    os.environ["LOG_DIR"] = str(log_dir)
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF)
    finally:
        del os.environ["LOG_DIR"]
    result.assert_outcomes(passed=3)
    assert len((log_dir / "teardowns").read_text().split()) == 1


def test_every_test_with_the_sandbox_option(pytester):
    result = run(pytester, """
        def test_unmarked_but_inside():
            with open("/proc/1/comm") as f:
                assert f.read().strip() == "sandbox-init"
    """, "--sandbox")
    result.assert_outcomes(passed=1)


def test_a_bad_marker_value_fails_with_the_field_named(pytester):
    result = run(pytester, """
        import pytest

        @pytest.mark.sandbox(memory="lots")
        def test_bad():
            pass

        @pytest.mark.sandbox(colour="blue")
        def test_unknown():
            pass
    """)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*invalid memory 'lots'*", "*invalid sandbox marker keyword 'colour'*"])
