"""A sandboxed run reports what the same run reports without the sandbox, on every path.

Each test runs one suite twice with pytester, in subprocesses as a user
would: plain, then with ``--sandbox`` on one path (a fork of pytest for
each test, a fork server's, the slow path's ``python -m pytest`` inside the
sandbox, pytest-xdist's workers, whose twins fork the tests, remote workers
through the job queue), and compares the whole terminal output and the
JUnit XML, times aside. The suite has what one report per phase loses:
subtests (pytest's built-in ``subtests`` fixture), a skip inside a subtest,
warnings (one of them made an error by ``-W``), xfail and xpass, a rerun
(pytest-rerunfailures, from the test cache: see scripts/test-cache.sh),
captured output, ``record_property`` and ``--durations``.

A plain run's report depends only on the suite and the options, not on the
test that asks for it: each is made once for the module (``plain_runs``)
and compared, its directory's path masked, with the sandboxed runs of every
test that uses the same options.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

import pytest

from .helpers import UNRELATED_PLUGINS_OFF, cached
from .jobs_support import ROOT, queue, redis_url, workers  # noqa: F401 - fixtures

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

SUITE = """
    import sys, warnings
    import pytest

    class OwnWarning(UserWarning):
        pass

    def test_sub(subtests):
        for i in range(3):
            with subtests.test(i=i):
                assert i != 1

    def test_warn():
        warnings.warn(UserWarning("careful"))

    def test_own_warning_class():
        warnings.warn(OwnWarning("mine"))

    def test_warning_made_an_error():
        warnings.warn(FutureWarning("turned into an error by -W"))

    @pytest.mark.xfail(reason="known")
    def test_xfail():
        assert False

    @pytest.mark.xfail(reason="fixed meanwhile")
    def test_xpass():
        pass

    def test_skip_in_a_subtest(subtests):
        with subtests.test("skipped"):
            pytest.skip("not in this subtest")
        with subtests.test("runs", n=2):
            pass

    def test_property(record_property):
        record_property("answer", "42")
        print("said on stdout")
        print("said on stderr", file=sys.stderr)
        assert 6 * 7 == 43

    ATTEMPTS = []

    @pytest.mark.flaky(reruns=2)
    def test_flaky():
        ATTEMPTS.append(1)
        assert len(ATTEMPTS) == 2

    def test_passes():
        pass
"""
#: Notes how each sandbox was started: ["pytest", nodeid] is a fork of pytest (or of its
#: fork server), anything else the slow path's python -m pytest.
CONFTEST = """
    import os

    def pytest_sandbox_spec(item, fields):  # a worker's inner pytest imports this checkout
        fields["env"]["PYTHONPATH"] = os.environ["PYTHONPATH"]

    def pytest_sandbox_ready(item, sandbox):
        with open(os.path.join(str(item.config.rootpath), "started"), "a") as f:
            f.write(sandbox.spec.command[0] + "\\n")
"""
#: Plugins of this machine that rewrite pytest's own output stay out of the compared runs
#: (schemathesis, in the test extra for the daemon's API tests, reformats SUBFAILED lines),
#: and so do those that only make every session slower to start (UNRELATED_PLUGINS_OFF).
HERMETIC = ("-p", "no:cacheprovider", "-p", "no:schemathesis", *UNRELATED_PLUGINS_OFF)
ARGS = (*HERMETIC, "-rAR", "--tb=short", "-W", "error::FutureWarning",
        "--durations=0", "--durations-min=0",
        "-o", "verbosity_subtests=1",  # passed and skipped subtests are shown too
        "-o", "junit_family=xunit1")  # the family that has record_property's properties
LAST_LINE = ("4 failed, 5 passed, 1 skipped, 1 xfailed, 1 xpassed, 2 warnings, "
             "3 subtests passed, 1 rerun in Ns")


@pytest.fixture
def suite(pytester, monkeypatch):
    """The suite, with pytest-rerunfailures on the path of its sessions (and theirs inside).
    Its file has the same name in every test's directory, as the plain runs shared by the
    tests need."""
    site = cached("site", "pytest_rerunfailures.py")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(site), ROOT]))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    return pytester


@pytest.fixture(scope="module")
def plain_runs() -> dict:
    """The plain runs made so far in this module, by what was run and how: a key's run,
    made in one test's directory, is what it would be in another's (paths masked)."""
    return {}


def run(pytester, *args: str):
    """pytest on the suite: its result, its output with times and its directory masked, its
    JUnit XML (directory masked too)."""
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(*ARGS, f"--junitxml={xml}", *args, timeout=300)
    return result, masked(result.outlines, pytester.path), junit(xml, pytester.path)


def plain_run(pytester, plain_runs: dict, *args: str) -> tuple[list[str], str]:
    """The masked output and JUnit XML of the plain run with ``args``, made once a module."""
    key = ("suite", args)
    if key not in plain_runs:
        _, lines, xml = run(pytester, *args)
        plain_runs[key] = (lines, xml)
    return plain_runs[key]


def masked(lines: list[str], directory) -> list[str]:
    """``lines`` without times nor the run's directory (written as {dir}), nor the padding of
    a line they were in; the durations, which come slowest first, in name order."""
    lines = [re.sub(r"^=* *(.*\bin )\d+\.\d+s(?: \(\d+:\d+:\d+\))? *=*$", r"\1Ns",
                    _without_directory(line, str(directory)))
             for line in lines]
    start = next((i + 1 for i, line in enumerate(lines) if "slowest durations" in line), None)
    if start is None:
        return lines
    end = next(i for i in range(start, len(lines)) if not re.match(r"\d+\.\d+s ", lines[i]))
    durations = sorted(re.sub(r"^\d+\.\d+s", "Ns", line) for line in lines[start:end])
    return [*lines[:start], *durations, *lines[end:]]


def _without_directory(line: str, directory: str) -> str:
    """``line`` with {dir} for ``directory``, and without the padding of a separator line
    (``--- generated xml file: PATH ---``), whose width depended on the path's."""
    if directory not in line:
        return line
    return re.sub(r"^[-=]+ (.*) [-=]+$", r"\1", line.replace(directory, "{dir}"))


