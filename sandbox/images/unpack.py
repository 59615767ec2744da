"""Unpacking an archive, or copying a directory tree, into an image directory and never outside it.

Archives and imported directories are untrusted: a member may be named ``../x``
or ``/etc/x``, hard-link a host file, write through a symlink it made, or be a
device node. The work is split as umoci splits its layer unpacker:

- ``walk(stream, target)`` reads an archive (the decompressor chosen by its first
  bytes: gzip, xz, bzip2, zstd or none) and hands each member to ``apply_entry``;
  ``tee`` sees every byte of the uncompressed tar stream (a layer's diffID).
  ``tree.walk_directory(fd, target)`` does the same for a directory tree.
- ``apply_entry(target, member, data)`` is the only function that writes, and
  every entry takes the same path: the name is cleaned (absolute and ``..`` names
  are refused); the parent is opened by fd inside the root with no symlink
  followed (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, else O_NOFOLLOW component
  by component), missing directories made on the way; the entry is made relative
  to that fd, never following its last component; owner and mode are set on the
  entry itself (fchown/fchmod, lchown for links).

The rules: hard links only to regular files unpacked earlier by the same target
(their owner and mode are the first member's); symlinks are stored as they are
and never followed; device nodes are refused, except under ``dev/`` where they are
left out (every sandbox mounts its own /dev there); setuid and setgid bits are
kept, the store being unreadable to other host users, so they work only inside a
sandbox; owners are applied when unpacking as root; xattrs are not applied.
``Bounds`` caps members, content bytes and extended headers (tar bombs).

``Target`` holds the root (open by fd), the bounds, the on-disk format and what
was unpacked so far. The format (``RootfsFormat`` by default) is the one place
that decides special entries: device nodes, FIFOs and, for a layered store
(``OverlayFormat``), OCI whiteouts as overlay whiteouts. A bad member is an
``UnpackError`` (an ImageError): one line naming the member, what is wrong and
what is accepted. Use::

    with Target(root, bounds=Bounds(members=10_000)) as target:
        walk(stream, target)
    print(target.members, target.bytes)
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import ImageError
from ..linux.files import open_dir_beneath
from ..units import format_size
from .compression import ACCEPTED, decompressed, read_errors
from .streams import Readable

__all__ = ["Bounds", "Entry", "OnDiskFormat", "RootfsFormat", "Target", "UnpackError",
           "apply_entry", "clean_name", "clear_entry", "set_owner_and_mode", "walk"]

#: What a member may be, for the messages that refuse one.
ACCEPTED_TYPES = ("regular files, directories, symbolic links, FIFOs and hard links to "
                  "files earlier in the archive")
INSIDE = "relative paths inside the image"
CHUNK = 1 << 20


class UnpackError(ImageError):
    """A member refused, or an archive that cannot be read: one line naming the member."""

    def __init__(self, member: str | None, problem: str, accepted: str | None = None, *,
                 label: str = "archive member") -> None:
        text = f"{label} {member!r}: {problem}" if member is not None else problem
        super().__init__(text + (f"; accepted: {accepted}" if accepted else ""))
        self.member = member
        self.problem = problem
        self.accepted = accepted


@dataclass(frozen=True)
class Bounds:
    """The most one unpack may hold: members, bytes of content, bytes of one extended header."""

    members: int = 1_000_000
    bytes: int = 64 << 30
    header: int = 1 << 20


@dataclass
class Entry:
    """One member on its way in: its clean name, its last component, its parent's fd, its header."""

    name: str
    base: str
    dir_fd: int
    member: tarfile.TarInfo


class OnDiskFormat(Protocol):
    """How the entries a plain tree does not simply hold are written (one place to plug in)."""

    def special(self, target: "Target", entry: Entry) -> bool:
        """Write ``entry`` if it is special to this format and return True; False: the
        generic code writes it. Raise UnpackError to refuse it. Sees every entry first."""


class RootfsFormat:
    """A plain root filesystem: FIFOs made, device nodes refused (left out under dev/)."""

    def special(self, target: "Target", entry: Entry) -> bool:
        member = entry.member
        if member.ischr() or member.isblk():
            if entry.name.startswith("dev/"):
                return True  # every sandbox mounts its own /dev over it
            raise UnpackError(entry.name, "a device node", ACCEPTED_TYPES +
                              " (device nodes only under dev/, where they are left out)")
        if member.isfifo():
            clear_entry(target, entry)
            os.mkfifo(entry.base, 0o600, dir_fd=entry.dir_fd)
            fd = os.open(entry.base, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=entry.dir_fd)
            try:
                set_owner_and_mode(target, fd, member)
            finally:
                os.close(fd)
            return True
        return False


