"""A real project's suite reports the same with every test sandboxed.

more-itertools 10.5.0's own tests (from its sdist, fetched at setup by
scripts/test-cache.sh: nothing is fetched while tests run) use unittest's
subTest a great deal and emit warnings: plain, with ``-q``, they report
``663 passed, 1 skipped, 8 warnings, 2332 subtests passed`` on pytest 9. The same suite
runs with ``--sandbox`` (the first test forked from pytest, the others by
its fork server) and must report the same summary line and warnings.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from .helpers import cached

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root


@pytest.fixture
def more_itertools(pytester):
    """The sdist's tree as the pytester directory (its tests import the package from there)."""
    sdist = cached("sdist", "more[-_]itertools-10.5.0.tar.gz")
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            _top, _, rest = member.name.partition("/")
            if rest:
                member.name = rest
                archive.extract(member, pytester.path, filter="data")
    assert (Path(pytester.path) / "tests" / "test_more.py").is_file()
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
