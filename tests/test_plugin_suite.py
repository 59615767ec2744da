"""Real projects' suites report the same with every test sandboxed.

Their sdists are fetched at setup by scripts/test-cache.sh (nothing is
fetched while tests run).

- more-itertools 10.5.0's tests use unittest's subTest a great deal and
  emit warnings: plain, with ``-q``, they report ``663 passed, 1 skipped, 8
  warnings, 2332 subtests passed`` on pytest 9. The same suite runs with
  ``--sandbox`` (the first test forked from pytest, the others by its fork
  server) and must report the same summary line and warnings.
- click 8.1.8's tests (``filterwarnings = error`` in its pyproject.toml,
  so a ``-W`` option decides whether they even collect) run with the
  options of issue 25: plain, with ``--sandbox``, and with ``-p xdist -n 2
  --sandbox`` (each pytest-xdist worker's twin forks its tests), with the
  same outcome counts each time. Five of its twenty test files run
  (CLICK_FILES), half its tests: every kind of check the whole suite makes
  is in them, and the other files add only more tests of the same kinds.
"""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path

import pytest

from .helpers import cached

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root


def unpacked(pytester, pattern: str):
    """An sdist's tree as the pytester directory (its tests import the package from there)."""
    sdist = cached("sdist", pattern)
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            _top, _, rest = member.name.partition("/")
            if rest:
                member.name = rest
                archive.extract(member, pytester.path, filter="data")
    return pytester


@pytest.fixture
def more_itertools(pytester):
    unpacked(pytester, "more[-_]itertools-10.5.0.tar.gz")
    assert (Path(pytester.path) / "tests" / "test_more.py").is_file()
    return pytester


@pytest.fixture
def click(pytester, monkeypatch):
    """click 8.1.8's tree; its tests import click from src/ (another click may be installed)."""
    unpacked(pytester, "click-8.1.8.tar.gz")
    src = Path(pytester.path) / "src"
    assert (src / "click" / "__init__.py").is_file()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(src), os.environ.get(
        "PYTHONPATH")])))
    return pytester


def summary(result) -> tuple[str, list[str]]:
    """The last line (time masked) and the warnings summary."""
    lines = result.outlines
    last = re.sub(r" in \d+\.\d+s.*", "", lines[-1].strip("= "))
    start = next(i for i, line in enumerate(lines) if "warnings summary" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("-- Docs: "))
    return last, lines[start:end]


def test_more_itertools_reports_the_same_sandboxed(more_itertools):
    # -q, as the figures: quiet, pytest counts the passed subtests in the last line
    plain = more_itertools.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=600)
    sandboxed = more_itertools.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--sandbox",
                                                    timeout=600)
    plain_last, plain_warnings = summary(plain)
    assert re.fullmatch(r"663 passed, 1 skipped, \d+ warnings, 2332 subtests passed", plain_last), \
        plain_last
    assert summary(sandboxed) == (plain_last, plain_warnings)


#: Issue 25's options: -W keeps pytest's own deprecations from being errors under click's
#: ``filterwarnings = error`` (they were, in the inner pytest that did not get -W). This
#: machine's pytest-benchmark warns under xdist, an error there too: it stays out.
CLICK_ARGS = ("-q", "-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:benchmark",
              "-W", "ignore::pytest.PytestRemovedIn10Warning")


#: click's test files that run: test_basic.py (the file issue 25's inner pytest found no
#: collectors in), test_chain.py (click's one xfail), test_termui.py (all 21 of the suite's
#: skips on Linux, parametrized, monkeypatch), test_utils.py (capsys and capfd, files in a
#: temp dir, monkeypatch), test_shell_completion.py (fixtures of its own, beside
#: conftest.py's); click's filterwarnings = error applies to each. 289 of its 650 tests.
CLICK_FILES = ("tests/test_basic.py", "tests/test_chain.py", "tests/test_termui.py",
               "tests/test_utils.py", "tests/test_shell_completion.py")


def test_click_reports_the_same_sandboxed_and_under_xdist(click):
    plain = click.runpytest_subprocess(*CLICK_ARGS, "-p", "no:xdist", *CLICK_FILES, timeout=900)
    counts = plain.parseoutcomes()
    assert counts["passed"] > 250 and counts["skipped"] > 10 and counts["xfailed"] == 1, counts
    for args in (["-p", "no:xdist", "--sandbox"], ["-p", "xdist", "-n", "2", "--sandbox"]):
        sandboxed = click.runpytest_subprocess(*CLICK_ARGS, *args, *CLICK_FILES, timeout=900)
        assert sandboxed.parseoutcomes() == counts, (args, sandboxed.outlines[-30:])
