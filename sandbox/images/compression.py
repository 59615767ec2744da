"""The decompressor of an archive, chosen by its first bytes, not by its name.

gzip, xz and bzip2 come with Python; zstd needs the ``zstandard`` package
(the ``zstd`` extra), and its absence is a clear ImageError, not a crash.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from ..errors import ImageError
from .streams import Readable

#: (magic bytes, name) of the formats we can read, in the order they are tried.
MAGIC = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"),
         (b"\x28\xb5\x2f\xfd", "zstd"))

ACCEPTED = "a tar archive, plain or compressed with gzip, xz, bzip2 or zstd"


def sniff(stream: Readable) -> tuple[str | None, BinaryIO]:
    """The compression ``stream`` uses (None: none) and a stream that still starts at byte 0."""
    head = b""
    while len(head) < 6:
        chunk = stream.read(6 - len(head))
        if not chunk:
            break
        head += chunk
    rewound = io.BufferedReader(_Prefixed(head, stream), 1 << 16)
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name, rewound
    return None, rewound


def decompressed(stream: Readable) -> Readable:
    """``stream`` read through the decompressor its first bytes call for."""
    kind, rewound = sniff(stream)
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=rewound, mode="rb")
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(rewound)
    if kind == "bzip2":
        import bz2

        return bz2.BZ2File(rewound)
    if kind == "zstd":
        return _zstd(rewound)
    return rewound


def read_errors() -> tuple[type[BaseException], ...]:
    """What a truncated or corrupt compressed stream raises while it is read."""
    import lzma
    import tarfile
    import zlib

    found: list[type[BaseException]] = [tarfile.TarError, EOFError, zlib.error, lzma.LZMAError]
    try:
        import zstandard

        found.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(found)


def _zstd(stream: BinaryIO) -> Readable:
    try:
        import zstandard
    except ImportError:
        raise ImageError("the archive is zstd-compressed, and the zstandard package is missing",
                         hint="pip install zstandard, or decompress it first") from None
    return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)


class _Prefixed(io.RawIOBase):
    """The bytes already read from a stream, then the rest of it."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)
