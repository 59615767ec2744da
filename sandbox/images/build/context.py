"""The build context: what COPY and ADD may read, walked safely, and its content digest.

A context is a host directory chosen by whoever runs the build, and its
content is untrusted (a job's workspace, a checkout): nothing in it may lead
a build to read outside it. Sources are resolved by hand inside the context
(a symbolic link is followed only while it stays inside; one pointing out,
an absolute source or ``..`` above the root is refused), then opened
component by component from the context's directory fd with O_NOFOLLOW, so
a link swapped in after the check fails instead of being followed. Inside a
copied directory, links are copied as links, never followed. Paths the
context's ignore file excludes (``ignore``) are not there for COPY.

``digest`` is the content part of a COPY's cache key: every entry's path,
type, mode, owner, size and bytes (or link target), never its times.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Protocol

from . import ignore

_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
MAX_LINK_HOPS = 40
CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One thing to copy: ``rel`` is its path below the source ('' for the source itself)."""

    rel: str
    kind: str  # "file", "dir" or "link"
    mode: int
    uid: int
    gid: int
    size: int = 0
    link: str | None = None


@dataclass(frozen=True)
class Source:
    """A source as matched in the context: the name it is copied as, its path inside."""

    name: str
    path: str


class Files(Protocol):
    """What COPY reads from: a build Context, or an image (``imagefs.ImageSource``)."""

    def sources(self, pattern: str) -> list[Source]:
        """The sources ``pattern`` names; ValueError when it names nothing."""
        ...

    def entries(self, path: str) -> Generator[tuple[Entry, int | None]]:
        """(Entry, fd or None) for ``path`` and everything below it; each fd is open
        until the next item is asked for."""
        ...


