"""How the plugin fits in a pytest session: options, other plugins, hosts that cannot isolate."""

import os
import textwrap

import pytest

from pytest_sandbox import probe

from .jobs_support import free_port, queue, redis_url, workers  # noqa: F401 - fixtures

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
def test_the_twin_and_the_subprocess_path_report_the_same(pytester, args):
    """Under pytest-xdist the workers' twins fork the tests; --sandbox-no-fork runs each
    as a pytest of its own in its sandbox."""
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
    outcomes = result.parseoutcomes()
    # the limit ends test_loops in its call, or (the slow path, when the inner pytest took
    # those 8s to start on a loaded machine) in its setup: a failure or an error, as a
    # plain sandbox's limit would report it at that point
    assert outcomes.get("passed") == 2 and outcomes.get("failed", 0) + outcomes.get("errors", 0) == 3
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
def test_pytest_timeout_thread_method_leaves_marked_tests_to_the_twin(pytester):
    """Its timer thread makes pytest multi-threaded: the engine must not fork it (its
    single-threaded twin forks the tests: tests/test_plugin_twin.py)."""
    pytester.makepyfile(MARKED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--timeout", "120",
                                           "--timeout-method", "thread")
    result.assert_outcomes(passed=1)


#: Options that shape how tests are collected and run, each checked by a test below.
SHAPING = ("-W", "error::DeprecationWarning", "-o", "flavour=salty", "-p", "extra_plugin",
           "--import-mode=importlib", "-c", "ci.ini", "--rootdir", ".", "--confcutdir", "tests",
           "--timeout", "77")
OPTIONS_SUITE = {
    "ci.ini": "[pytest]\nflavour = bland\n",
    "extra_plugin.py": """
        import pytest

        def pytest_addoption(parser):
            parser.addini("flavour", "a value -o sets")

        @pytest.fixture
        def from_the_plugin():
            return "here"
    """,
    # above --confcutdir: never loaded
    "conftest.py": """
        def pytest_configure(config):
            config.outer_conftest = True
    """,
    "tests/conftest.py": """
        import os

        def pytest_sandbox_spec(item, fields):  # a worker's inner pytest imports this checkout
            fields["env"]["PYTHONPATH"] = os.environ["PYTHONPATH"]
    """,
    "tests/test_shaped.py": """
        import os, sys, warnings, pytest

        def test_options_reached_this_session(request, from_the_plugin):
            config = request.config
            assert config.getini("flavour") == "salty"  # -o over -c ci.ini's value
            assert config.inipath.name == "ci.ini"
            assert not hasattr(config, "outer_conftest")  # --confcutdir
            assert config.getoption("timeout") == 77  # a plugin's option
            assert os.path.dirname(__file__) not in sys.path  # --import-mode=importlib
            assert from_the_plugin == "here"  # -p

        def test_w_makes_this_warning_an_error():
            warnings.warn(DeprecationWarning("old"))
    """,
}


@pytest.fixture(scope="module")
def plain_options_run() -> dict:
    """The plain run of OPTIONS_SUITE, made once for the paths' tests (each has the same files)."""
    return {}


@pytest.mark.root
@pytest.mark.parametrize("args", [["--sandbox"], ["--sandbox", "-n", "2"],
                                  ["--sandbox", "--sandbox-no-fork"], ["remote"]],
                         ids=["fork", "xdist-twin", "subprocess", "remote"])
def test_the_sessions_options_reach_every_path(pytester, monkeypatch, request, plain_options_run,
                                               args):
    pytester.makefile(".ini", ci=OPTIONS_SUITE["ci.ini"])
    for name, source in OPTIONS_SUITE.items():
        if name.endswith(".py"):
            path = pytester.path / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(textwrap.dedent(source))
    if args == ["remote"]:
        redis_url, queue, workers = (request.getfixturevalue(name)
                                     for name in ("redis_url", "queue", "workers"))
        workers.start()
        args = ["--sandbox", "--sandbox-redis", redis_url, "--sandbox-queue", queue]
    if "result" not in plain_options_run:
        plain_options_run["result"] = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                                                    "-rA", *SHAPING)
    plain = plain_options_run["result"]
    plain.assert_outcomes(passed=1, failed=1)
    plain.stdout.fnmatch_lines(["E       DeprecationWarning: old"])
    sandboxed = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", *SHAPING, *args,
                                              timeout=300)
    sandboxed.assert_outcomes(passed=1, failed=1)
    sandboxed.stdout.fnmatch_lines(["E       DeprecationWarning: old"])