def junit(path, directory) -> str:
    """The JUnit XML without what differs between two runs (times, host, the run's directory),
    test cases in order."""
    root = ET.fromstring(path.read_text().replace(str(directory), "{dir}"))
    for element in root.iter():
        for name in ("time", "timestamp", "hostname"):
            element.attrib.pop(name, None)
    for suite in root.iter("testsuite"):
        cases = sorted(suite.findall("testcase"), key=lambda c: (c.get("classname"), c.get("name")))
        for case in cases:
            suite.remove(case)
        suite.extend(cases)
    return ET.tostring(root, encoding="unicode")


def unordered(lines: list[str]) -> list[str]:
    """The lines of a pytest-xdist run but its progress lines, whose letters come in the
    order the tests end, and without the names of the workers, which take tests in turn."""
    return [re.sub(r"\[gw\d+\]", "[gw]", line) for line in lines
            if not re.fullmatch(r"[.FEsxXRuy,-]+ *(\[ *\d+%\])?", line)]


def started(pytester) -> set[str]:
    path = pytester.path / "started"
    return set(path.read_text().split()) if path.exists() else set()


def test_the_plain_run_has_what_is_compared(suite, plain_runs):
    lines, xml = plain_run(suite, plain_runs, "-p", "no:xdist")  # the one compared below
    assert lines[-1] == LAST_LINE
    pytest.LineMatcher(lines).fnmatch_lines_random([
        "SUBFAILED(i=1) test_*.py::test_sub*", "SUBSKIPPED[[]skipped[]] [[]1[]] test_*.py:*",
        "FAILED test_*.py::test_sub*", "FAILED test_*.py::test_warning_made_an_error*",
        "E   FutureWarning: turned into an error by -W",
        "XFAIL test_*.py::test_xfail*", "XPASS test_*.py::test_xpass*",
        "RERUN test_*.py::test_flaky", "*UserWarning: careful", "*OwnWarning: mine",
        "said on stdout", "said on stderr", "*s call     test_*.py::test_sub",
    ])
    assert '<property name="answer" value="42" />' in xml


