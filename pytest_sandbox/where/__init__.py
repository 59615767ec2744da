"""Where a marked test runs: one small interface, one module per place.

A *runner* takes one item and returns an Outcome: the item's events (its
reports, warnings, ...; already complete: a crash has become a failed
report) and the engine's Result when there was a local sandbox. How the reports travel back is the
report channel's business (``pytest_sandbox.channel``), not the runner's.

- ``local.LocalRunner``: a sandbox on this host; forks the pytest process
  into it when that is safe (fast; ``served`` decides whether pytest or a
  fork server copied from it forks), else runs ``python -m pytest NODEID``
  inside it (slow).
- ``remote.QueueRunner``: the job queue's workers (``--sandbox-redis``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sandbox import Result


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


class Runner(Protocol):
    #: True when the items run in sandboxes made on this host (so this host must be able to).
    needs_host_sandboxes: bool

    def expect(self, items: list) -> None:
        """The sandboxed items this session will run, in order, before the first runs."""

    def run(self, item, nextitem) -> Outcome:
        """Run ``item``'s setup, call and teardown somewhere; never raises for a test's failure."""

    def close(self) -> None:
        """Release what the runner holds (connections, temp dirs)."""
