"""Show a sandboxed test in this pytest process with what its run reported where it ran.

The events (``pytest_sandbox.events``) go to the same hooks, in the same
order, so the terminal, JUnit XML, pytest-html, ``-r`` summaries, the
warnings summary, ``--durations`` and every other plugin see what they see
when the test runs here. The test's first ``logstart`` and last
``logfinish`` are this process's own (``plugin``: the first is sent before
the sandbox starts, so a verbose terminal names the test while it runs).
"""

from __future__ import annotations

from typing import Any

from .events import HOOKS, Event

SubtestReport: Any
failed_subtests_key: Any
try:  # pytest >= 9: subtests are built in
    from _pytest.subtests import SubtestReport, failed_subtests_key
except ImportError:  # pragma: no cover - older pytest
    SubtestReport = failed_subtests_key = None


def replay(item, events: list[Event]) -> None:
    """Call the hooks that show a test with ``events``, in order."""
    events = list(events)
    if events and events[0].kind == "logstart":
        del events[0]
    finishes = [i for i, e in enumerate(events) if e.kind == "logfinish"]
    if finishes:
        del events[finishes[-1]]
    for event in events:
        hook = getattr(item.ihook, HOOKS[event.kind])
        if event.kind == "warning":
            hook.call_historic(kwargs=event.kwargs)
            continue
        if event.kind == "report":
            _count_failed_subtest(item.config, event.report)
        hook(**event.kwargs)


def _count_failed_subtest(config, report) -> None:
    """pytest counts a failed subtest in the process it runs in, just before showing it,
    and fails the test holding it when that test's call is shown: counted here too."""
    if SubtestReport is not None and isinstance(report, SubtestReport) and report.failed:
        config.stash[failed_subtests_key][report.nodeid] += 1
