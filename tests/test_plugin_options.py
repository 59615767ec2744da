"""How the plugin fits in a pytest session: options, other plugins, hosts that cannot isolate."""

import os

import pytest

from pytest_sandbox import probe

from .jobs_support import free_port

pytest_plugins = ["pytester"]

MARKED = """
    import pytest

    @pytest.mark.sandbox
    def test_marked():
        with open("/proc/1/comm") as f:
            assert f.read().strip() == "sandbox-init"
"""


@pytest.fixture
def not_root(monkeypatch):
    """This process (and an in-process pytest run) sees a non-root uid."""
    probe.why_not.cache_clear()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    yield
    probe.why_not.cache_clear()


def test_not_root_skips_marked_tests_with_the_reason(pytester, not_root):
    pytester.makepyfile(MARKED + """
    def test_plain():
        pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * sandboxes need root (running as uid 1000)*"])


def test_not_root_fails_marked_tests_with_sandbox_strict(pytester, not_root):
    pytester.makepyfile(MARKED + """
    def test_fixture(sandbox):
        pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--sandbox-strict")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*--sandbox-strict: sandboxes need root*"] * 2)


def test_disabled_plugin_leaves_no_trace(pytester):
    pytester.makepyfile("""
        def test_plain():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:sandbox", "--markers")
    assert "sandbox(" not in result.stdout.str()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:sandbox", "--sandbox")
    result.stderr.fnmatch_lines(["*unrecognized arguments: --sandbox*"])


def test_sandbox_redis_unreachable_is_one_clear_usage_error(pytester):
    pytester.makepyfile(MARKED)
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sandbox-redis", url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"ERROR: --sandbox-redis: cannot reach Redis at {url}: ")
    assert "passed" not in result.stdout.str()


@pytest.mark.root
def test_strict_markers_pass(pytester):
    pytester.makepyfile(MARKED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=1)


@pytest.mark.root
@pytest.mark.parametrize("args", [["-n", "2"], ["--sandbox-no-fork"]], ids=["xdist", "no-fork"])
def test_the_subprocess_path_reports_the_same(pytester, args):
    pytester.makeini("[pytest]\nsandbox_memory = 64m\n")
    pytester.makeconftest("""
        def pytest_sandbox_spec(item, fields):
            fields["env"]["FROM_HOOK"] = "yes"
    """)
    pytester.makepyfile(MARKED + """
    import os, sys

    @pytest.mark.sandbox
    def test_fails():
        print("captured inside")
        assert os.environ["FROM_HOOK"] == "no"

    # the slow path starts a whole pytest inside, which the limit counts too:
    # long enough for that, on a loaded machine
    @pytest.mark.sandbox(timeout="8s")
    def test_loops():
        while True:
            pass

    @pytest.mark.sandbox
    def test_hog():
        chunks = []
        while True:
            chunks.append(bytearray(16 << 20))

    def test_plain():
        pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers", *args)
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines_random([
        "E       AssertionError: assert 'yes' == 'no'", "captured inside",
        "*killed: wall time limit 8s exceeded*", "*killed: memory limit 64 MiB exceeded*",
    ])


@pytest.mark.root
def test_pytest_timeout_signal_method_stops_a_sandboxed_test(pytester):
    pytester.makepyfile(MARKED + """
    import time

    @pytest.mark.sandbox
    def test_slow():
        time.sleep(30)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--timeout", "3",
                                           "--timeout-method", "signal")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*stopped from outside its sandbox: Timeout*"])


@pytest.mark.root
def test_pytest_timeout_thread_method_runs_marked_tests_as_subprocesses(pytester):
    """Its timer thread makes pytest multi-threaded: the engine must not fork it."""
    pytester.makepyfile(MARKED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--timeout", "120",
                                           "--timeout-method", "thread")
    result.assert_outcomes(passed=1)
