"""Image references: ``NAME[:TAG]`` (tag ``latest`` when omitted), or ``NAME@DIGEST``.

NAME is one or more ``/``-separated components of lowercase letters, digits,
``.``, ``_`` and ``-`` (each starting with a letter or digit), so the names
people know from Docker (``busybox``, ``team/tool``) work; the first
component may be a registry host (``localhost:5000/tool``). TAG is at most
128 letters, digits, ``_``, ``.`` and ``-``, not starting with ``.`` or
``-``. A reference is parsed once, at the edge; a bad one is an ImageError
saying what is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ImageError
from .digest import parse_digest

DEFAULT_TAG = "latest"
_COMPONENT = r"[a-z0-9][a-z0-9_.-]{0,127}"
_DOMAIN = r"[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]{1,5})?"
_NAME_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
ACCEPTED = ("NAME[:TAG] with a lowercase NAME (letters, digits, '.', '_', '-', '/') and a TAG "
            "of at most 128 letters, digits, '_', '.', '-'")


@dataclass(frozen=True)
class Reference:
    """A parsed reference: ``name`` with a ``tag``, or pinned to a manifest ``digest``."""

    name: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}"


def parse_reference(text: object) -> Reference:
    """``NAME[:TAG]`` or ``NAME@sha256:...``; ImageError when malformed."""
    if not isinstance(text, str) or not text or len(text) > 512:
        raise ImageError(f"invalid image reference {text!r}: expected {ACCEPTED}")
    name, at, digest = text.partition("@")
    if at:
        _check_name(name, text)
        return Reference(name, None, parse_digest(digest, what=f"digest in {text!r}"))
    last = name.rsplit("/", 1)[-1]
    tag = DEFAULT_TAG
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise ImageError(f"invalid tag {tag!r} in {text!r}: expected {ACCEPTED}")
    _check_name(name, text)
    return Reference(name, tag)


def _check_name(name: str, text: str) -> None:
    if len(name) > 255 or not _NAME_RE.match(name):
        raise ImageError(f"invalid image name {name!r} in {text!r}: expected {ACCEPTED}")
