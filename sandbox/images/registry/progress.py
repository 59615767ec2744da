"""What a copy reports while it runs: typed events to a callback, and two ways to show them.

A copy (``copy.copy_image``) calls ``progress(event)`` for each blob it
starts, advances, skips or finishes, and once at the end with the image's
digest. ``for_stream(stream)`` picks how people see it: on a terminal one
line per layer, redrawn in place with its bytes and a bar; otherwise plain
lines, one when a layer starts and one when it is done. Either ends with a
summary naming the digest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from ...units import format_size
from ..digest import short_id


@dataclass(frozen=True)
class BlobStarted:
    digest: str
    size: int
    kind: str  # "layer" or "config"


@dataclass(frozen=True)
class BlobAdvanced:
    digest: str
    done: int
    size: int


@dataclass(frozen=True)
class BlobSkipped:
    digest: str
    size: int
    why: str  # "already stored", "already there", "mounted from REPO"


@dataclass(frozen=True)
class BlobDone:
    digest: str
    size: int


@dataclass(frozen=True)
class ImageDone:
    reference: str
    digest: str
    action: str  # "pulled", "pushed", "up to date"


Event = BlobStarted | BlobAdvanced | BlobSkipped | BlobDone | ImageDone
Progress = Callable[[Event], None]


def silent(event: Event) -> None:
    """A progress callback that shows nothing."""


def for_stream(stream: TextIO) -> Progress:
    """The renderer people expect on ``stream``: bars on a terminal, plain lines elsewhere."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return TerminalProgress(stream)
    return PlainProgress(stream)


def _summary(event: ImageDone) -> str:
    if event.action == "up to date":
        return f"{event.reference}: image is up to date\nDigest: {event.digest}"
    return f"{event.reference}: {event.action}\nDigest: {event.digest}"


class PlainProgress:
    """One line when a blob starts, is skipped or is done; a summary at the end."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        line = None
        if isinstance(event, BlobStarted):
            line = f"{short_id(event.digest)}: copying {event.kind} ({format_size(event.size)})"
        elif isinstance(event, BlobSkipped):
            line = f"{short_id(event.digest)}: {event.why}"
        elif isinstance(event, BlobDone):
            line = f"{short_id(event.digest)}: done"
        elif isinstance(event, ImageDone):
            line = _summary(event)
        if line is not None:
            print(line, file=self.stream, flush=True)


class TerminalProgress:
    """One line per layer, redrawn in place (at most 10 times a second) with bytes and a bar."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lines: dict[str, str] = {}
        self.drawn = 0
        self.last = 0.0

    def __call__(self, event: Event) -> None:
        if isinstance(event, ImageDone):
            self._draw(force=True)
            print(_summary(event), file=self.stream, flush=True)
            return
        if isinstance(event, BlobStarted):
            self.lines[event.digest] = self._bar(event.digest, 0, event.size)
        elif isinstance(event, BlobAdvanced):
            self.lines[event.digest] = self._bar(event.digest, event.done, event.size)
        elif isinstance(event, BlobSkipped):
            self.lines[event.digest] = f"{short_id(event.digest)}: {event.why}"
        elif isinstance(event, BlobDone):
            self.lines[event.digest] = f"{short_id(event.digest)}: done {format_size(event.size)}"
        self._draw(force=not isinstance(event, BlobAdvanced))

    def _bar(self, digest: str, done: int, size: int) -> str:
        filled = int(self.WIDTH * done / size) if size else self.WIDTH
        bar = "=" * filled + (">" if filled < self.WIDTH else "") + " " * (self.WIDTH - filled - 1)
        return f"{short_id(digest)}: [{bar[:self.WIDTH]}] {format_size(done)}/{format_size(size)}"

    def _draw(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        out = f"\x1b[{self.drawn}A" if self.drawn else ""
        out += "".join(f"\x1b[2K{line}\n" for line in self.lines.values())
        self.stream.write(out)
        self.stream.flush()
        self.drawn = len(self.lines)
