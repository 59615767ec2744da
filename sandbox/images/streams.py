"""What the image code asks of a stream of bytes: ``Readable``, ``ReadCloser``, ``BlobReader``.

Layers, blobs and archives pass through stacks of readers (a file, an HTTP
body, a decompressor, a digest check, a copy to a blob file, a progress
count), each wrapping the one below it and each offering only what the next
one calls. These protocols say that much and no more, so any of them can be
stacked on any other; ``typing.BinaryIO`` would ask for a whole file object.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self


class Readable(Protocol):
    """Bytes read front to back; ``read()`` with no size reads to the end, ``b""`` is the end."""

    def read(self, size: int = -1, /) -> bytes: ...


class ReadCloser(Readable, Protocol):
    """A reader its caller closes when done (a file, a response body, a wrapper of one)."""

    def close(self) -> object: ...


class BlobReader(ReadCloser, Protocol):
    """A reader of one blob that its caller closes, with ``with`` or ``close()``."""

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None, /) -> object: ...
