"""`sandbox image import`: a rootfs tarball or directory becomes a one-layer image.

The source is untrusted: an archive (a path, or ``-`` for standard input) is
unpacked by ``unpack.walk``, a directory walked by ``tree.walk_directory``,
both writing only through ``unpack.apply_entry``. A device or a FIFO is
never opened (a read from it need not end); a directory that holds the store
is refused. Nothing is named until the image is whole: a failed import
leaves nothing, a killed one only its work dir (``sandbox gc`` removes it).
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Any

from ..errors import ImageError
from ..import_sources import SOURCES, file_kind, os_error_text
from ..securejoin import within
from . import layout
from .layers import layer_from_tar
from .oci import ImageConfig
from .pack import layer_from_directory
from .reference import parse_reference
from .refs import check_taggable, read_index
from .stored import StoredImage, write_image

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: What `image import` reads, for the message that refuses anything else.


def import_rootfs(source: str, ref_text: str, *, replace: bool = False, bounds=None) -> StoredImage:
    """Store ``source`` as the one-layer image ``ref_text`` (NAME[:TAG])."""
    ref = _new_ref(ref_text, replace)
    kind, handle = open_source(source)
    try:
        return _store(kind, handle, source, ref, replace, bounds)
    finally:
        if kind == "directory":
            os.close(handle)
        elif source != "-":
            handle.close()


def import_archive(stream: Any, ref_text: str, *, name: str, replace: bool = False,
                   bounds=None) -> StoredImage:
    """Store the rootfs tarball read from ``stream`` (an upload to the daemon) as
    ``ref_text``, as ``import_rootfs`` stores an archive: the same checks, the same
    unpacker; ``name`` is the source as its sender named it, for messages and history."""
    ref = _new_ref(ref_text, replace)
    return _store("archive", stream, name, ref, replace, bounds)


def _new_ref(ref_text: str, replace: bool):
    ref = parse_reference(ref_text)
    check_taggable(ref)
    if not replace and str(ref) in read_index():
        raise ImageError(f"image {ref} already exists", hint="use --replace, or another tag")
    return ref


def _store(kind: str, handle: Any, source: str, ref, replace: bool, bounds) -> StoredImage:
    """The layer unpacked from ``handle``, written as a one-layer image; nothing named on failure."""
    from .unpack import UnpackError

    try:
        with layout.writing():
            if kind == "directory":
                layer = layer_from_directory(handle, bounds)
            else:
                layer = layer_from_tar(handle, bounds)
            history = [{"created_by": f"sandbox image import {os.path.basename(source.rstrip('/'))}"}]
            return write_image([layer], ImageConfig(env=(DEFAULT_PATH,)), history=history,
                               tag=ref, replace=replace)
    except UnpackError as exc:
        raise ImageError(f"cannot import {source}: {exc.message}") from exc


def open_source(source: str) -> tuple[str, Any]:
    """("directory", fd) or ("archive", binary stream) for ``source``; anything else refused.

    Checked with stat before it is opened, so a device or a FIFO is never
    opened; ``-`` is stdin.
    """
    if source == "-":
        return "archive", sys.stdin.buffer
    try:
        st = os.stat(source)
    except OSError as exc:
        raise ImageError(f"cannot import {source}: {os_error_text(exc)}") from None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise ImageError(f"cannot import {source}: it is {file_kind(st.st_mode)}; accepted: {SOURCES}")
    if stat.S_ISDIR(st.st_mode):
        _refuse_the_store(source)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ImageError(f"cannot import {source}: {os_error_text(exc)}") from None
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise ImageError(f"cannot import {source}: it changed while it was being opened")
    if stat.S_ISDIR(st.st_mode):
        return "directory", fd
    os.set_blocking(fd, True)
    return "archive", os.fdopen(fd, "rb")


def _refuse_the_store(source: str) -> None:
    """A directory that holds the image store would be copied into itself, without end."""
    store = os.path.realpath(layout.root())
    real = os.path.realpath(source)
    if within(store, real):
        raise ImageError(f"cannot import {source}: it holds the image store ({store}), which "
                         "an import writes to; accepted: a directory outside it")


