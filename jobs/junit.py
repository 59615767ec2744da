"""JUnit XML reports: parse (hardened), merge, and summarise like pytest.

The reports come out of an untrusted sandbox, so they are parsed with
defusedxml (no entity expansion, no external entities, no DTD retrieval)
and handed to junitparser as an already-parsed tree; each report is capped
in size. Paths are resolved inside the workspace and never through a
symlink that leaves it (a sandbox could point report.xml at /etc/shadow).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .globbing import Budget
from .workspace import matches as workspace_matches

MAX_REPORT_BYTES = 64 << 20
TRACEBACK_LINES = 12


@dataclass(frozen=True)
class Case:
    """One test case: ``classname::name``, its outcome and time; message and text when not passed."""

    classname: str
    name: str
    outcome: str  # passed, failed, error, skipped
    time: float = 0.0
    message: str = ""
    text: str = ""

    @property
    def nodeid(self) -> str:
        return f"{self.classname}::{self.name}" if self.classname else self.name


@dataclass(frozen=True)
class JUnitReport:
    """Totals over every report of a job, the cases, and what went wrong reading them."""

    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    time: float = 0.0
    cases: tuple[Case, ...] = ()
    files: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped

    @property
    def bad_cases(self) -> list[Case]:
        return [c for c in self.cases if c.outcome in ("failed", "error")]

    def headline(self) -> str:
        """``3 failed, 1 skipped, 120 passed in 12.30s`` (pytest's order of words and its
        two decimals: a 40 ms suite is 0.04s, not 0.0s)."""
        parts = [f"{n} {word}" for n, word in ((self.failures, "failed"), (self.errors, "errors"),
                                              (self.skipped, "skipped"), (self.passed, "passed")) if n]
        if self.errors == 1:
            parts = [p.replace("1 errors", "1 error") for p in parts]
        return f"{', '.join(parts) or 'no tests ran'} in {self.time:.2f}s"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JUnitReport":
        data = dict(data)
        data["cases"] = tuple(Case(**c) for c in data.get("cases", ()))
        data["files"] = tuple(data.get("files", ()))
        data["problems"] = tuple(data.get("problems", ()))
        return cls(**data)


def totals(report: dict[str, Any] | None) -> str:
    """A report's totals as one JSON line (tests, failures, errors, skipped, time, headline),
    for listings that show them beside each job; empty without a report."""
    if not report:
        return ""
    keys = ("tests", "failures", "errors", "skipped", "time")
    counts = {k: report.get(k, 0) for k in keys}
    return json.dumps({**counts, "headline": JUnitReport(**counts).headline()})


def find_reports(workspace: str, patterns: Iterable[str],
                 budget: Budget | None = None) -> tuple[list[str], list[str]]:
    """(paths relative to workspace, problems) for the globs, refusing escapes."""
    found, problems = [], []
    for pattern in patterns:
        matched = workspace_matches(workspace, pattern, budget)
        if not matched:
            problems.append(f"{pattern}: no such report")
        for rel, real, inside in matched:
            if not inside or not os.path.isfile(real):
                problems.append(f"{rel}: not a regular file inside the workspace")
            elif rel not in found:
                found.append(rel)
    return found, problems


def parse_reports(workspace: str, patterns: Iterable[str], budget: Budget | None = None) -> JUnitReport:
    """Parse and merge every report the globs match; problems are listed, not raised
    (but GlobStopped, when the budget runs out while looking for them)."""
    rels, problems = find_reports(workspace, patterns, budget)
    cases: list[Case] = []
    suite_time = 0.0
    for rel in rels:
        try:
            file_cases, seconds = _parse_file(os.path.join(workspace, rel))
        except Exception as exc:
            problems.append(f"{rel}: unreadable JUnit XML: {type(exc).__name__}: {exc}")
            continue
        if not file_cases:
            problems.append(f"{rel}: no test cases")
        cases.extend(file_cases)
        suite_time += seconds
    return _merge(cases, suite_time, rels, problems)


def _merge(cases: list[Case], seconds: float, files: list[str], problems: list[str]) -> JUnitReport:
    count = {o: sum(1 for c in cases if c.outcome == o) for o in ("failed", "error", "skipped")}
    return JUnitReport(tests=len(cases), failures=count["failed"], errors=count["error"],
                       skipped=count["skipped"], time=round(seconds, 3), cases=tuple(cases),
                       files=tuple(files), problems=tuple(problems))


def _parse_file(path: str) -> tuple[list[Case], float]:
    from defusedxml import ElementTree as SafeET
    from junitparser import JUnitXml, TestSuite

    if os.path.getsize(path) > MAX_REPORT_BYTES:
        raise ValueError(f"larger than {MAX_REPORT_BYTES >> 20} MiB")
    xml = JUnitXml.fromfile(path, parse_func=SafeET.parse)
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    cases = [_case(case) for suite in suites for case in suite]
    return cases, sum(_suite_time(suite) for suite in suites)


def _suite_time(suite: Any) -> float:
    """The suite's time attribute; the sum of its cases' when it has none."""
    try:
        seconds = float(suite.time or 0)
    except (TypeError, ValueError):
        seconds = 0.0
    return seconds if seconds > 0 else sum(_seconds(case.time) for case in suite)


def _seconds(value: Any) -> float:
    try:
        return max(float(value or 0), 0.0)
    except (TypeError, ValueError):
        return 0.0


def _case(case: Any) -> Case:
    from junitparser import Error, Failure, Skipped

    outcome, message, text = "passed", "", ""
    for res in case.result:
        kind = {Failure: "failed", Error: "error", Skipped: "skipped"}.get(type(res))
        if kind is None:
            continue
        outcome, message, text = kind, res.message or "", res.text or ""
        if kind != "skipped":
            break
    return Case(classname=case.classname or "", name=case.name or "", outcome=outcome,
                time=_seconds(case.time), message=message, text=_first_lines(text))


def _first_lines(text: str, n: int = TRACEBACK_LINES) -> str:
    lines = text.strip("\n").splitlines()
    if len(lines) <= n:
        return "\n".join(lines)
    return "\n".join([*lines[:n], f"... ({len(lines) - n} more lines)"])
