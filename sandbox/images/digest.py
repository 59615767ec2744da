"""Digests: validated before they name a path, checked while content is read.

A digest is ``sha256:<64 lowercase hex>`` (image-spec descriptor.md: the only
algorithm the store accepts). Every digest that comes from outside (a
manifest, an index, an archive, a command line) goes through
``parse_digest`` before it is joined to a path: a digest such as
``sha256:../../etc`` must never reach the file system (containers/image
CVE-2024-3727). Readers check size and digest as the bytes go by
(``VerifiedReader``), so a blob that changed on disk or a lying manifest is
caught before its content is trusted.
"""

from __future__ import annotations

import hashlib
import re

from ..errors import ImageError
from .streams import ReadCloser

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def parse_digest(text: object, *, what: str = "digest") -> str:
    """``text`` if it is a valid sha256 digest, else ImageError naming ``what``."""
    if not isinstance(text, str) or not _DIGEST_RE.match(text):
        shown = text if isinstance(text, str) and len(text) < 100 else type(text).__name__
        raise ImageError(f"invalid {what} {shown!r}: expected sha256: and 64 lowercase hex digits")
    return text


def encoded(digest: str) -> str:
    """The hex part of a validated digest (its file name under blobs/sha256/)."""
    return parse_digest(digest)[len(ALGORITHM) + 1:]


def digest_bytes(data: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def short_id(digest: str) -> str:
    """The 12 hex digits people see (`sandbox images`)."""
    return encoded(digest)[:12]


class Digester:
    """A running sha256 over bytes seen, with their count."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return f"{ALGORITHM}:{self._hash.hexdigest()}"


class VerifiedReader:
    """A file object that fails (ImageError) when the bytes read are not the
    expected ones: more than ``size`` bytes, or a different digest at the end.

    Only the end of the stream proves the digest: callers must read to EOF
    (``read_all`` or ``drain``) before they trust what they read.
    """

    def __init__(self, raw: ReadCloser, digest: str, size: int | None, *, what: str = "blob") -> None:
        self._raw = raw
        self._expected = parse_digest(digest)
        self._size = size
        self._what = what
        self._seen = Digester()
        self.verified = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._seen.update(data)
        if self._size is not None and self._seen.size > self._size:
            raise ImageError(f"{self._what} {self._expected} is larger than its {self._size} bytes")
        if not data or n is None or n < 0:
            self._finish()
        return data

    def _finish(self) -> None:
        if self._size is not None and self._seen.size != self._size:
            raise ImageError(f"{self._what} {self._expected} has {self._seen.size} bytes, "
                             f"expected {self._size}")
        if self._seen.digest != self._expected:
            raise ImageError(f"{self._what} {self._expected} does not match its digest "
                             f"(got {self._seen.digest}): the store or the source is corrupt")
        self.verified = True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "VerifiedReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def drain(self) -> None:
        """Read what is left, so the digest is checked."""
        while self.read(1 << 20):
            pass
        if not self.verified:
            self._finish()
