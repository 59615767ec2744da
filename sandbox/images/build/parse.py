"""A Sandboxfile's text as nodes: one per instruction, with its original lines.

The first stage of a build, after BuildKit's Dockerfile parser: only the
file's layout is read here (parser directives, comments, line
continuations, the keyword); what an instruction's arguments mean is
``instructions``' job. Each node keeps the text it came from and its line
range, so any later error can point at it.

Parser directives (``# syntax=...``, ``# escape=\\`` or ``# escape=```) are
read only at the top of the file, before any comment, blank line or
instruction, as Docker reads them; ``syntax`` is accepted and ignored (there is
one front end). Heredocs (``RUN <<EOF``) are refused with an error that
says what to do instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import BuildFileError

_DIRECTIVE_RE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
_KEYWORD_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)(?:\s+(.*))?$", re.DOTALL)
_HEREDOC_RE = re.compile(r"<<-?\s*[\"']?[A-Za-z_][A-Za-z0-9_]*")
_HEREDOC_KEYWORDS = ("RUN", "COPY", "ADD")
KNOWN_DIRECTIVES = ("syntax", "escape", "check")


@dataclass(frozen=True)
class Node:
    """One instruction: its keyword (upper case), its arguments with the
    continuation lines joined, and where it came from."""

    keyword: str
    args: str
    start_line: int
    end_line: int
    original: str


@dataclass(frozen=True)
class ParsedFile:
    """The nodes of a file and the directives that apply to all of them."""

    nodes: tuple[Node, ...]
    escape: str = "\\"
    directives: tuple[tuple[str, str], ...] = ()


def parse(text: str) -> ParsedFile:
    """Nodes of ``text``; BuildFileError (with a line) for what cannot be read."""
    lines = text.splitlines()
    directives, first = _directives(lines)
    escape = dict(directives).get("escape", "\\")
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    nodes, i = [], first
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        node, i = _read_node(lines, i, continuation)
        nodes.append(node)
    return ParsedFile(tuple(nodes), escape, tuple(directives))


def _directives(lines: list[str]) -> tuple[list[tuple[str, str]], int]:
    """The parser directives at the top of the file, and the index of the first other line."""
    found: list[tuple[str, str]] = []
    for i, line in enumerate(lines):
        match = _DIRECTIVE_RE.match(line.strip())
        if not match or match.group(1).lower() not in KNOWN_DIRECTIVES:
            return found, i
        name, value = match.group(1).lower(), match.group(2)
        if any(name == seen for seen, _ in found):
            raise BuildFileError(f"the parser directive {name!r} is given twice", line=i + 1)
        if name == "escape" and value not in ("\\", "`"):
            raise BuildFileError(f"invalid escape character {value!r}: expected \\ or `", line=i + 1)
        found.append((name, value))
    return found, len(lines)


def _read_node(lines: list[str], start: int, continuation: re.Pattern) -> tuple[Node, int]:
    """The instruction starting at ``lines[start]``, and the index after its last line."""
    parts: list[str] = []
    i = start
    line = lines[i].lstrip()
    while True:
        if not continuation.search(line):
            parts.append(line)
            break
        parts.append(continuation.sub("", line))
        i += 1
        while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
            i += 1  # comments and blank lines inside a continued instruction are dropped
        if i == len(lines):
            break
        line = lines[i]
    end = min(i, len(lines) - 1)
    joined = "".join(parts)
    match = _KEYWORD_RE.match(joined.strip())
    if not match:
        raise BuildFileError(f"cannot read an instruction in {joined.strip()[:40]!r}: expected "
                             "a keyword such as FROM or RUN, then its arguments", line=start + 1)
    keyword, args = match.group(1).upper(), (match.group(2) or "").strip()
    if keyword in _HEREDOC_KEYWORDS and not args.startswith("[") and _HEREDOC_RE.search(args):
        raise BuildFileError(f"heredocs (<<EOF) in {keyword} are not supported: put the text in "
                             "a file of the context and COPY it", line=start + 1, end_line=end + 1)
    node = Node(keyword, args, start + 1, end + 1, "\n".join(lines[start:end + 1]))
    return node, i + 1
