"""An image archive read as a table of members, never written to disk by its own names.

The archive (a docker-archive or an OCI layout tar, maybe compressed, maybe
standard input) is untrusted. It is made seekable first: a plain file is
read in place; anything else (compressed, a pipe) is copied, decompressed,
into a work file. Then its members are listed by clean name (``./x`` is
``x``; absolute and ``..`` names, and too many members, are refused) and
read by name: a symbolic or hard link inside the archive (docker-archive
shares layers that way) is followed within the archive only, a few times
at most. Nothing of it is written by name: blobs go into the store by
digest, layers through the unpacker.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO, BinaryIO

from ...errors import ImageError
from ..compression import ACCEPTED, decompressed, read_errors, sniff
from ..layout import MAX_DOCUMENT

MAX_MEMBERS = 100_000
_MAX_LINKS = 8


class ArchiveMembers:
    """The members of an image archive by clean name; ``read`` and ``open`` by name."""

    def __init__(self, stream: BinaryIO, work: Path, source: str) -> None:
        self.source = source
        self._file = _seekable(stream, work, source)
        try:
            self._tar = tarfile.open(fileobj=self._file, mode="r:")  # noqa: SIM115 - closed in close()
            self.members = self._index()
        except read_errors() + (OSError,) as exc:
            self._file.close()
            raise ImageError(f"cannot load {source}: not a readable tar archive ({exc}); expected {ACCEPTED}"
                             " holding a docker-archive or an OCI image layout") from None

    def _index(self) -> dict[str, tarfile.TarInfo]:
        found: dict[str, tarfile.TarInfo] = {}
        for count, member in enumerate(self._tar):
            if count >= MAX_MEMBERS:
                raise ImageError(f"cannot load {self.source}: more than {MAX_MEMBERS} members")
            found[clean(member.name, self.source)] = member
            # the index above is all that is kept; TarFile.members is undocumented, so
            # typeshed leaves it out
            self._tar.members.clear()  # type: ignore[attr-defined]
        return found

    def has(self, name: str) -> bool:
        return name in self.members

    def open(self, name: str) -> IO[bytes]:
        """A reader of the regular file ``name`` (links inside the archive followed)."""
        member = self._resolve(name)
        reader = self._tar.extractfile(member)
        if reader is None:
            raise ImageError(f"cannot load {self.source}: {name!r} is not a file")
        return reader

    def size(self, name: str) -> int:
        return self._resolve(name).size

    def read(self, name: str, limit: int = MAX_DOCUMENT) -> bytes:
        """The whole (small) file ``name``, at most ``limit`` bytes."""
        if self.size(name) > limit:
            raise ImageError(f"cannot load {self.source}: {name!r} has {self.size(name)} bytes, "
                             f"at most {limit} accepted")
        with self.open(name) as f:
            return f.read()

    def _resolve(self, name: str) -> tarfile.TarInfo:
        for _ in range(_MAX_LINKS):
            member = self.members.get(name)
            if member is None:
                raise ImageError(f"cannot load {self.source}: it has no member {name!r}",
                                 hint="the archive is incomplete or of another kind")
            if member.isreg():
                return member
            if member.issym():
                name = clean(os.path.normpath(os.path.join(os.path.dirname(name), member.linkname)), self.source)
            elif member.islnk():
                name = clean(member.linkname, self.source)
            else:
                raise ImageError(f"cannot load {self.source}: {name!r} is not a file")
        raise ImageError(f"cannot load {self.source}: {name!r} is a chain of too many links")

    def close(self) -> None:
        self._tar.close()
        self._file.close()


def clean(name: str, source: str) -> str:
    """A member name relative to the archive's root; absolute and ``..`` names refused."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise ImageError(f"cannot load {source}: member {name!r} points outside the archive")
    return "/".join(parts)


def _seekable(stream: BinaryIO, work: Path, source: str) -> BinaryIO:
    """``stream`` itself when it is a plain regular file; else a decompressed copy in ``work``."""
    try:
        fd = stream.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (OSError, AttributeError, ValueError):
        regular = False
    if regular:
        start = stream.tell()
        kind, _ = sniff(stream)
        stream.seek(start)
        if kind is None:
            return stream
    copy = open(work / "archive.tar", "w+b")  # noqa: SIM115 - returned open
    try:
        shutil.copyfileobj(decompressed(stream), copy, 1 << 20)
    except read_errors() + (OSError,) as exc:
        copy.close()
        raise ImageError(f"cannot load {source}: the archive is truncated or corrupt ({exc}); "
                         f"expected {ACCEPTED}") from None
    copy.seek(0)
    return copy
