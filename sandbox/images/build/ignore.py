"""``.dockerignore`` (also read as ``.sandboxignore``): which context paths COPY never sees.

The rules Docker's pattern matcher has: one pattern a line, ``#`` comments,
``!`` for an exception; patterns are cleaned and relative to the context
root (a leading ``/`` is dropped); ``*`` and ``?`` never match ``/``, ``**``
matches any number of directories; a pattern that matches a directory
excludes everything below it; the last pattern that matches decides.
``.sandboxignore`` is read when present, else ``.dockerignore``.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

FILE_NAMES = (".sandboxignore", ".dockerignore")
MAX_SIZE = 1 << 20


@dataclass(frozen=True)
class Pattern:
    text: str
    regex: re.Pattern
    exception: bool


class IgnoreRules:
    """The patterns of one context; ``ignored(path)`` for a '/'-separated relative path."""

    def __init__(self, lines: list[str]) -> None:
        self.patterns = tuple(p for p in (_pattern(line) for line in lines) if p is not None)
        self.has_exceptions = any(p.exception for p in self.patterns)

    def ignored(self, path: str) -> bool:
        parents = _prefixes(path)
        matched = False
        for pattern in self.patterns:
            if pattern.exception != matched:
                continue  # only an exception can undo a match, only a pattern can make one
            if any(pattern.regex.match(p) for p in parents):
                matched = not pattern.exception
        return matched

    def may_hold_kept(self, directory: str) -> bool:
        """Whether a walk must enter an ignored directory: an exception may keep something below."""
        return self.has_exceptions


def load(context_fd: int) -> IgnoreRules:
    """The rules of the context opened as ``context_fd`` (none when there is no file)."""
    for name in FILE_NAMES:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=context_fd)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with os.fdopen(fd, "rb") as f:
            text = f.read(MAX_SIZE).decode("utf-8", "replace")
        return IgnoreRules(text.splitlines())
    return IgnoreRules([])


def _pattern(line: str) -> Pattern | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    exception = text.startswith("!")
    if exception:
        text = text[1:].strip()
    text = posixpath.normpath(text).lstrip("/") if text else text
    if not text or text == ".":
        return None
    return Pattern(text, re.compile(_translate(text) + r"\Z"), exception)


def _translate(pattern: str) -> str:
    """A Go filepath.Match pattern, plus ``**``, as a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _prefixes(path: str) -> list[str]:
    """``a``, ``a/b``, ``a/b/c`` for ``a/b/c``: a match on a parent directory counts."""
    parts = [p for p in path.split("/") if p and p != "."]
    return ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
