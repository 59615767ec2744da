"""What a build shows while it runs, in the shape BuildKit's plain output made familiar.

One line per step (``[3/7] RUN pip install -r requirements.txt``), ``CACHED``
where a step is reused, the live output of a RUN indented under it, the time
of each step that ran, and a final line with the image id. A failing step's
last output lines are kept for the error report. ``quiet`` prints only the
image id at the end (as ``docker build -q``), for scripts.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Protocol

from .steps import Step

INDENT = "      "
TAIL_LINES = 12


class TextOut(Protocol):
    """Where a build's progress goes: a text stream (sys.stdout), or any object that
    takes its lines (a job's log)."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


class Progress:
    """The build's output to ``out`` (stdout); one object per build."""

    def __init__(self, total: int, *, out: TextOut | None = None, quiet: bool = False,
                 started: float | None = None) -> None:
        self.total = total
        self.out: TextOut = out or sys.stdout
        self.quiet = quiet
        self.started = started if started is not None else time.monotonic()
        self.cached = 0
        self.ran = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._partial = b""
        self._step_started = 0.0
        self._prefix = ""

    def _print(self, line: str) -> None:
        if not self.quiet:
            self.out.write(line + "\n")
            self.out.flush()

    def _label(self, step: Step, stage: str | None) -> str:
        where = f"{stage} " if stage else ""
        return f"[{where}{step.number}/{self.total}]"

    def step(self, step: Step, stage: str | None = None) -> None:
        """A step starts (or is done at once: FROM, a config change)."""
        self._prefix = self._label(step, stage)
        self._step_started = time.monotonic()
        self.tail.clear()
        self._print(f"{self._prefix} {step.text}")

    def cached_step(self, step: Step, stage: str | None = None) -> None:
        self.cached += 1
        self._print(f"{self._label(step, stage)} CACHED {step.text}")

    def output(self, data: bytes) -> None:
        """Live output of the running step, indented, one line at a time."""
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            self._line(raw)

    def _line(self, raw: bytes) -> None:
        # what a terminal would show of a line redrawn with carriage returns: its last draw
        line = raw.decode("utf-8", "replace").rstrip("\r").rsplit("\r", 1)[-1]
        self.tail.append(line)
        self._print(INDENT + line)

    def done(self, note: str = "") -> None:
        """The running step ended well."""
        self._flush_partial()
        self.ran += 1
        elapsed = time.monotonic() - self._step_started
        self._print(f"{self._prefix} DONE {elapsed:.2f}s{note}")

    def failed(self, why: str) -> None:
        self._flush_partial()
        elapsed = time.monotonic() - self._step_started
        self._print(f"{self._prefix} ERROR {why} after {elapsed:.2f}s")

    def _flush_partial(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""

    def finished(self, image_id: str, tags: tuple[str, ...]) -> None:
        """The final line: the image id, its name, how long, how much was reused."""
        if self.quiet:
            self.out.write(image_id + "\n")
            self.out.flush()
            return
        elapsed = time.monotonic() - self.started
        named = f" as {', '.join(tags)}" if tags else ""
        self._print(f"built {image_id}{named} in {elapsed:.2f}s "
                    f"({self.ran} steps run, {self.cached} cached)")
