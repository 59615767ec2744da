"""COPY and ADD: what they copy, as the tar of one new layer.

Docker's rules: a directory source copies its content into the destination;
a file goes into the destination when that is a directory (written with a
trailing ``/``, several sources, a wildcard, or a directory in the image),
else it becomes the destination; directories missing on the way are made
(0755, root); those the image has keep their owner and mode. Files keep
their mode (or ``--chmod``) and become root's (or ``--chown``'s). ADD
unpacks a local archive (tar, plain or compressed) into the destination,
through the store's safe unpacker, instead of copying it.

The tar is written straight from the context's open files (``context``),
then stored like any layer (``images.layer_from_tar``), which unpacks it
with the same checks as an archive from outside.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from contextlib import closing
from pathlib import Path

from ..model import Image
from . import imagefs
from .context import Context, Entry, Files, Source
from .steps import CopyAction

ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


class LayerTar:
    """One COPY's layer, entry by entry; parent directories written once, before their content."""

    def __init__(self, tar: tarfile.TarFile, image: Image | None, owner: tuple[int, int] | None,
                 chmod: int | None) -> None:
        self.tar, self.image, self.owner, self.chmod = tar, image, owner, chmod
        self.dirs: set[str] = set()

    def parents(self, path: str) -> None:
        """The directories above ``path`` (absolute, canonical), as the image has them."""
        parts = [p for p in path.split("/") if p][:-1]
        for n in range(1, len(parts) + 1):
            self._dir("/".join(parts[:n]), None)

    def directory(self, path: str) -> None:
        """``path`` (absolute, canonical) as a directory: the image's, or a new one (0755)."""
        if path.strip("/"):
            self.parents(path)
            self._dir(path.strip("/"), None)

    def _dir(self, rel: str, entry: Entry | None) -> None:
        if rel in self.dirs:
            return
        self.dirs.add(rel)
        info = tarfile.TarInfo(rel + "/")
        info.type = tarfile.DIRTYPE
        st = imagefs.stat_in(self.image, "/" + rel)
        if st is not None and stat.S_ISDIR(st.st_mode):  # carried over unchanged
            info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
            info.mtime = int(st.st_mtime)
        else:
            info.mode = self.chmod if entry is not None and self.chmod is not None else (
                entry.mode if entry is not None else 0o755)
            info.uid, info.gid = self.owner or (0, 0)
            info.mtime = 0
        self.tar.addfile(info)

    def add(self, path: str, entry: Entry, fd: int | None, *, as_is: bool = False) -> None:
        """One entry at ``path`` (absolute, canonical) in the image; ``as_is`` keeps its
        owner and mode (an unpacked archive's), else they are COPY's."""
        rel = path.strip("/")
        self.parents(path)
        if entry.kind == "dir":
            self._dir(rel, entry)
            return
        info = tarfile.TarInfo(rel)
        info.uid, info.gid = (entry.uid, entry.gid) if as_is else (self.owner or (0, 0))
        if entry.kind == "link":
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.link or "", 0o777
            self.tar.addfile(info)
            return
        info.mode = entry.mode if as_is or self.chmod is None else self.chmod
        info.size = entry.size
        assert fd is not None
        with os.fdopen(os.dup(fd), "rb") as data:
            info.mtime = int(os.fstat(data.fileno()).st_mtime)
            self.tar.addfile(info, data)


def write_copy_tar(out: Path, action: CopyAction, ctx: Files, image: Image | None,
                   owner: tuple[int, int] | None, work: Path) -> None:
    """The layer of a COPY/ADD from the context, as a tar at ``out``."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        layer = LayerTar(tar, image, owner, action.chmod)
        into_dir = action.dest_is_dir or imagefs.is_dir(image, imagefs.canonical(image, action.dest))
        for pattern in action.sources:
            for source in ctx.sources(pattern):
                if action.add and _is_archive(ctx, source):
                    _add_archive(layer, ctx, source, action.dest, image, work)
                    continue
                _copy_source(layer, ctx, source, action.dest, into_dir, image)


def _copy_source(layer: LayerTar, ctx: Files, source: Source, dest: str, into_dir: bool,
                 image: Image | None) -> None:
    top = None
    for entry, fd in ctx.entries(source.path):
        if top is None:
            top = entry
            if entry.kind == "dir":
                target = imagefs.canonical(image, dest)
            else:
                target = imagefs.canonical(image, posixpath.join(dest, source.name) if into_dir else dest)
            if target == "/" and entry.kind != "dir":
                raise ValueError(f"cannot copy the file {source.name!r} onto / itself")
            if entry.kind == "dir" and target == "/":
                continue  # the image's root keeps its own owner and mode
            layer.add(target, entry, fd)
            continue
        layer.add(posixpath.join(target, entry.rel), entry, fd)


def _is_archive(ctx: Files, source: Source) -> bool:
    """A regular file whose first bytes say tar (plain, gzip, bzip2, xz or zstd)."""
    with closing(ctx.entries(source.path)) as entries:
        entry, fd = next(entries)
        if entry.kind != "file" or fd is None:
            return False
        head = os.pread(fd, 512, 0)
    return head.startswith(ARCHIVE_MAGIC) or head[257:262] == b"ustar"


def _add_archive(layer: LayerTar, ctx: Files, source: Source, dest: str, image: Image | None,
                 work: Path) -> None:
    """Unpack the archive with the store's unpacker, then carry its tree into the layer."""
    from ..unpack import Target, walk

    staging = work / f"add-{len(os.listdir(work))}"
    staging.mkdir(mode=0o700)
    for _entry, fd in ctx.entries(source.path):
        assert fd is not None
        with os.fdopen(os.dup(fd), "rb") as stream, Target(staging) as target:
            walk(stream, target)
    target_dir = imagefs.canonical(image, dest)
    layer.directory(target_dir)
    with Context(str(staging), ignore_file=False) as unpacked:
        for entry, fd in unpacked.entries(""):
            if entry.rel:  # the staging dir itself is ours, not the archive's
                layer.add(posixpath.join(target_dir, entry.rel), entry, fd, as_is=True)