class Context:
    """An open build context; use as a context manager. Errors are ValueError, one line."""

    def __init__(self, root: str, *, ignore_file: bool = True) -> None:
        self.root = os.path.realpath(root)
        try:
            self.fd = os.open(self.root, _DIR)
        except OSError as exc:
            raise ValueError(f"the build context {root!r} cannot be opened: {exc.strerror}") from None
        self.rules = ignore.load(self.fd) if ignore_file else ignore.IgnoreRules([])

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- sources ------------------------------------------------------------------------

    def sources(self, pattern: str) -> list[Source]:
        """What a COPY source names: one path, or every path a wildcard matches."""
        if not any(c in pattern for c in "*?["):
            path = self.resolve(pattern)
            if self.rules.ignored(path):
                raise ValueError(f"{pattern!r} is excluded by the context's ignore file")
            return [Source(pattern.rstrip("/").rsplit("/", 1)[-1] or ".", path)]
        found = [Source(m.rsplit("/", 1)[-1], self.resolve(m)) for m in self._glob(pattern)]
        if not found:
            raise ValueError(f"no file in the build context matches {pattern!r}")
        return found

    def resolve(self, path: str) -> str:
        """``path`` inside the context with every link resolved; ValueError if it leads out."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        done: list[str] = []
        fds = [self.fd]  # fds[i]: the directory done[:i], opened O_PATH
        hops = 0
        try:
            while parts:
                part = parts.pop(0)
                if part == "..":
                    if not done:
                        what = "a symbolic link pointing " if hops else ""
                        raise ValueError(f"{path!r} is {what}outside the build context")
                    done.pop()
                    os.close(fds.pop())
                    continue
                try:
                    st = os.stat(part, dir_fd=fds[-1], follow_symlinks=False)
                except (FileNotFoundError, NotADirectoryError):
                    raise ValueError(f"{path!r} not found in the build context") from None
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_LINK_HOPS:
                        raise ValueError(f"{path!r}: too many levels of symbolic links")
                    target = os.readlink(part, dir_fd=fds[-1])
                    if target.startswith("/"):
                        while len(fds) > 1:
                            os.close(fds.pop())
                        done.clear()
                    parts = self._link_parts(path, target) + parts
                    continue
                if parts and not stat.S_ISDIR(st.st_mode):
                    raise ValueError(f"{path!r} not found in the build context")
                if parts:
                    fds.append(os.open(part, _PATH | os.O_DIRECTORY, dir_fd=fds[-1]))
                done.append(part)
        finally:
            for fd in fds[1:]:
                os.close(fd)
        return "/".join(done)

    def _link_parts(self, path: str, target: str) -> list[str]:
        """A link's target as parts to resolve next (an absolute one from the context's root)."""
        if target.startswith("/"):
            inside = os.path.relpath(os.path.normpath(target), self.root)
            if inside == ".." or inside.startswith("../"):
                raise ValueError(f"{path!r} is a symbolic link pointing outside the build context")
            target = inside
        return [p for p in target.split("/") if p not in ("", ".")]

    def _open_path(self, parts: list[str], flags: int) -> int:
        """Open ``parts`` below the root one component at a time, never following a link."""
        fd = self.fd
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                new = os.open(part, flags if last else _PATH | os.O_DIRECTORY, dir_fd=fd)
                if fd != self.fd:
                    os.close(fd)
                fd = new
        except OSError as exc:
            if fd != self.fd:
                os.close(fd)
            raise ValueError(f"{'/'.join(parts)!r} changed while the build read it: "
                             f"{exc.strerror}") from None
        return os.dup(fd) if fd == self.fd else fd

    def _glob(self, pattern: str) -> list[str]:
        matches = [""]
        for part in [p for p in pattern.split("/") if p not in ("", ".")]:
            if part == "..":
                raise ValueError(f"{pattern!r} is outside the build context")
            nxt = []
            for base in matches:
                names = self._names(base) if any(c in part for c in "*?[") else [part]
                for name in names:
                    if fnmatch.fnmatchcase(name, part):
                        candidate = f"{base}/{name}" if base else name
                        if not self.rules.ignored(candidate) and self._exists(candidate):
                            nxt.append(candidate)
            matches = nxt
        return sorted(matches)

    def _names(self, rel: str) -> list[str]:
        try:
            fd = self._open_path(rel.split("/"), _DIR) if rel else os.dup(self.fd)
        except ValueError:
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def _exists(self, rel: str) -> bool:
        """Whether ``rel`` is there (a link counts, wherever it points: resolving it says more)."""
        parent, _, name = rel.rpartition("/")
        try:
            fd = self._open_path(parent.split("/"), _PATH | os.O_DIRECTORY) if parent else os.dup(self.fd)
        except ValueError:
            return False
        try:
            os.stat(name, dir_fd=fd, follow_symlinks=False)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    # -- walking ------------------------------------------------------------------------

    def entries(self, path: str) -> Generator[tuple[Entry, int | None]]:
        """The source at ``path`` (resolved) and, for a directory, everything below it.

        Yields (entry, fd): a file's fd is open for reading until the next item.
        """
        parts = path.split("/") if path else []
        fd = self._open_path(parts, _PATH) if parts else os.dup(self.fd)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                dir_fd = os.open(".", _DIR, dir_fd=fd)
                try:
                    yield entry_of("", st), None
                    yield from self._walk(dir_fd, path)
                finally:
                    os.close(dir_fd)
            elif stat.S_ISREG(st.st_mode):
                file_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    yield entry_of("", os.fstat(file_fd)), file_fd
                finally:
                    os.close(file_fd)
            else:
                raise ValueError(f"{path!r} is {_kind_name(st.st_mode)}: only files, directories "
                                 "and symbolic links can be copied")
        finally:
            os.close(fd)

    def _walk(self, dir_fd: int, top: str, rel: str = "") -> Iterator[tuple[Entry, int | None]]:
        for name in sorted(os.listdir(dir_fd)):
            child = f"{rel}/{name}" if rel else name
            full = f"{top}/{child}" if top else child
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if self.rules.ignored(full) and not (stat.S_ISDIR(st.st_mode) and self.rules.has_exceptions):
                continue
            yield from self._walk_one(dir_fd, name, top, child, full, st)

    def _walk_one(self, dir_fd: int, name: str, top: str, child: str, full: str,
                  st: os.stat_result) -> Iterator[tuple[Entry, int | None]]:
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(name, _DIR, dir_fd=dir_fd)
            try:
                below = list(self._walk(sub, top, child)) if self.rules.ignored(full) else None
                if below is None or below:  # an ignored dir only carries what an exception kept
                    yield entry_of(child, os.fstat(sub)), None
                yield from below if below is not None else self._walk(sub, top, child)
            finally:
                os.close(sub)
        elif stat.S_ISLNK(st.st_mode):
            yield entry_of(child, st, os.readlink(name, dir_fd=dir_fd)), None
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(name, _FILE, dir_fd=dir_fd)
            try:
                fst = os.fstat(fd)
                if not stat.S_ISREG(fst.st_mode):
                    raise ValueError(f"{full!r} changed while the build read it")
                yield entry_of(child, fst), fd
            finally:
                os.close(fd)
        else:
            raise ValueError(f"{full!r} is {_kind_name(st.st_mode)}: only files, directories "
                             "and symbolic links can be copied")

    # -- digests ------------------------------------------------------------------------

    def digest(self, patterns: tuple[str, ...]) -> str:
        """The content of what ``patterns`` name, as one hex digest (no times in it)."""
        h = hashlib.sha256()
        for pattern in patterns:
            for source in self.sources(pattern):
                h.update(f"source\0{pattern}\0{source.name}\0{source.path}\0".encode())
                for entry, fd in self.entries(source.path):
                    h.update(f"{entry.rel}\0{entry.kind}\0{entry.mode:o}\0{entry.uid}\0{entry.gid}\0"
                             f"{entry.size}\0{entry.link or ''}\0".encode())
                    if fd is not None:
                        _hash_file(h, fd)
        return h.hexdigest()


def entry_of(rel: str, st: os.stat_result, link: str | None = None) -> Entry:
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if link is not None else "file"
    size = st.st_size if kind == "file" else 0
    return Entry(rel, kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, link)


def _hash_file(h: "hashlib._Hash", fd: int) -> None:
    offset = 0
    while True:
        chunk = os.pread(fd, CHUNK, offset)
        if not chunk:
            return
        h.update(chunk)
        offset += len(chunk)


def _kind_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