@pytest.mark.parametrize("path, args, env", [
    ("fork", ["--sandbox"], {"PYTEST_SANDBOX_FORK_SERVER": "0"}),
    ("server", ["--sandbox"], {}),
    ("subprocess", ["--sandbox", "--sandbox-no-fork"], {}),
])
def test_a_sandboxed_run_reports_as_the_plain_run(suite, plain_runs, monkeypatch, path, args,
                                                  env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # pytest-rerunfailures starts a thread in a session with pytest-xdist: none could be forked
    plain, plain_xml = plain_run(suite, plain_runs, "-p", "no:xdist")
    _, sandboxed, sandboxed_xml = run(suite, "-p", "no:xdist", *args)
    assert started(suite) == ({"pytest"} if path != "subprocess" else {sys.executable})
    assert sandboxed == plain
    assert sandboxed_xml == plain_xml


def test_under_xdist_a_sandboxed_run_reports_as_the_plain_run(suite):
    _, plain, plain_xml = run(suite, "-n", "2")
    _, sandboxed, sandboxed_xml = run(suite, "-n", "2", "--sandbox")
    assert started(suite) == {"pytest"}  # forked, by the workers' twins
    # which worker ends a test first decides the order of the tests in the output
    assert sorted(unordered(sandboxed)) == sorted(unordered(plain))
    assert sandboxed_xml == plain_xml


def test_through_the_queue_a_sandboxed_run_reports_as_the_plain_run(suite, plain_runs, redis_url,
                                                                      queue, workers):
    workers.start()
    workers.start()
    plain, plain_xml = plain_run(suite, plain_runs, "-p", "no:xdist")
    _, sandboxed, sandboxed_xml = run(suite, "-p", "no:xdist", "--sandbox",
                                      "--sandbox-redis", redis_url, "--sandbox-queue", queue)
    assert not started(suite)  # pytest_sandbox_ready is not called for remote tests
    assert sandboxed == plain
    assert sandboxed_xml == plain_xml


TRACEBACKS = """
    def inner():
        raise KeyError("deep")

    def test_chained():
        try:
            inner()
        except KeyError as exc:
            raise ValueError("while handling") from exc

    def test_assertion():
        values = {"a": 1, "b": 2}
        assert values == {"a": 1, "b": 3}
"""


@pytest.mark.parametrize("args, styles", [
    (["--sandbox"], ("long", "short", "line", "native", "no")),
    (["--sandbox", "--sandbox-no-fork"], ("long", "line", "native")),  # short: above
], ids=["fork", "subprocess"])
def test_each_traceback_style_is_the_plain_runs(pytester, plain_runs, args, styles):
    pytester.makepyfile(TRACEBACKS)
    for style in styles:
        common = (*HERMETIC, "-rA", f"--tb={style}", "-vv")
        if ("tracebacks", style) not in plain_runs:  # the styles both paths are compared in
            plain_runs["tracebacks", style] = masked(
                pytester.runpytest_subprocess(*common).outlines, pytester.path)
        sandboxed = masked(pytester.runpytest_subprocess(*common, *args, timeout=120).outlines,
                           pytester.path)
        assert sandboxed == plain_runs["tracebacks", style], style


def test_warnings_made_errors_by_w_error_fail_as_in_the_plain_run(pytester):
    pytester.makepyfile("""
        import warnings

        def test_warns():
            warnings.warn(UserWarning("now an error"))
    """)
    for args in ([], ["--sandbox"], ["--sandbox", "--sandbox-no-fork"]):
        result = pytester.runpytest_subprocess(*HERMETIC, "-W", "error", *args)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["E       UserWarning: now an error"])


@pytest.mark.parametrize("args", [["--sandbox"], ["--sandbox", "--sandbox-no-fork"]],
                         ids=["fork", "subprocess"])
def test_a_crash_after_some_reports_keeps_them_and_adds_the_crash(pytester, args):
    pytester.makepyfile("""
        import os, sys

        def test_crashes(subtests):
            with subtests.test("before"):
                print("a subtest that passed")
            with subtests.test("failing"):
                assert False, "a subtest that failed"
            sys.stdout.flush()
            os.abort()

        def test_after():
            pass
    """)
    result = pytester.runpytest_subprocess(*HERMETIC, "-rA", "-o",
                                           "verbosity_subtests=1", *args, timeout=120)
    assert result.outlines[-1].strip("= ").startswith(
        "2 failed, 1 passed, 1 subtests passed in"), result.outlines[-1]
    result.stdout.fnmatch_lines([
        "*_ test_crashes [[]failing[]] _*", "E   * a subtest that failed*",
        "*_ test_crashes _*", "sandbox: the test process was killed by SIGABRT*",
        "SUBFAILED[[]failing[]] test_*.py::test_crashes*", "FAILED test_*.py::test_crashes*",
    ])


def test_pytest_html_extras_come_back(pytester):
    pytest.importorskip("pytest_html", reason="needs pytest-html (test extra)")
    pytester.makepyfile("""
        import pytest_html

        def test_with_extras(extras):
            extras.append(pytest_html.extras.text("some extra text", name="note"))
            extras.append(pytest_html.extras.url("http://example.invalid/x"))
    """)
    seen = []
    for args in ([], ["--sandbox"], ["--sandbox", "--sandbox-no-fork"]):
        report = pytester.path / "report.html"
        result = pytester.runpytest_subprocess(*HERMETIC, f"--html={report}", *args)
        result.assert_outcomes(passed=1)
        blob = re.search(r'data-jsonblob="([^"]*)"', report.read_text()).group(1)
        (run_of_test,) = json.loads(html.unescape(blob))["tests"].values()
        seen.append([(e["name"], e["format_type"]) for e in run_of_test[0]["extras"]])
        assert (pytester.path / "assets" / "test_pytest_html_extras_come_back.py__test_with_extras_0_0.txt"
                ).read_text() == "some extra text"
    assert seen == [[("note", "text"), ("URL", "url")]] * 3
