"""Packing a directory tree into a layer: an overlay upper dir, or a plain rootfs.

``layer_from_upper(upper)`` turns what a sandbox changed (the upper dir of
its overlay) into a layer, the one way both `sandbox commit` and builds make
layers from a RUN: overlay whiteouts (a 0:0 character device, or a file
with ``trusted.overlay.whiteout``) become OCI whiteouts (``.wh.NAME``), and
a directory with ``trusted.overlay.opaque=y`` gets ``.wh..wh..opq`` as its
first entry (image-spec layer.md; the kernel's overlayfs.rst). The overlay
is mounted with ``redirect_dir=off`` and ``metacopy=off``, so an upper dir
never holds a rename redirect or a metadata-only copy; one that does is
refused rather than packed wrong.

The tree is untrusted (a live sandbox may be changing it): it is walked by
file descriptor, never following a symbolic link, each entry opened
relative to its parent with O_NOFOLLOW and described by what fstat says of
the open file. The tar (PAX, entries sorted by name) is written to a blob
and hashed as it goes; then the blob is unpacked into the store by the same
unpacker as any other layer.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterable
from typing import BinaryIO

from ..errors import ImageError
from . import layout
from .digest import Digester
from .layers import Layer, layer_from_tar, store_unpacked, unpack_into

OPAQUE = "trusted.overlay.opaque"
WHITEOUT_XATTR = "trusted.overlay.whiteout"
REFUSED_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def layer_from_upper(upper: str | os.PathLike | Iterable[tuple[str, str]]) -> Layer:
    """Store the changes in an overlay upper dir as a layer (the Layer: diffID, blob digest).

    ``upper`` is one directory, or (container path, upper dir) pairs for a
    sandbox whose writable layer is split (the ``host`` image: one upper for
    ``/`` and one per host directory it shows).
    """
    parts = [("", os.fspath(upper))] if isinstance(upper, (str, os.PathLike)) else list(upper)
    return _store(parts)


def layer_from_directory(source_fd: int, bounds=None) -> Layer:
    """Store the plain directory tree open at ``source_fd`` (a rootfs to import) as a layer.

    The tree goes in through the unpacker (``tree.walk_directory``: by fd, on
    one filesystem, by the same rules as an archive); the layer's tar is then
    written from the unpacked copy, which is ours.
    """
    from .tree import walk_directory

    with layout.writing(), layout.work_dir("import") as work:
        unpack_into(work / "layer", lambda target: walk_directory(source_fd, target), bounds)
        with open(work / "blob", "wb") as out:
            diff_id, size = write_tar([("", str(work / "layer" / "rootfs"))], out)
        store_unpacked(work / "layer", work / "blob", diff_id)
        return Layer(diff_id, diff_id, size)


def _store(parts: list[tuple[str, str]]) -> Layer:
    with layout.writing(), layout.work_dir("pack") as work:
        tar_path = work / "layer.tar"
        with open(tar_path, "wb") as out:
            write_tar(parts, out)
        with open(tar_path, "rb") as stream:
            return layer_from_tar(stream)


def write_tar(parts: list[tuple[str, str]], out: BinaryIO) -> tuple[str, int]:
    """Write the overlay trees as one tar to ``out``; the tar's digest (its diffID) and size."""
    digester = Digester()

    class Tee:
        def write(self, data: bytes) -> int:
            digester.update(data)
            return out.write(data)

    # typeshed's tarfile.open wants a whole file object (read, write, seek, tell, close)
    # for every mode; a stream ("w|") is only written
    with tarfile.open(fileobj=Tee(), mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for prefix, top in parts:
            try:
                fd = os.open(top, _DIR_FLAGS)
            except FileNotFoundError:
                continue  # nothing written there
            try:
                _Walker(tar).walk(fd, prefix.strip("/"))
            finally:
                os.close(fd)
    return digester.digest, digester.size


class _Walker:
    """One depth-first walk by fd; hard links remembered across the whole tar."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.links: dict[tuple[int, int], str] = {}

    def walk(self, dir_fd: int, prefix: str) -> None:
        if _xattr(dir_fd, OPAQUE) == b"y" and prefix:
            self._add_whiteout(prefix, ".wh..wh..opq")
        for name in sorted(os.listdir(dir_fd)):
            path = f"{prefix}/{name}" if prefix else name
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._add_dir(dir_fd, name, path)
            elif _is_whiteout(dir_fd, name, st):
                self._add_whiteout(prefix, ".wh." + name)
            else:
                self._add_other(dir_fd, name, path, st)

    def _add_dir(self, parent_fd: int, name: str, path: str) -> None:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                return  # gone or replaced while we walked a live tree
            raise
        try:
            _refuse_overlay_metadata(fd, path)
            info = _info(path, os.fstat(fd), tarfile.DIRTYPE)
            self.tar.addfile(info)
            self.walk(fd, path)
        finally:
            os.close(fd)

    def _add_whiteout(self, prefix: str, name: str) -> None:
        info = tarfile.TarInfo(f"{prefix}/{name}" if prefix else name)
        info.mode = 0o600
        info.mtime = 0
        self.tar.addfile(info)

    def _add_other(self, dir_fd: int, name: str, path: str, st: os.stat_result) -> None:
        if stat.S_ISREG(st.st_mode):
            self._add_file(dir_fd, name, path)
        elif stat.S_ISLNK(st.st_mode):
            info = _info(path, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(name, dir_fd=dir_fd)
            self.tar.addfile(info)
        elif stat.S_ISFIFO(st.st_mode):
            self.tar.addfile(_info(path, st, tarfile.FIFOTYPE))
        # sockets, and device nodes a sandbox made, are not content of a layer

    def _add_file(self, dir_fd: int, name: str, path: str) -> None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):
                return
            raise
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return
            _refuse_overlay_metadata(fd, path)
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                info = _info(path, st, tarfile.LNKTYPE)
                info.linkname = self.links[key]
                self.tar.addfile(info)
                return
            if st.st_nlink > 1:
                self.links[key] = path
            info = _info(path, st, tarfile.REGTYPE)
            info.size = st.st_size
            try:
                self.tar.addfile(info, f)
            except tarfile.ReadError as exc:  # shrank while read: a live sandbox's file
                raise ImageError(f"{path} changed while it was packed; try again") from exc


def _info(path: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    return info


def _is_whiteout(dir_fd: int, name: str, st: os.stat_result) -> bool:
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError:
            return False
        try:
            return _xattr(fd, WHITEOUT_XATTR) is not None
        finally:
            os.close(fd)
    return False


def _xattr(fd: int, name: str) -> bytes | None:
    try:
        return os.getxattr(fd, name)
    except OSError:
        return None


def _refuse_overlay_metadata(fd: int, path: str) -> None:
    for name in REFUSED_XATTRS:
        if _xattr(fd, name) is not None:
            raise ImageError(f"{path} carries {name}: the overlay was mounted with redirects "
                             "or metacopy on, and its upper dir cannot be packed as a layer")
