"""Where a marked test runs: one small interface, one module per place.

A *runner* takes one item and returns an Outcome: the item's events (its
reports, warnings, ...; already complete: a crash has become a failed
report) and the engine's Result when there was a local sandbox. How the reports travel back is the
report channel's business (``pytest_sandbox.channel``), not the runner's.

- ``local.LocalRunner``: a sandbox on this host; forks the pytest process
  into it when that is safe (fast; ``served`` decides whether pytest or a
  fork server copied from it forks); in a multi-threaded pytest, has the
  session's single-threaded twin fork itself instead (``twin``); else runs
  ``python -m pytest NODEID`` inside it (slow).
- ``remote.QueueRunner``: the job queue's workers (``--sandbox-redis``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pytest

from sandbox import Result

from .. import crash
from ..events import parse_events

#: Exceptions that stop a test from outside its sandbox (pytest-timeout's signal method, say).
STOPPED = (Exception, pytest.fail.Exception, pytest.skip.Exception)


@dataclass
class Outcome:
    """What came back from running one item somewhere."""

    events: list  # of pytest_sandbox.events.Event, in the order they happened
    result: Result | None = None
    path: str = ""  # "fork", "subprocess", "remote": for debugging and tests
    output: dict = field(default_factory=dict)  # stream name -> text not captured by pytest

    @property
    def reports(self) -> list:
        return [event.report for event in self.events if event.kind == "report"]


@dataclass
class Ran:
    """What a sandbox on this host gave back for one item, its events not read yet.

    A session's twin (``twin``) runs the item and sends this to the session,
    which reads it as its own (``read``): only the process that shows the
    test turns the lines into reports.
    """

    data: bytes  # the events file's contents (``pytest_sandbox.events``)
    result: Result | None
    path: str
    reason: str | None = None  # why the sandbox ended before the test reported, if not its Result
    output: dict = field(default_factory=dict)
    nodeid: str | None = None  # the test's node id where it ran, when not the one shown


def read(item, ran: Ran) -> Outcome:
    """The Outcome of ``item`` from what its sandbox gave back: its events, completed."""
    events = parse_events(item.config, ran.data) if ran.data else []
    if ran.nodeid is not None and ran.nodeid != item.nodeid:
        for event in events:
            _rename(event, ran.nodeid, item.nodeid)
    return Outcome(crash.complete(item, events, ran.result, reason=ran.reason), ran.result,
                   ran.path, ran.output)


def _rename(event, there: str, here: str) -> None:
    """The node ids an event names, as this session names the test (pytest-xdist's
    --dist loadgroup adds "@group" to a worker's)."""
    if event.kwargs.get("nodeid") == there:
        event.kwargs["nodeid"] = here
    report = event.report
    if report is not None and report.nodeid == there:
        report.nodeid = here


class Runner(Protocol):
    #: True when the items run in sandboxes made on this host (so this host must be able to).
    needs_host_sandboxes: bool

    def expect(self, items: list) -> None:
        """The sandboxed items this session will run, in order, before the first runs."""

    def collected(self, items: list) -> None:
        """The sandboxed items this session collected, of which it is sent only some (a
        pytest-xdist worker), before the first runs."""

    def run(self, item, nextitem) -> Outcome:
        """Run ``item``'s setup, call and teardown somewhere; never raises for a test's failure."""

    def close(self) -> None:
        """Release what the runner holds (connections, temp dirs)."""
