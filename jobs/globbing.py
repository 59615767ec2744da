"""Globs over a workspace that untrusted code wrote: artifacts and JUnit reports.

The workspace is a host directory. ``glob.glob`` follows symlinks to
directories, so a step that ran ``ln -s / /workspace/r`` made ``r/usr/**/*``
walk the host's /usr, past the job's timeout and deaf to its cancel. Here:

- no symlink to a directory is ever followed, and nothing above the
  workspace is looked at (a link can still be *matched*: callers check
  where it points);
- the walk is bounded: a ``Budget`` allows at most MAX_ENTRIES directory
  entries, and ends at its deadline (the job's timeout) or when its ``stop``
  says so (the job was cancelled), raising GlobStopped.

Patterns as glob's: ``*``, ``?`` and ``[...]`` within one path segment, ``**``
for any depth; a ``*`` does not match a leading dot unless the segment
starts with one.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

MAX_ENTRIES = 200_000


class GlobStopped(Exception):
    """The walk ran out of its budget: ``reason`` says which part."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Budget:
    """What one collection may spend: entries looked at, time (monotonic), and a stop flag."""

    deadline: float | None = None
    stop: Callable[[], bool] = field(default=lambda: False)
    entries: int = MAX_ENTRIES

    def spend(self, n: int = 1) -> None:
        self.entries -= n
        if self.entries < 0:
            raise GlobStopped(f"more than {MAX_ENTRIES} files looked at")
        self.check()

    def check(self) -> None:
        """GlobStopped when the job was cancelled or its time ran out."""
        if self.stop():
            raise GlobStopped("the job was cancelled")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise GlobStopped("the job's timeout ran out")


def match(root: str, pattern: str, budget: Budget | None = None) -> list[str]:
    """The paths under ``root`` (relative, sorted) that ``pattern`` matches."""
    segments = [s for s in pattern.split("/") if s not in ("", ".")]
    found: set[str] = set()
    if segments:
        _match(root, "", segments, budget or Budget(), found)
    return sorted(found)


def _match(root: str, rel: str, segments: list[str], budget: Budget, found: set[str]) -> None:
    segment, rest = segments[0], segments[1:]
    if segment == "**":
        if not rest:
            found.update(_everything_below(root, rel, budget))
            return
        _match(root, rel, rest, budget, found)
        for name, is_dir in _entries(root, rel, budget):
            if is_dir and not name.startswith("."):
                _match(root, _join(rel, name), segments, budget, found)
        return
    if not any(c in segment for c in "*?["):  # a plain name: no listing
        _take(root, _join(rel, segment), rest, budget, found)
        return
    for name, is_dir in _entries(root, rel, budget):
        hidden = name.startswith(".") and not segment.startswith(".")
        if hidden or not fnmatch.fnmatchcase(name, segment):
            continue
        if not rest:
            found.add(_join(rel, name))
        elif is_dir:
            _match(root, _join(rel, name), rest, budget, found)


def _take(root: str, rel: str, rest: list[str], budget: Budget, found: set[str]) -> None:
    budget.spend()
    try:
        st = os.lstat(os.path.join(root, rel))
    except OSError:
        return
    if not rest:
        found.add(rel)
    elif stat.S_ISDIR(st.st_mode):
        _match(root, rel, rest, budget, found)


def _everything_below(root: str, rel: str, budget: Budget) -> Iterator[str]:
    """``rel`` and every path below it, no symlinked directory entered (``a/**``)."""
    if rel:
        yield rel
    for name, is_dir in _entries(root, rel, budget):
        if name.startswith("."):
            continue
        if is_dir:
            yield from _everything_below(root, _join(rel, name), budget)
        else:
            yield _join(rel, name)


def _entries(root: str, rel: str, budget: Budget) -> list[tuple[str, bool]]:
    """(name, is a real directory) of each entry of ``rel``; nothing if it cannot be read."""
    found = []
    try:
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for entry in it:
                budget.spend()
                try:
                    found.append((entry.name, entry.is_dir(follow_symlinks=False)))
                except OSError:
                    continue
    except OSError:
        return []
    return sorted(found)


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name
