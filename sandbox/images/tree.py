"""A directory tree as a stream of archive members, so an imported directory takes the
same path through ``unpack.apply_entry`` as an archive does.

The tree is read by fd, never through a symlink (each directory opened beneath
the source with no link followed); it stays on the source's filesystem (mount
points below it come out as empty directories, as ``tar --one-file-system``);
files are opened with O_NOFOLLOW|O_NONBLOCK, so a FIFO or a file swapped for
one cannot hang the import; hard-linked files stay linked; sockets are left out.
A tree that holds the image being made (the store itself) is refused.
"""

from __future__ import annotations

import os
import stat
import tarfile

from ..linux.files import open_dir_beneath
from .unpack import Target, UnpackError
from .unpack import apply_entry as _apply_member

_TYPES = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFREG: tarfile.REGTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
          stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE}


def walk_directory(source_fd: int, target: Target, *, exclude: tuple[str, ...] = ()) -> None:
    """Apply every entry of the tree open at ``source_fd``, parents before children.

    ``exclude``: names left out wherever they are (with all below them).
    """
    device = os.fstat(source_fd).st_dev
    links: dict[tuple[int, int], str] = {}
    pending = [""]
    while pending:
        prefix = pending.pop()
        for name, st in _read_source(prefix or ".", _entries, source_fd, prefix):
            if name.rpartition("/")[2] in exclude:
                continue
            if (st.st_dev, st.st_ino) == target.root_id:
                raise UnpackError(name, "is the image being made (the source holds the image store)",
                                  "a directory outside the image store", label="entry")
            if stat.S_IFMT(st.st_mode) not in _TYPES:
                continue  # a socket: as tar, left out
            info = _member(name, st)
            if stat.S_ISDIR(st.st_mode):
                apply_entry(target, info)
                if st.st_dev == device:
                    pending.append(name + "/")
            elif stat.S_ISREG(st.st_mode):
                _apply_file(source_fd, target, info, st, links)
            else:
                if stat.S_ISLNK(st.st_mode):
                    info.linkname = _read_source(name, _read_link, source_fd, name)
                apply_entry(target, info)


def apply_entry(target: Target, info: tarfile.TarInfo, data=None) -> None:
    """``unpack.apply_entry``, its refusals naming a directory entry, not an archive member."""
    try:
        _apply_member(target, info, data)
    except UnpackError as exc:
        if exc.member is None:
            raise
        raise UnpackError(exc.member, exc.problem, exc.accepted, label="entry") from None


def _read_source(name: str, read, *args):
    """``read(*args)``, an OSError on the source side made an UnpackError naming ``name``."""
    try:
        return read(*args)
    except OSError as exc:
        raise UnpackError(name, f"cannot read it: {exc.strerror or exc}", label="entry") from None


def _entries(source_fd: int, prefix: str) -> list[tuple[str, os.stat_result]]:
    """The entries of directory ``prefix`` (lstat), sorted by name."""
    dir_fd = _open_dir(source_fd, prefix)
    try:
        with os.scandir(dir_fd) as it:
            return sorted((prefix + e.name, e.stat(follow_symlinks=False)) for e in it)
    finally:
        os.close(dir_fd)


def _open_dir(source_fd: int, path: str) -> int:
    parts = [p for p in path.split("/") if p]
    path_fd = open_dir_beneath(source_fd, parts)
    try:
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=path_fd)
    finally:
        os.close(path_fd)


def _member(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = _TYPES[stat.S_IFMT(st.st_mode)]
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = st.st_mtime
    info.size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return info


def _apply_file(source_fd: int, target: Target, info: tarfile.TarInfo, st: os.stat_result,
                links: dict[tuple[int, int], str]) -> None:
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in links:
        info.type, info.linkname, info.size = tarfile.LNKTYPE, links[key], 0
        apply_entry(target, info)
        return
    with _read_source(info.name, _open_file, source_fd, info.name, st) as data:
        apply_entry(target, info, data)
    if st.st_nlink > 1:
        links[key] = info.name


def _open_file(source_fd: int, name: str, st: os.stat_result):
    parent, _, base = name.rpartition("/")
    dir_fd = open_dir_beneath(source_fd, [p for p in parent.split("/") if p])
    try:
        fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
        os.close(fd)
        raise UnpackError(name, "changed while it was being imported", label="entry")
    return os.fdopen(fd, "rb")


def _read_link(source_fd: int, name: str) -> str:
    parent, _, base = name.rpartition("/")
    dir_fd = open_dir_beneath(source_fd, [p for p in parent.split("/") if p])
    try:
        return os.readlink(base, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
