"""Reports for a test whose sandbox ended before the test's reports were all in.

A segfault, os.abort(), the OOM killer or the wall time limit ends the
sandbox mid-test; the phases that did report stand, and the first missing
one becomes a failure that says what ended the sandbox and which limit was
hit, with the start of the sandbox's stderr and stdout (a faulthandler traceback, say).
"""

from __future__ import annotations

from pytest import TestReport

from sandbox import Result

PHASES = ("setup", "call", "teardown")
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


def complete(item, reports: list, result: Result | None, *, reason: str | None = None) -> list:
    """``reports`` plus a failed report for the first missing phase, and a teardown."""
    done = [r for r in reports if r.when in PHASES]
    whens = {r.when for r in done}
    if "teardown" in whens:
        return done
    if any(r.when == "setup" and not r.passed for r in done) or "call" in whens:
        missing = "teardown"
    else:
        missing = "call" if "setup" in whens else "setup"
    longrepr = _longrepr(result, reason)
    out = list(done)
    out.append(_report(item, missing, "failed", longrepr, result))
    if missing != "teardown":
        out.append(_report(item, "teardown", "passed", None, None))
    return out


def _longrepr(result: Result | None, reason: str | None) -> str:
    text = why(result, reason)
    for stream in ("stderr", "stdout"):
        data = getattr(result, stream, b"") if result is not None else b""
        if data:
            more = f" (first {OUTPUT_HEAD} of {len(data)} bytes)" if len(data) > OUTPUT_HEAD else ""
            text += f"\n\nthe sandbox's {stream}{more}:\n{data[:OUTPUT_HEAD].decode('utf-8', 'replace')}"
    return text


def _report(item, when: str, outcome: str, longrepr, result: Result | None) -> TestReport:
    duration = result.duration if (result is not None and when != "teardown") else 0.0
    start = result.started_at if result is not None else 0.0
    return TestReport(
        item.nodeid, item.location, dict.fromkeys(item.keywords, 1), outcome, longrepr, when,
        sections=[], duration=duration, start=start, stop=start + duration,
        user_properties=list(item.user_properties),
    )
