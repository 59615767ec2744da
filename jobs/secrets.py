"""Secrets: values given at submit time, passed to the steps that list them, masked everywhere.

`sandbox submit --secret NAME` takes NAME's value from the environment,
``--secret NAME=@FILE`` from a file, ``--secret NAME=VALUE`` as given (ps(1)
then shows it as ***, once the command has started: prefer the other two).

A step or service gets a secret as an environment variable only when it
lists it (``secrets = ["NAME"]``). Every value is replaced by ``***`` in what
the job shows: its log stream (live and stored), the JUnit cases of its
result, its artifacts' names, its error lines; as GitHub Actions does, a
multi-line value is masked line by line too. Masking is a guard against
accidents, not against the job's own code: a step that was given a secret
can print it transformed (base64, reversed), and no mask can see that.

Where values live (README.md, "Secrets", explains the threat model): in
the submitting process; for a queued job, in one Redis hash
(``sandbox:job:<id>:secrets``) from the submit until a worker claims the
job, which takes it and deletes it in the same script (a cancel or the end of
the job deletes it too, and it expires with the job); then only in the
worker's memory and in the environment of the steps that list them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import JobError

MASK = "***"
#: Lines of a multi-line secret shorter than this are not masked alone (a "}" would be).
MIN_LINE = 4


class SecretError(JobError):
    """A --secret argument cannot be read (unset variable, unreadable file, empty value)."""


def read_secret_args(args: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``NAME`` (from the environment), ``NAME=@FILE`` or ``NAME=VALUE`` -> {NAME: value}."""
    from .validator import ENV_KEY_RE

    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    for arg in args:
        name, sep, given = arg.partition("=")
        if not ENV_KEY_RE.match(name):
            raise SecretError(f"--secret {name}: expected NAME, NAME=@FILE or NAME=VALUE, NAME "
                              "of letters, digits and _")
        if name in values:
            raise SecretError(f"--secret {name}: given twice")
        values[name] = _value(name, sep, given, environ)
    return values


def sent_secrets(pairs: Iterable[str]) -> dict[str, str]:
    """``NAME=VALUE`` pairs a submitter sent (the daemon's ``secret`` fields) -> {NAME: value}.

    The value is always the text after the first ``=``, even one that starts
    with ``@``: the daemon never reads its own environment or files for a
    secret (the CLI as a client has read them on its side). The same checks
    and one-line messages as ``read_secret_args``; a message never holds a value.
    """
    from .validator import ENV_KEY_RE

    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not ENV_KEY_RE.match(name):  # what was sent is not echoed: it may be the value
            raise SecretError("--secret: expected NAME=VALUE, NAME of letters, digits and _ "
                              "(the value is not shown)")
        if name in values:
            raise SecretError(f"--secret {name}: given twice")
        if not value:
            raise SecretError(f"--secret {name}: the value is empty (expected a non-empty secret)")
        values[name] = value
    return values


def _value(name: str, sep: str, given: str, environ: Mapping[str, str]) -> str:
    if not sep:
        if name not in environ:
            raise SecretError(f"--secret {name}: the environment has no {name} (export it, or "
                              f"pass --secret {name}=@FILE)")
        value = environ[name]
    elif given.startswith("@"):
        try:
            with open(given[1:], encoding="utf-8") as f:
                value = f.read().removesuffix("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"--secret {name}=@{given[1:]}: cannot read it: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    else:
        value = given
    if not value:
        raise SecretError(f"--secret {name}: the value is empty (expected a non-empty secret)")
    return value


class Secrets:
    """The values of one job's secrets, and the masking of anything shown."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values = dict(values or {})
        patterns = set()
        for value in self.values.values():
            patterns.add(value)
            if "\n" in value:
                patterns.update(line for line in value.splitlines() if len(line.strip()) >= MIN_LINE)
        #: longest first: a secret that contains another is masked whole
        self.patterns = sorted((p.encode() for p in patterns if p), key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def for_names(self, names: Iterable[str]) -> dict[str, str]:
        """The environment entries of the named secrets (all of them given: checked at submit)."""
        missing = [n for n in names if n not in self.values]
        if missing:
            raise JobError(f"secret {missing[0]} was not given to this job (pass --secret "
                           f"{missing[0]} to sandbox submit)")
        return {n: self.values[n] for n in names}

    def mask_bytes(self, data: bytes) -> bytes:
        """``data`` with every byte of every occurrence (overlapping ones too) under a ***."""
        spans = sorted(_occurrences(data, self.patterns))
        if not spans:
            return data
        runs = [list(spans[0])]
        for start, end in spans[1:]:
            if start < runs[-1][1]:  # overlapping: one run under one ***
                runs[-1][1] = max(runs[-1][1], end)
            else:
                runs.append([start, end])
        out, shown = [], 0
        for start, end in runs:
            out += [data[shown:start], MASK.encode()]
            shown = end
        out.append(data[shown:])
        return b"".join(out)

    def mask(self, text: str) -> str:
        if not self.patterns or not text:
            return text
        return self.mask_bytes(text.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")

    def mask_tree(self, data: Any) -> Any:
        """Every string in a JSON-like tree (dict keys too), masked."""
        if isinstance(data, str):
            return self.mask(data)
        if isinstance(data, dict):
            return {self.mask_tree(k): self.mask_tree(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.mask_tree(v) for v in data]
        return data

    def stream(self) -> "StreamMasker":
        return StreamMasker(self)


class StreamMasker:
    """Masks a stream that arrives in chunks: a secret split across two chunks is still masked.

    ``feed`` returns what can be shown now; it holds back the longest tail
    that could be the start of a secret, until the next chunk tells (or
    ``flush``, at the end of the stream).
    """

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        if not self.secrets:
            return data
        buf = self.pending + data
        cut = _safe_cut(buf, self.secrets.patterns)
        self.pending = buf[cut:]
        return self.secrets.mask_bytes(buf[:cut])

    def flush(self) -> bytes:
        out, self.pending = self.secrets.mask_bytes(self.pending), b""
        return out


def _occurrences(data: bytes, patterns: list[bytes]) -> list[tuple[int, int]]:
    spans = []
    for pattern in patterns:
        at = data.find(pattern)
        while at >= 0:
            spans.append((at, at + len(pattern)))
            at = data.find(pattern, at + 1)
    return spans


def _safe_cut(buf: bytes, patterns: list[bytes]) -> int:
    """Where ``buf`` can be cut: before any tail that could begin a secret, and through
    no whole secret (which must be masked with all of its bytes on one side)."""
    cut = len(buf) - _partial_tail(buf, patterns)
    moved = True
    while moved:
        moved = False
        for pattern in patterns:
            at = buf.find(pattern, max(0, cut - len(pattern) + 1))
            if 0 <= at < cut < at + len(pattern):
                cut, moved = at, True
    return cut


def _partial_tail(buf: bytes, patterns: list[bytes]) -> int:
    """The length of the longest tail of ``buf`` that is a proper beginning of a pattern."""
    best = 0
    for pattern in patterns:
        first = pattern[:1]
        at = max(0, len(buf) - len(pattern) + 1)
        while True:
            at = buf.find(first, at)
            if at < 0 or len(buf) - at <= best:
                break
            if pattern.startswith(buf[at:]):
                best = len(buf) - at
                break
            at += 1
    return best
