"""Reports for a test whose sandbox ended before the test's reports were all in.

A segfault, os.abort(), the OOM killer or the wall time limit ends the
sandbox mid-test; everything the test reported before stands (its phases,
subtests, warnings, earlier attempts of a rerun), and the first phase its
last attempt did not report becomes a failure that says what ended the
sandbox and which limit was hit, with the start of the sandbox's stderr and
stdout (a faulthandler traceback, say).
"""

from __future__ import annotations

from typing import Any

from pytest import TestReport

from sandbox import Result

from .events import Event

OUTPUT_HEAD = 3000


def why(result: Result | None, reason: str | None = None) -> str:
    """One line: which limit was hit, or how the sandbox ended."""
    if reason:
        return reason
    if result is None:
        return "the sandbox did not report back"
    message = result.limit_message()
    if message and (result.timed_out or result.oom_killed):
        return f"sandbox {message}"
    if result.signal:
        return f"sandbox: the test process was killed by {result.signal_name} (exit {result.exit_code})"
    return f"sandbox: the test process exited with status {result.exit_code} before it reported"


def complete(item, events: list[Event], result: Result | None, *,
             reason: str | None = None) -> list[Event]:
    """``events`` plus a failed report for the first missing phase, and a teardown."""
    missing = _missing_phase(_phase_reports(events))
    if missing is None:
        return events
    out = list(events)
    out.append(_report(item, missing, "failed", _longrepr(result, reason), result))
    if missing != "teardown":
        out.append(_report(item, "teardown", "passed", None, None))
    return out


def _phase_reports(events: list[Event]) -> list:
    """The reports of the last attempt's phases (a rerun starts another attempt).

    A phase's report is a TestReport itself; reports of subclasses (a
    subtest's) are made within a phase and do not end it.
    """
    starts = [i for i, e in enumerate(events) if e.kind == "logstart"]
    attempt = events[starts[-1]:] if starts else events
    return [e.report for e in attempt if e.kind == "report" and type(e.report) is TestReport]


def _missing_phase(phases: list) -> str | None:
    """The first phase that did not report (None: all did)."""
    whens = {r.when for r in phases}
    if "teardown" in whens:  # unless the attempt asked for another, which did not start
        return "setup" if any(r.outcome == "rerun" for r in phases) else None
    if "call" in whens or any(r.when == "setup" and not r.passed for r in phases):
        return "teardown"
    return "call" if "setup" in whens else "setup"


def _longrepr(result: Result | None, reason: str | None) -> str:
    text = why(result, reason)
    for stream in ("stderr", "stdout"):
        data = getattr(result, stream, b"") if result is not None else b""
        if data:
            more = f" (first {OUTPUT_HEAD} of {len(data)} bytes)" if len(data) > OUTPUT_HEAD else ""
            text += f"\n\nthe sandbox's {stream}{more}:\n{data[:OUTPUT_HEAD].decode('utf-8', 'replace')}"
    return text


def _report(item, when: Any, outcome: Any, longrepr, result: Result | None) -> Event:
    duration = result.duration if (result is not None and when != "teardown") else 0.0
    start = result.started_at if result is not None else 0.0
    report = TestReport(
        item.nodeid, item.location, dict.fromkeys(item.keywords, 1), outcome, longrepr, when,
        sections=[], duration=duration, start=start, stop=start + duration,
        user_properties=list(item.user_properties),
    )
    return Event("report", {"report": report})
