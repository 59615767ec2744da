"""Reading paths of an image as a sandbox would see them, without mounting it.

COPY needs three facts about the image it copies into: where a destination
really is (``/bin`` may be a link to ``usr/bin``: a COPY follows it, as
Docker does, instead of replacing it with a directory), whether it is a
directory, and the owner and mode of the directories on the way (a layer
that names a directory sets them, so they are carried over unchanged). The
lookup walks the image's lower dirs topmost first, as overlayfs does: a
whiteout hides what lies below, an opaque directory hides lower content.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Generator

from ...securejoin import within
from ..model import Image
from .context import Entry, Source, entry_of

MAX_LINK_HOPS = 40
_OPAQUE = "trusted.overlay.opaque"


def lookup(image: Image | None, parts: list[str]) -> str | None:
    """The host path holding the image's entry at ``parts`` (links not followed), or None."""
    if image is None:
        return None
    rel = "/".join(parts)
    if not rel:
        return image.layers[0] if image.layers else None
    for layer in image.layers:
        candidate = os.path.join(layer, rel)
        try:
            st = os.lstat(candidate)
        except OSError:
            if _opaque(os.path.dirname(candidate)):
                break
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None  # deleted in this layer
        return candidate
    for top in image.host_dirs:
        full = "/" + rel
        if within(full, top):
            return full if os.path.lexists(full) else None
    return None


def canonical(image: Image | None, path: str) -> str:
    """``path`` with the image's symbolic links resolved inside the image (absolute result)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        found = lookup(image, done + [part])
        if found is not None and os.path.islink(found):
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise ValueError(f"{path!r}: too many levels of symbolic links in the image")
            target = os.readlink(found)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return "/" + "/".join(done)


def stat_in(image: Image | None, path: str) -> os.stat_result | None:
    """lstat of the image's entry at the canonical ``path``, or None when there is none."""
    found = lookup(image, [p for p in path.split("/") if p])
    try:
        return os.lstat(found) if found is not None else None
    except OSError:
        return None


def is_dir(image: Image | None, path: str) -> bool:
    st = stat_in(image, path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def listdir(image: Image, path: str) -> dict[str, str]:
    """The names in the image's directory ``path`` (canonical), each with its host path."""
    rel = path.strip("/")
    found: dict[str, str] = {}
    hidden: set[str] = set()
    for layer in image.layers:
        here = os.path.join(layer, rel) if rel else layer
        try:
            if not stat.S_ISDIR(os.lstat(here).st_mode):
                return found  # a file or link here hides any directory below
        except OSError:
            continue
        for name in os.listdir(here):
            if name in found or name in hidden:
                continue
            full = os.path.join(here, name)
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                hidden.add(name)
            else:
                found[name] = full
        if _opaque(here):
            return found
    for top in image.host_dirs:
        if within("/" + rel, top):
            for name in os.listdir("/" + rel):
                if name not in found and name not in hidden:
                    found[name] = os.path.join("/" + rel, name)
    return found


class ImageSource:
    """An image's files as COPY --from reads them: the same calls as a build Context.

    The store's layers are its own, unpacked by its unpacker and never changed,
    so they are read by path; links are resolved inside the image.
    """

    def __init__(self, image: Image) -> None:
        self.image = image

    def sources(self, pattern: str) -> list[Source]:
        if not any(c in pattern for c in "*?["):
            path = canonical(self.image, pattern)
            if lookup(self.image, [p for p in path.split("/") if p]) is None:
                raise ValueError(f"{pattern!r} not found in the image")
            return [Source(pattern.rstrip("/").rsplit("/", 1)[-1] or "/", path)]
        parent, _, name = canonical(self.image, "/" + pattern).rpartition("/")
        names = sorted(n for n in listdir(self.image, parent) if fnmatch.fnmatchcase(n, name))
        if not names:
            raise ValueError(f"nothing in the image matches {pattern!r}")
        return [Source(n, canonical(self.image, f"{parent}/{n}")) for n in names]

    def entries(self, path: str, rel: str = "") -> Generator[tuple[Entry, int | None]]:
        """(Entry, fd) for ``path`` and, for a directory, everything below it, sorted."""
        host = lookup(self.image, [p for p in path.split("/") if p]) if path != "/" else None
        st = os.lstat(host) if host else os.stat(self.image.layers[0])
        if stat.S_ISDIR(st.st_mode):
            yield entry_of(rel, st), None
            for name, _full in sorted(listdir(self.image, path).items()):
                yield from self.entries(f"{path.rstrip('/')}/{name}", f"{rel}/{name}" if rel else name)
        elif host is not None and stat.S_ISLNK(st.st_mode):  # host None: the root, a directory
            if not rel:  # the source itself: canonical() resolved it already
                raise ValueError(f"{path!r} is a link that leads nowhere in the image")
            yield entry_of(rel, st, os.readlink(host)), None
        elif host is not None and stat.S_ISREG(st.st_mode):
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                yield entry_of(rel, os.fstat(fd)), fd
            finally:
                os.close(fd)
        # device nodes, FIFOs and sockets of an image are not copied
