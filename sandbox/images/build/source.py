"""Where an instruction came from, and the one printer for build errors.

A Location is a line range of the Sandboxfile (1-based, inclusive). Errors
carry lines, not file names: the file name is added once, where the file was
read (``load``), and ``render`` shows the error line followed by the lines it
points at, numbered, as ``file:line`` so editors can jump to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import BuildFileError

#: At most this many lines of an instruction are quoted under an error.
MAX_QUOTED = 6


@dataclass(frozen=True)
class Location:
    """Lines ``start`` to ``end`` of the file."""

    start: int
    end: int

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"


def render(error: BuildFileError, text: str | None) -> str:
    """The error's line, then the file's lines it points at (``   3 | FOO bar``)."""
    head = str(error)
    if text is None or error.line is None:
        return head
    lines = text.splitlines()
    end = min(error.end_line or error.line, len(lines), error.line + MAX_QUOTED - 1)
    quoted = [f"{n:>5} | {lines[n - 1]}" for n in range(error.line, end + 1) if n <= len(lines)]
    return "\n".join([head, *quoted])