#: The xattr that makes a directory of an overlay layer hide what lower layers hold there.
OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


class OverlayFormat(RootfsFormat):
    """A layer of a layered store, to be an overlay lower dir (image-spec layer.md, overlayfs.rst).

    OCI whiteouts become overlay whiteouts: ``.wh.NAME`` a 0:0 character
    device at NAME, ``.wh..wh..opq`` the ``trusted.overlay.opaque=y`` xattr on
    its directory. A whiteout hides only what lower layers hold: a NAME this
    same layer made earlier stays (a directory becomes opaque instead), and an
    entry that comes after a whiteout of its name replaces it (a directory
    then opaque, so the lower one stays hidden). Other ``.wh..wh.`` names
    (AUFS bookkeeping) are left out. Making whiteouts and setting trusted
    xattrs needs root.
    """

    def special(self, target: "Target", entry: Entry) -> bool:
        base = entry.base
        if base == OPAQUE_MARKER:
            _set_opaque(entry.dir_fd, ".")
            return True
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return True
        if base.startswith(WHITEOUT_PREFIX):
            _whiteout(entry, base[len(WHITEOUT_PREFIX):])
            return True
        if entry.member.isdir() and _is_whiteout(entry.dir_fd, base):
            os.unlink(base, dir_fd=entry.dir_fd)
            os.mkdir(base, 0o700, dir_fd=entry.dir_fd)
            _set_opaque(entry.dir_fd, base)  # the generic code then sets owner and mode
        return super().special(target, entry)


def _whiteout(entry: Entry, name: str) -> None:
    if not name or name in (".", ".."):
        raise UnpackError(entry.name, "a whiteout of nothing", "'.wh.' followed by a file name")
    try:
        st = os.stat(name, dir_fd=entry.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=entry.dir_fd)
        return
    if stat.S_ISDIR(st.st_mode):
        _set_opaque(entry.dir_fd, name)  # made by this layer: it stays, lower content goes


def _is_whiteout(dir_fd: int, name: str) -> bool:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _set_opaque(dir_fd: int, name: str) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.setxattr(fd, OPAQUE_XATTR, b"y")
    finally:
        os.close(fd)


class Target:
    """Where an unpack writes: the root held open by fd, its bounds, its format, its progress."""

    def __init__(self, root: str | os.PathLike, *, bounds: Bounds = Bounds(),
                 disk_format: OnDiskFormat | None = None) -> None:
        self.root = os.fspath(root)
        self.root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        st = os.fstat(self.root_fd)
        self.root_id = (st.st_dev, st.st_ino)
        self.bounds = bounds
        self.format: OnDiskFormat = disk_format or RootfsFormat()
        self.as_root = os.geteuid() == 0
        self.members = 0
        self.bytes = 0
        self.files: set[str] = set()  # regular files unpacked so far: hard-link targets

    def admit(self, name: str, member: tarfile.TarInfo) -> None:
        """Count a member against the bounds, before any of it is read."""
        self.members += 1
        self.bytes += max(member.size, 0)
        if self.members > self.bounds.members:
            raise UnpackError(name, "one member too many", f"at most {self.bounds.members} members")
        if self.bytes > self.bounds.bytes:
            raise UnpackError(name, "past the size limit",
                              f"at most {format_size(self.bounds.bytes)} of content")

    def open_parent(self, name: str, parent: str) -> int:
        """An O_PATH fd of ``parent`` inside the root: real directories only, made if missing."""
        try:
            return open_dir_beneath(self.root_fd, parent.split("/") if parent else [], create=True)
        except NotADirectoryError as exc:
            raise UnpackError(name, f"its parent {exc.filename!r} is a symbolic link or a file",
                              "members under directories of the archive") from None

    def forget(self, name: str, was_dir: bool) -> None:
        """``name`` (and all below it, for a directory) is no longer a hard-link target."""
        self.files.discard(name)
        if was_dir:
            prefix = name + "/"
            self.files = {f for f in self.files if not f.startswith(prefix)}

    def close(self) -> None:
        os.close(self.root_fd)

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clean_name(name: str) -> str:
    """``name`` relative to the root, without ``.`` or empty parts; refuses ``/x`` and ``..``."""
    if name.startswith("/"):
        raise UnpackError(name, "an absolute path", INSIDE)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnpackError(name, "a path with '..', which could leave the image", INSIDE)
    return "/".join(parts)


def apply_entry(target: Target, member: tarfile.TarInfo, data: Readable | None = None) -> None:
    """Write one member under the target's root, by the rules in the module docstring."""
    name = clean_name(member.name)
    target.admit(name, member)
    if not name:
        if not member.isdir():
            raise UnpackError(member.name, "would replace the image's root", "a directory")
        return  # the root keeps the owner and mode its importer gave it
    parent, _, base = name.rpartition("/")
    dir_fd = target.open_parent(name, parent)
    try:
        entry = Entry(name, base, dir_fd, member)
        if target.format.special(target, entry):
            return
        writer = _writer(entry)
        writer(target, entry, data)
    except OSError as exc:
        raise UnpackError(name, f"cannot write it: {exc.strerror or exc}") from exc
    finally:
        os.close(dir_fd)


def _writer(entry: Entry) -> Callable[[Target, Entry, Readable | None], None]:
    member = entry.member
    if member.isreg():
        return _write_file
    if member.isdir():
        return _make_dir
    if member.issym():
        return _make_symlink
    if member.islnk():
        return _make_hardlink
    raise UnpackError(entry.name, f"an entry of tar type {member.type!r}", ACCEPTED_TYPES)


def clear_entry(target: Target, entry: Entry) -> None:
    """Remove what is at the entry's place (a directory with all it holds), never following it."""
    try:
        st = os.stat(entry.base, dir_fd=entry.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(entry.base, dir_fd=entry.dir_fd)
    else:
        os.unlink(entry.base, dir_fd=entry.dir_fd)
    target.forget(entry.name, stat.S_ISDIR(st.st_mode))


def set_owner_and_mode(target: Target, fd: int, member: tarfile.TarInfo) -> None:
    """The member's owner (as root), mode (setuid kept: set after the owner) and mtime, by fd."""
    if target.as_root:
        os.fchown(fd, *_owner(member))
    os.fchmod(fd, member.mode & 0o7777)
    _set_mtime(member, fd)


def _owner(member: tarfile.TarInfo) -> tuple[int, int]:
    for value in (member.uid, member.gid):
        if not 0 <= value < 0xFFFFFFFF:
            raise UnpackError(member.name, f"owner id {value} out of range", "0 to 4294967294")
    return member.uid, member.gid


def _set_mtime(member: tarfile.TarInfo, where: int | Entry) -> None:
    """The member's mtime on ``where``: an open fd, or an entry (a link: not followed)."""
    try:
        ns = int(member.mtime * 1e9)
        if isinstance(where, Entry):
            os.utime(where.base, ns=(ns, ns), dir_fd=where.dir_fd, follow_symlinks=False)
        else:
            os.utime(where, ns=(ns, ns))
    except (OverflowError, ValueError):
        pass  # a time the filesystem cannot hold: keep the time of unpacking


def _write_file(target: Target, entry: Entry, data: Readable | None) -> None:
    clear_entry(target, entry)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(entry.base, flags, 0o600, dir_fd=entry.dir_fd)
    try:
        _copy(entry, data, fd)
        set_owner_and_mode(target, fd, entry.member)
    finally:
        os.close(fd)
    target.files.add(entry.name)


def _copy(entry: Entry, data: Readable | None, fd: int) -> None:
    """Exactly the member's size from ``data`` into ``fd``; a short read is a truncated archive."""
    remaining = entry.member.size
    while remaining > 0:
        try:
            chunk = data.read(min(remaining, CHUNK)) if data is not None else b""
        except read_errors() + (OSError,) as exc:
            raise UnpackError(entry.name, f"the archive is truncated or corrupt here ({exc})",
                              ACCEPTED) from None
        if not chunk:
            raise UnpackError(entry.name, "the archive ends inside this member", ACCEPTED)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
        remaining -= len(chunk)


def _make_dir(target: Target, entry: Entry, data: Readable | None) -> None:
    try:
        st = os.stat(entry.base, dir_fd=entry.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is None or not stat.S_ISDIR(st.st_mode):
        clear_entry(target, entry)
        os.mkdir(entry.base, 0o700, dir_fd=entry.dir_fd)
    fd = os.open(entry.base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                 dir_fd=entry.dir_fd)
    try:
        set_owner_and_mode(target, fd, entry.member)
    finally:
        os.close(fd)


def _make_symlink(target: Target, entry: Entry, data: Readable | None) -> None:
    if not entry.member.linkname:
        raise UnpackError(entry.name, "a symbolic link to nothing", "links with a target")
    clear_entry(target, entry)
    os.symlink(entry.member.linkname, entry.base, dir_fd=entry.dir_fd)
    if target.as_root:
        os.chown(entry.base, *_owner(entry.member), dir_fd=entry.dir_fd, follow_symlinks=False)
    _set_mtime(entry.member, entry)


def _make_hardlink(target: Target, entry: Entry, data: Readable | None) -> None:
    """A second name for a file unpacked before: nothing else, and nothing outside."""
    linkname = entry.member.linkname
    accepted = "hard links to regular files earlier in the archive"
    try:
        source = clean_name(linkname)
    except UnpackError:
        raise UnpackError(entry.name, f"a hard link to {linkname!r}, outside the image",
                          accepted) from None
    if source not in target.files:
        raise UnpackError(entry.name, f"a hard link to {linkname!r}, not a file unpacked "
                          "before it", accepted)
    if source == entry.name:
        return
    parent, _, base = source.rpartition("/")
    src_fd = open_dir_beneath(target.root_fd, parent.split("/") if parent else [])
    try:
        if not stat.S_ISREG(os.stat(base, dir_fd=src_fd, follow_symlinks=False).st_mode):
            raise UnpackError(entry.name, f"a hard link to {linkname!r}, not a file", accepted)
        clear_entry(target, entry)
        os.link(base, entry.base, src_dir_fd=src_fd, dst_dir_fd=entry.dir_fd,
                follow_symlinks=False)
    finally:
        os.close(src_fd)
    target.files.add(entry.name)


def walk(stream: Readable, target: Target, *, tee: Callable[[bytes], None] | None = None) -> None:
    """Read the archive in ``stream`` and apply each member in order (stream mode: no seeking).

    ``tee`` gets every byte of the uncompressed tar stream, the end padding
    included (for a layer's diffID). A stream that is no archive, or ends early,
    is an UnpackError.
    """
    plain = decompressed(stream)
    if tee is not None:
        plain = _Tee(plain, tee)
    seen = 0
    try:
        # typeshed's tarfile.open wants a whole file object (read, write, seek, tell, close)
        # for every mode; a stream ("r|") is only read
        with tarfile.open(fileobj=plain, mode="r|",  # type: ignore[call-overload]
                          tarinfo=_bounded(target.bounds)) as tar:
            while (member := tar.next()) is not None:
                tar.members.clear()  # stream mode would keep every header in memory
                seen += 1
                apply_entry(target, member, tar.extractfile(member) if member.isreg() else None)
        if tee is not None:
            _drain(plain, target.bounds.bytes)
    except read_errors() + (OSError,) as exc:
        if seen == 0 and isinstance(exc, tarfile.ReadError):  # no tar header to be read
            raise UnpackError(None, f"expected a directory or {ACCEPTED}") from None
        raise UnpackError(None, f"the archive is truncated or corrupt after {seen} members "
                          f"({exc})", ACCEPTED) from None


def _bounded(bounds: Bounds) -> type[tarfile.TarInfo]:
    """A TarInfo class that refuses extended headers (PAX, GNU long names) over the bound."""

    class BoundedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
            if self.type in _EXTENDED and self.size > bounds.header:
                raise UnpackError(None, f"an extended header of {format_size(self.size)}",
                                  f"at most {format_size(bounds.header)}")
            return super()._proc_member(tar)  # type: ignore[misc]

    return BoundedTarInfo


_EXTENDED = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
             tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


def _drain(stream: Readable, limit: int) -> None:
    """Read what follows the archive's end, for the tee; at most ``limit`` bytes."""
    total = 0
    while chunk := stream.read(CHUNK):
        total += len(chunk)
        if total > limit:
            raise UnpackError(None, "too much data after the archive's end",
                              f"at most {format_size(limit)}")


class _Tee:
    """A readable stream that shows every byte it hands out to a callback."""

    def __init__(self, stream: Readable, tee: Callable[[bytes], None]) -> None:
        self._stream = stream
        self._tee = tee

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._tee(data)
        return data

